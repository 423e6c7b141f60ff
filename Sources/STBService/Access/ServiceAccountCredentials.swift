import Glibc
import Logging
import STBMessages
import STBRPC
import Synchronization

/// A service account's access token for its outgoing calls: its name and secret
/// exchanged at the gateway with `Auth.ServiceLogin`, and exchanged again when less than
/// a fifth of the token's life (at least 30 s) is left. Calls wait for the first sign-in;
/// a failed sign-in fails the call (UNAVAILABLE or the gateway's status), and the next
/// call tries again. Neither the secret nor the token is ever logged.
public final class ServiceAccountCredentials: CallCredentials {
    private struct Token {
        var value: String
        var renewAt: Int64
        var expiresAt: Int64
    }

    public let service: String
    private let secret: String
    private let client: RPCClient
    private let logger: Logger
    private let clock: @Sendable () -> Int64
    private let token = Mutex<Token?>(nil)
    private let signIn = SingleFlight()

    public init(
        service: String, secret: String, gatewayHost: String, gatewayPort: Int, logger: Logger,
        clock: @escaping @Sendable () -> Int64 = { Int64(time(nil)) }
    ) throws {
        self.service = service
        self.secret = secret
        var configuration = RPCClient.Configuration()
        configuration.defaultTimeout = .seconds(10)
        self.client = try RPCClient(host: gatewayHost, port: gatewayPort, configuration: configuration)
        self.logger = logger
        self.clock = clock
    }

    public func metadata() async throws -> Metadata {
        Metadata.bearer(try await currentToken())
    }

    /// The token, signing in first when there is none or it is due for renewal.
    public func currentToken() async throws -> String {
        let now = clock()
        if let token = token.withLock({ $0 }), now < token.renewAt { return token.value }
        try await signIn.run { try await self.renew() }
        guard let token = token.withLock({ $0 }), clock() < token.expiresAt else {
            throw RPCError(code: .unavailable, message: "the \(service) service account could not sign in at the gateway")
        }
        return token.value
    }

    private func renew() async throws {
        if let token = token.withLock({ $0 }), clock() < token.renewAt { return }
        var request = Stb_Gateway_V1_ServiceLoginRequest()
        request.service = service
        request.secret = secret
        let reply: Stb_Gateway_V1_LoginResponse
        do {
            reply = try await client.unary(Stb_Gateway_V1_Auth.serviceLogin, request: request)
        } catch {
            logger.warning("service account sign-in failed", metadata: [
                "service": "\(service)", "error": "\((error as? RPCError).map { "\($0.code): \($0.message)" } ?? "\(error)")",
            ])
            throw error
        }
        let now = clock()
        let expiresAt = reply.accessExpiresAtMs > 0 ? reply.accessExpiresAtMs / 1000 : now + 600
        let life = max(0, expiresAt - now)
        let renewAt = expiresAt - max(30, life / 5)
        token.withLock { $0 = Token(value: reply.accessToken, renewAt: renewAt, expiresAt: expiresAt) }
        logger.info("service account signed in", metadata: ["service": "\(service)", "expires_in_s": "\(life)"])
    }

    /// Closes the connection to the gateway.
    public func close() async {
        await client.close()
    }
}

/// Runs one operation at a time: a caller arriving while one runs waits for it instead of
/// starting another (one sign-in for a burst of calls).
final class SingleFlight: Sendable {
    private let running = Mutex<Task<Void, any Error>?>(nil)

    func run(_ operation: @escaping @Sendable () async throws -> Void) async throws {
        let task = running.withLock { running -> Task<Void, any Error> in
            if let running { return running }
            let task = Task { try await operation() }
            running = task
            return task
        }
        defer { running.withLock { if $0 == task { $0 = nil } } }
        try await task.value
    }
}
