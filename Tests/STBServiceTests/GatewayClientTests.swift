import Glibc
import Logging
import STBAuth
import STBAuthTestSupport
import STBMessages
import STBRPC
import STBService
import Synchronization
import Testing

/// The two `Auth` methods services use, as a gateway answers them: `GetKeys` publishes
/// `keys`; `ServiceLogin` accepts `rules` / `s3cret` and signs a service token living
/// `lifetime` seconds.
private final class FakeGateway: RPCService, Sendable {
    let keys: Mutex<KeySet>
    let logins = Atomic<Int>(0)
    let keyFetches = Atomic<Int>(0)
    let lifetime: Int64

    init(keys: KeySet, lifetime: Int64 = 600) {
        self.keys = Mutex(keys)
        self.lifetime = lifetime
    }

    func register(in router: inout RPCRouter) {
        router.register(Stb_Gateway_V1_Auth.getKeys, unary: { _, _ in
            self.keyFetches.add(1, ordering: .relaxed)
            return self.keys.withLock { $0.response }
        })
        router.register(Stb_Gateway_V1_Auth.serviceLogin, unary: { request, _ in
            guard request.service == "rules", request.secret == "s3cret" else {
                throw RPCError(code: .unauthenticated, message: "unknown service account or wrong secret")
            }
            self.logins.add(1, ordering: .relaxed)
            let now = Int64(time(nil))
            var reply = Stb_Gateway_V1_LoginResponse()
            reply.accessToken = TestIdentity.token(.service, name: "rules", lifetime: self.lifetime)
            reply.accessExpiresAtMs = (now + self.lifetime) * 1000
            return reply
        })
    }
}

@Suite("Keys and service accounts from a gateway over RPC")
struct GatewayClientTests {
    private static func withGateway(_ gateway: FakeGateway, _ body: (Int) async throws -> Void) async throws {
        var configuration = RPCServer.Configuration()
        configuration.port = 0
        let server = try RPCServer(configuration: configuration, services: [gateway])
        let port = try await server.start()
        do {
            try await body(port)
        } catch {
            await server.shutdown(gracePeriod: .zero)
            throw error
        }
        await server.shutdown(gracePeriod: .zero)
    }

    @Test("keys are fetched with GetKeys at start; a token with a new kid makes one refetch, not one per call")
    func keysFromTheGateway() async throws {
        let gateway = FakeGateway(keys: TestIdentity.keys)
        try await Self.withGateway(gateway) { port in
            let configuration = try AuthConfiguration(serviceName: "catalog", environment: ["STB_GATEWAY_ADDR": "127.0.0.1:\(port)"])
            let source = try await configuration.keySource(logger: Logger(label: "test"))
            #expect(source.keys == TestIdentity.keys && gateway.keyFetches.load(ordering: .relaxed) == 1)
            let authenticator = Authenticator(keys: source)
            #expect(try await authenticator.verify(TestIdentity.token(.viewer)).role == .viewer)
            #expect(gateway.keyFetches.load(ordering: .relaxed) == 1)

            // The gateway rotates in a new key. The first fetch was just now: a refetch
            // waits for the minimum interval, so tokens with the new kid are refused
            // until then, without asking the gateway again and again.
            let rotated = SigningKey.generate(id: "rotated")
            gateway.keys.withLock { $0 = KeySet([TestIdentity.signingKey.verificationKey, rotated.verificationKey]) }
            let token = TestIdentity.token(.viewer, name: "new", key: rotated)
            for _ in 0..<5 {
                await #expect(throws: TokenError.unknownKey) { try await authenticator.verify(token) }
            }
            #expect(gateway.keyFetches.load(ordering: .relaxed) == 1)
            try await Task.sleep(for: GatewayKeySource.minimumRefreshInterval + .milliseconds(200))
            #expect(try await authenticator.verify(token).name == "new")
            #expect(gateway.keyFetches.load(ordering: .relaxed) == 2)
        }
    }

    @Test("a service account signs in once for many calls, and again when its token is due for renewal")
    func serviceAccount() async throws {
        let gateway = FakeGateway(keys: TestIdentity.keys, lifetime: 600)
        try await Self.withGateway(gateway) { port in
            let now = Atomic<Int64>(Int64(time(nil)))
            let credentials = try ServiceAccountCredentials(
                service: "rules", secret: "s3cret", gatewayHost: "127.0.0.1", gatewayPort: port, logger: Logger(label: "test"),
                clock: { now.load(ordering: .relaxed) })
            let authenticator = Authenticator(keys: CurrentKeys(TestIdentity.keys))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        let metadata = try await credentials.metadata()
                        let claims = try await authenticator.authenticate(metadata)
                        #expect(claims.subject == "service:rules" && claims.role == .service)
                    }
                }
                try await group.waitForAll()
            }
            #expect(gateway.logins.load(ordering: .relaxed) == 1)
            // After four fifths of the token's life (480 s of 600), it is renewed.
            now.add(470, ordering: .relaxed)
            _ = try await credentials.metadata()
            #expect(gateway.logins.load(ordering: .relaxed) == 1)
            now.add(20, ordering: .relaxed)
            _ = try await credentials.metadata()
            #expect(gateway.logins.load(ordering: .relaxed) == 2)
            await credentials.close()

            let wrong = try ServiceAccountCredentials(
                service: "rules", secret: "guess", gatewayHost: "127.0.0.1", gatewayPort: port, logger: Logger(label: "test"))
            await #expect(throws: RPCError.self) { _ = try await wrong.metadata() }
            await wrong.close()
        }
    }
}
