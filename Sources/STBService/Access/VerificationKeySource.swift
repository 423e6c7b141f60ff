import Logging
import STBAuth
import STBMessages
import STBRPC
import Synchronization

/// Where a service's token verification keys come from: a JWKS file, the gateway's
/// `Auth.GetKeys`, or (in the gateway itself) its own key store.
public protocol VerificationKeySource: Sendable {
    /// The keys as currently known; read on every verification, so it must be cheap.
    var keys: KeySet { get }
    /// Called when a token names a `kid` not in `keys` (a key rotated in at the gateway);
    /// fetches again if the source can and has not just done so.
    func refreshForUnknownKey() async
}

/// Keys that are fixed, or that the caller keeps current: a JWKS file, tests, and the
/// gateway's own key store (`CurrentKeys { store.keySet }`).
public struct CurrentKeys: VerificationKeySource {
    private let current: @Sendable () -> KeySet

    /// Keys read from `current` on every verification.
    public init(_ current: @escaping @Sendable () -> KeySet) {
        self.current = current
    }

    /// A fixed key set.
    public init(_ keys: KeySet) {
        self.current = { keys }
    }

    public var keys: KeySet { current() }

    public func refreshForUnknownKey() async {}
}

/// The keys the gateway publishes, fetched with `Auth.GetKeys` at start and again when a
/// token names an unknown `kid`, at most once per `minimumRefreshInterval`.
public final class GatewayKeySource: VerificationKeySource {
    /// Refetches on unknown keys are at least this far apart.
    public static let minimumRefreshInterval = Duration.seconds(5)

    private let client: RPCClient
    private let logger: Logger
    private let state: Mutex<(keys: KeySet, lastFetch: ContinuousClock.Instant?)>

    private init(client: RPCClient, keys: KeySet, logger: Logger) {
        self.client = client
        self.logger = logger
        self.state = Mutex((keys, ContinuousClock.now))
    }

    /// Fetches the keys from the gateway at `host:port`, trying `attempts` times a second
    /// apart; throws `AuthConfigurationError` when the gateway never answers with keys.
    public static func fetch(host: String, port: Int, attempts: Int = 30, logger: Logger) async throws -> GatewayKeySource {
        var configuration = RPCClient.Configuration()
        configuration.defaultTimeout = .seconds(5)
        let client = try RPCClient(host: host, port: port, configuration: configuration)
        var lastError = ""
        for attempt in 1...max(1, attempts) {
            do {
                let keys = try await Self.keys(from: client)
                logger.info("verification keys fetched from the gateway", metadata: ["keys": "\(keys.keys.keys.sorted())"])
                return GatewayKeySource(client: client, keys: keys, logger: logger)
            } catch {
                lastError = (error as? RPCError).map { "\($0.code): \($0.message)" } ?? "\(error)"
                logger.notice("waiting for the gateway's keys", metadata: ["attempt": "\(attempt)", "error": "\(lastError)"])
                if attempt < attempts { try await Task.sleep(for: .seconds(1)) }
            }
        }
        await client.close()
        throw AuthConfigurationError(
            "could not fetch token verification keys from the gateway at \(host):\(port) (STB_GATEWAY_ADDR) after \(attempts) attempts: \(lastError)")
    }

    public var keys: KeySet { state.withLock { $0.keys } }

    public func refreshForUnknownKey() async {
        let now = ContinuousClock.now
        let due = state.withLock { state -> Bool in
            if let last = state.lastFetch, now - last < Self.minimumRefreshInterval { return false }
            state.lastFetch = now
            return true
        }
        guard due else { return }
        do {
            let keys = try await Self.keys(from: client)
            state.withLock { $0.keys = keys }
            logger.info("verification keys refetched for an unknown key id", metadata: ["keys": "\(keys.keys.keys.sorted())"])
        } catch {
            logger.warning("refetching the gateway's keys failed", metadata: ["error": "\(error)"])
        }
    }

    private static func keys(from client: RPCClient) async throws -> KeySet {
        let reply = try await client.unary(Stb_Gateway_V1_Auth.getKeys, request: Stb_Gateway_V1_GetKeysRequest())
        let keys = KeySet(reply)
        guard !keys.isEmpty else { throw AuthConfigurationError("the gateway published no Ed25519 keys") }
        return keys
    }
}

/// Authentication is configured wrongly or its peer cannot be reached; start-up stops
/// with the message.
public struct AuthConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
