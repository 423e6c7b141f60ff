import Logging
import ServiceLifecycle

/// Keeps the key ring current while the gateway runs: every `interval` it re-reads the
/// keys (another gateway, or `gatewayd rotate-key`, may have rotated) and, when
/// `rotationDays` is set, rotates a signing key older than that.
public struct KeyRotation: Service {
    let keys: KeyRing
    let rotationDays: Int
    let interval: Duration
    let logger: Logger

    public init(keys: KeyRing, rotationDays: Int, interval: Duration = .seconds(60), logger: Logger) {
        self.keys = keys
        self.rotationDays = rotationDays
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await tick()
                try? await Task.sleep(for: interval)
            }
        }
    }

    func tick() async {
        do {
            try await keys.reload()
            let ageMs = GatewayService.nowSeconds() * 1000 - keys.signingKeyCreatedAtMs
            if rotationDays > 0, ageMs >= Int64(rotationDays) * 86_400_000 {
                let kid = try await keys.rotate()
                logger.notice("signing key rotated", metadata: ["kid": "\(kid)"])
            }
        } catch {
            logger.error("could not refresh the signing keys", metadata: ["error": "\(error)"])
        }
    }
}
