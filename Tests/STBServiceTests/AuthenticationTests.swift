import Glibc
import Logging
import STBAuth
import STBMessages
import STBRPC
import STBService
import STBAuthTestSupport
import Synchronization
import Testing

/// Answers with the caller's verified identity: `name subject role`.
private struct IdentityProbe: RPCService {
    func register(in router: inout RPCRouter) {
        router.register(Stb_Testing_V1_Echo.get, unary: { _, context in
            let identity = context.identity
            return Stb_Testing_V1_EchoResponse(text: "\(identity?.name ?? "-") \(identity?.subject ?? "-") \(identity?.role ?? "-")")
        })
        router.register(Stb_Testing_V1_Echo.expand, serverStreaming: { _, writer, context in
            try await writer.write(Stb_Testing_V1_EchoResponse(text: context.actor))
        })
        router.register(Stb_Testing_V1_Echo.collect, clientStreaming: { requests, _ in
            for try await _ in requests {}
            return Stb_Testing_V1_EchoResponse(text: "collected")
        })
    }
}

/// Keys that count how often they are read and refetched; `refreshForUnknownKey` adds
/// `rotatedIn` (a key the gateway started signing with).
private final class CountingKeys: VerificationKeySource {
    let reads = Atomic<Int>(0)
    let refreshes = Atomic<Int>(0)
    let current: Mutex<KeySet>
    let rotatedIn: VerificationKey?

    init(_ keys: KeySet, rotatedIn: VerificationKey? = nil) {
        current = Mutex(keys)
        self.rotatedIn = rotatedIn
    }

    var keys: KeySet {
        reads.add(1, ordering: .relaxed)
        return current.withLock { $0 }
    }

    func refreshForUnknownKey() async {
        refreshes.add(1, ordering: .relaxed)
        if let rotatedIn { current.withLock { $0 = KeySet(Array($0.keys.values) + [rotatedIn]) } }
    }
}

@Suite("Authentication and method access")
struct AuthenticationTests {
    /// `Echo/Get` needs an operator, `Echo/Expand` any verified caller; `Echo/Collect`
    /// has no entry (fail closed).
    static let access = MethodAccess.platform.merging([
        Stb_Testing_V1_Echo.get.path: .role(.operator),
        Stb_Testing_V1_Echo.expand.path: .authenticated,
    ])

    private static func withServer(
        keys: any VerificationKeySource = CurrentKeys(TestIdentity.keys), _ body: (RPCClient) async throws -> Void
    ) async throws {
        var configuration = RPCServer.Configuration()
        configuration.port = 0
        let interceptors = ServiceDaemon.interceptors(
            for: "probe", logger: Logger(label: "probe"), authenticator: Authenticator(keys: keys), access: access)
        let server = try RPCServer(configuration: configuration, services: [IdentityProbe()], interceptors: interceptors)
        let port = try await server.start()
        let client = try RPCClient(host: "127.0.0.1", port: port)
        do {
            try await body(client)
        } catch {
            await client.close()
            await server.shutdown(gracePeriod: .zero)
            throw error
        }
        await client.close()
        await server.shutdown(gracePeriod: .zero)
    }

    private static func get(_ client: RPCClient, token: String?) async throws -> String {
        let metadata = token.map { Metadata.bearer($0) } ?? Metadata()
        return try await client.unary(Stb_Testing_V1_Echo.get, request: .init(text: "hi"), metadata: metadata).text
    }

    private static func refusal(_ body: () async throws -> Void) async -> RPCError? {
        do {
            try await body()
            return nil
        } catch {
            return error as? RPCError
        }
    }

    /// A token with header `header` and the claims of a valid operator token.
    private static func forged(header: String, signature: String = "") -> String {
        let valid = TestIdentity.token(.operator)
        let parts = valid.split(separator: ".")
        let encoded = Array(header.utf8)
        let headerText = base64URL(encoded)
        return "\(headerText).\(parts[1]).\(signature)"
    }

    private static func base64URL(_ bytes: [UInt8]) -> String {
        String(Base64.encode(bytes, padded: false).map { $0 == "+" ? "-" : $0 == "/" ? "_" : $0 })
    }

    @Test("every RPC of catalog, rules, projects, the gateway's Auth, Realtime, Alarms and Dashboards, the stub server, health and reflection has exactly one access rule, and the table names no other")
    func tableCoversEveryMethod() {
        let paths = Stb_Catalog_V1_Catalog.methodPaths + Stb_Rules_V1_Rules.methodPaths + Stb_Gateway_V1_Auth.methodPaths
            + Stb_Project_V1_Projects.methodPaths + Stb_Gateway_V1_Alarms.methodPaths + Stb_Gateway_V1_Dashboards.methodPaths
            + Stb_Gateway_V1_Realtime.methodPaths + Stb_Stubs_V1_Stubs.methodPaths
            + Grpc_Health_V1_Health.methodPaths + Grpc_Reflection_V1_ServerReflection.methodPaths
            + Grpc_Reflection_V1alpha_ServerReflection.methodPaths
        for path in paths {
            #expect(MethodAccess.platform[path] != nil, "no access rule for \(path)")
        }
        #expect(Set(MethodAccess.platform.requirements.keys) == Set(paths))
        // The contract's anchors.
        #expect(MethodAccess.platform[Stb_Gateway_V1_Realtime.subscribe.path] == .role(.viewer, services: true))
        #expect(MethodAccess.platform[Stb_Gateway_V1_Realtime.listSessions.path] == .role(.admin))
        #expect(MethodAccess.platform[Stb_Catalog_V1_Catalog.getConfig.path] == .role(.viewer, services: true))
        #expect(MethodAccess.platform[Stb_Catalog_V1_Catalog.importSeed.path] == .role(.engineer))
        #expect(MethodAccess.platform[Stb_Rules_V1_Rules.fire.path] == .role(.operator))
        #expect(MethodAccess.platform[Stb_Gateway_V1_Auth.login.path] == .open)
        #expect(MethodAccess.platform[Stb_Gateway_V1_Auth.listUsers.path] == .role(.admin))
        #expect(MethodAccess.platform[Stb_Gateway_V1_Auth.changePassword.path] == .anyUser)
        #expect(MethodAccess.platform[Stb_Stubs_V1_Stubs.putStub.path] == .role(.admin))
        #expect(MethodAccess.platform[Stb_Stubs_V1_Stubs.getJournal.path] == .role(.engineer))
        #expect(MethodAccess.platform[Stb_Gateway_V1_Alarms.acknowledgeAlarm.path] == .role(.operator))
        #expect(MethodAccess.platform[Stb_Gateway_V1_Alarms.watchAlarms.path] == .role(.admin, services: true))
        #expect(MethodAccess.platform[Stb_Gateway_V1_Dashboards.deleteDashboard.path] == .role(.viewer))
        #expect(MethodAccess.platform["/stb.testing.v1.Echo/Get"] == nil)
    }

    @Test("requirements: user roles in order, service accounts only where the rule names them")
    func requirements() {
        let read = MethodRequirement.role(.viewer, services: true)
        #expect(Role.allCases.allSatisfy(read.permits))
        #expect(MethodRequirement.role(.operator).permits(.engineer) && !MethodRequirement.role(.operator).permits(.viewer))
        #expect(!MethodRequirement.role(.operator).permits(.service) && !MethodRequirement.role(.viewer).permits(.service))
        #expect(!MethodRequirement.anyUser.permits(.service) && MethodRequirement.anyUser.permits(.viewer))
    }

    @Test("a verified token's subject, name and role reach the handler; stb-actor decides nothing")
    func identity() async throws {
        try await Self.withServer { client in
            var metadata = Metadata.bearer(TestIdentity.token(.operator, name: "olga"))
            metadata.addString("mallory", forKey: "stb-actor")
            let reply = try await client.unary(Stb_Testing_V1_Echo.get, request: .init(text: "hi"), metadata: metadata)
            #expect(reply.text == "olga user:olga operator")
            let streamed = try await client.serverStreaming(
                Stb_Testing_V1_Echo.expand, request: .init(text: "x"), metadata: .bearer(TestIdentity.token(.service, name: "rules"))
            ) { stream in
                var texts: [String] = []
                for try await reply in stream { texts.append(reply.text) }
                return texts
            }
            #expect(streamed == ["rules"])
        }
    }

    @Test("missing, malformed, expired, foreign, unsigned and misdirected tokens are UNAUTHENTICATED with a reason, never echoing the token")
    func refusedTokens() async throws {
        try await Self.withServer { client in
            let cases: [(String?, String)] = [
                (nil, "TOKEN_MISSING"),
                ("not-a-jwt", "TOKEN_MALFORMED"),
                (TestIdentity.token(.operator, lifetime: -120), "TOKEN_EXPIRED"),
                (TestIdentity.token(.operator, key: TestIdentity.strangerKey), "TOKEN_UNKNOWN_KEY"),
                (TestIdentity.token(.operator, audience: "someone-else"), "TOKEN_WRONG_AUDIENCE"),
                (Self.forged(header: #"{"alg":"none","typ":"JWT"}"#), "TOKEN_ALGORITHM"),
                (Self.forged(header: #"{"alg":"EdDSA","kid":"test"}"#, signature: Self.base64URL(Array(repeating: 7, count: 64))), "TOKEN_BAD_SIGNATURE"),
            ]
            for (token, reason) in cases {
                let error = await Self.refusal { _ = try await Self.get(client, token: token) }
                #expect(error?.code == .unauthenticated, "\(reason): \(String(describing: error))")
                #expect(error?.errorInfo?.reason == reason)
                #expect(error?.errorInfo?.domain == "stb")
                if let token, token.count > 20 { #expect(error?.message.contains(token.prefix(20)) == false) }
            }
            // A scheme other than Bearer.
            var basic = Metadata()
            basic.addString("Basic dXNlcjpwYXNz", forKey: "authorization")
            let error = await Self.refusal { _ = try await client.unary(Stb_Testing_V1_Echo.get, request: .init(text: "hi"), metadata: basic) }
            #expect(error?.code == .unauthenticated && error?.errorInfo?.reason == "TOKEN_MALFORMED")
        }
    }

    @Test("a role below the method's least role, or a service account where users are required, is PERMISSION_DENIED naming the role")
    func insufficientRole() async throws {
        try await Self.withServer { client in
            for role in [Role.viewer, .service] {
                let error = await Self.refusal { _ = try await Self.get(client, token: TestIdentity.token(role)) }
                #expect(error?.code == .permissionDenied)
                #expect(error?.message.contains("operator") == true, "\(String(describing: error))")
                #expect(error?.errorInfo?.reason == "ROLE_REQUIRED")
            }
            for role in [Role.operator, .engineer, .admin] {
                let text = try await Self.get(client, token: TestIdentity.token(role))
                #expect(text.hasSuffix(role.claim))
            }
        }
    }

    @Test("a method without an access rule is refused even with an admin token (fail closed); health stays open")
    func failClosed() async throws {
        try await Self.withServer { client in
            let error = await Self.refusal {
                _ = try await client.clientStreaming(Stb_Testing_V1_Echo.collect, metadata: .bearer(TestIdentity.token(.admin))) { writer in
                    try await writer.write(.init(text: "x"))
                }
            }
            #expect(error?.code == .permissionDenied && error?.errorInfo?.reason == "NO_ACCESS_RULE")
            let health = try await client.unary(Grpc_Health_V1_Health.check, request: Grpc_Health_V1_HealthCheckRequest())
            #expect(health.status == .serving)
        }
    }

    @Test("a token is verified once, then served from the cache until it expires")
    func cache() async throws {
        let keys = CountingKeys(TestIdentity.keys)
        let now = Atomic<Int64>(1_000_000)
        let authenticator = Authenticator(keys: keys, leeway: 0, clock: { now.load(ordering: .relaxed) })
        let claims = AccessClaims(
            issuer: TokenAudience.issuer, audience: TokenAudience.services, subject: "user:c", name: "c", role: .viewer,
            issuedAt: 1_000_000, notBefore: 1_000_000, expiresAt: 1_000_060, tokenID: "c")
        let token = AccessToken.sign(claims, with: TestIdentity.signingKey)
        for _ in 0..<100 { #expect(try await authenticator.verify(token).name == "c") }
        #expect(keys.reads.load(ordering: .relaxed) == 1)
        #expect(authenticator.cachedTokenCount == 1)
        now.store(1_000_061, ordering: .relaxed)
        await #expect(throws: TokenError.expired) { try await authenticator.verify(token) }
        #expect(keys.reads.load(ordering: .relaxed) == 2)
    }

    @Test("without waiting, only a token verified before and not expired is known; a missing or malformed one is refused")
    func cachedClaims() async throws {
        let now = Atomic<Int64>(1_000_000)
        let authenticator = Authenticator(keys: CurrentKeys(TestIdentity.keys), leeway: 0, clock: { now.load(ordering: .relaxed) })
        let claims = AccessClaims(
            issuer: TokenAudience.issuer, audience: TokenAudience.services, subject: "user:k", name: "k", role: .viewer,
            issuedAt: 1_000_000, notBefore: 1_000_000, expiresAt: 1_000_060, tokenID: "k")
        let metadata = Metadata.bearer(AccessToken.sign(claims, with: TestIdentity.signingKey))
        #expect(try authenticator.cachedClaims(metadata) == nil)
        #expect(try await authenticator.authenticate(metadata).name == "k")
        #expect(try authenticator.cachedClaims(metadata)?.name == "k")
        now.store(1_000_061, ordering: .relaxed)
        #expect(try authenticator.cachedClaims(metadata) == nil)
        #expect(throws: RPCError.self) { try authenticator.cachedClaims(Metadata()) }
        #expect(throws: RPCError.self) { try authenticator.cachedClaims(Metadata(["authorization": "Basic abc"])) }
    }

    @Test("a header remembered by its bytes answers for those bytes alone: another token sharing its slot is unknown, the same token in another header is found, and it expires")
    func recentHeaders() async throws {
        let now = Atomic<Int64>(1_000_000)
        // One slot: every header competes for it.
        let authenticator = Authenticator(
            keys: CurrentKeys(TestIdentity.keys), leeway: 0, recentHeaderSlots: 1, clock: { now.load(ordering: .relaxed) })
        func token(_ name: String) -> String {
            AccessToken.sign(
                AccessClaims(
                    issuer: TokenAudience.issuer, audience: TokenAudience.services, subject: "user:\(name)", name: name,
                    role: .viewer, issuedAt: 1_000_000, notBefore: 1_000_000, expiresAt: 1_000_060, tokenID: name),
                with: TestIdentity.signingKey)
        }
        let first = Metadata.bearer(token("a"))
        let second = Metadata.bearer(token("b"))
        #expect(try await authenticator.authenticate(first).name == "a")
        for _ in 0..<3 { #expect(try authenticator.cachedClaims(first)?.name == "a") }
        // Never verified: unknown, though the slot holds a verified header.
        #expect(try authenticator.cachedClaims(second) == nil)
        #expect(try authenticator.cachedClaims(first)?.name == "a")
        // The same token after another scheme spelling and blanks: the same claims.
        let respelled = Metadata(["authorization": "bearer  \(token("a")) "])
        #expect(try authenticator.cachedClaims(respelled)?.name == "a")
        #expect(try await authenticator.authenticate(second).name == "b")
        #expect(try authenticator.cachedClaims(second)?.name == "b")
        #expect(try authenticator.cachedClaims(first)?.name == "a")
        now.store(1_000_061, ordering: .relaxed)
        #expect(try authenticator.cachedClaims(first) == nil)
        #expect(try authenticator.cachedClaims(second) == nil)
        #expect(throws: RPCError.self) { try authenticator.cachedClaims(Metadata(["authorization": "Basic abc"])) }
    }

    @Test("the cache is bounded")
    func cacheBound() async throws {
        let authenticator = Authenticator(keys: CurrentKeys(TestIdentity.keys), cacheCapacity: 8)
        for index in 0..<50 { _ = try await authenticator.verify(TestIdentity.token(.viewer, name: "u\(index)")) }
        #expect(authenticator.cachedTokenCount <= 8)
    }

    @Test("a token signed by a key rotated in at the gateway is accepted after one refetch; an unknown key refetches, then is refused")
    func unknownKeyRefetch() async throws {
        let rotated = SigningKey.generate(id: "rotated")
        let keys = CountingKeys(TestIdentity.keys, rotatedIn: rotated.verificationKey)
        let authenticator = Authenticator(keys: keys)
        let token = AccessToken.sign(
            AccessClaims(
                issuer: TokenAudience.issuer, audience: TokenAudience.services, subject: "user:r", name: "r", role: .viewer,
                issuedAt: 0, notBefore: 0, expiresAt: Int64.max / 2, tokenID: "r"),
            with: rotated)
        #expect(try await authenticator.verify(token).name == "r")
        #expect(keys.refreshes.load(ordering: .relaxed) == 1)
        await #expect(throws: TokenError.unknownKey) { try await authenticator.verify(TestIdentity.token(key: TestIdentity.strangerKey)) }
        #expect(keys.refreshes.load(ordering: .relaxed) == 2)
    }

    @Test("STB_AUTH_KEYS_FILE: a JWKS file is the key source; a missing or empty one stops start-up")
    func keysFile() async throws {
        let path = "/tmp/stb-auth-test-\(getpid()).jwks"
        try writeFile(path, TestIdentity.keys.jwksJSON)
        defer { unlink(path) }
        let configuration = try AuthConfiguration(serviceName: "catalog", environment: ["STB_AUTH_KEYS_FILE": path])
        let source = try await configuration.keySource(logger: Logger(label: "test"))
        #expect(source.keys == TestIdentity.keys)
        let missing = try AuthConfiguration(serviceName: "catalog", environment: ["STB_AUTH_KEYS_FILE": path + ".missing"])
        await #expect(throws: AuthConfigurationError.self) { _ = try await missing.keySource(logger: Logger(label: "test")) }
        try writeFile(path, #"{"keys": []}"#)
        await #expect(throws: AuthConfigurationError.self) { _ = try await configuration.keySource(logger: Logger(label: "test")) }
    }

    @Test("without a keys file, an unreachable gateway stops start-up with a message naming STB_GATEWAY_ADDR")
    func gatewayUnreachable() async throws {
        let configuration = try AuthConfiguration(serviceName: "catalog", environment: ["STB_GATEWAY_ADDR": "127.0.0.1:1"])
        do {
            _ = try await configuration.keySource(attempts: 2, logger: Logger(label: "test"))
            Issue.record("fetching keys from a closed port succeeded")
        } catch let error as AuthConfigurationError {
            #expect(error.description.contains("STB_GATEWAY_ADDR") && error.description.contains("127.0.0.1:1"))
        }
    }

    @Test("a service without a service token or secret cannot build credentials for its outgoing calls")
    func serviceCredentialsRequired() throws {
        let none = try AuthConfiguration(serviceName: "rules", environment: [:])
        #expect(throws: AuthConfigurationError.self) { _ = try none.serviceCredentials(logger: Logger(label: "test")) }
        let ready = try AuthConfiguration(serviceName: "rules", environment: ["RULES_SERVICE_TOKEN": "abc"])
        #expect(try ready.serviceCredentials(logger: Logger(label: "test")) is BearerCredentials)
    }

    @Test("forwarding copies the caller's authorization into an outgoing call's metadata, unless it has its own")
    func forwarding() {
        let incoming = Metadata.bearer("user-token")
        #expect(Metadata().forwardingAuthorization(from: incoming).firstString(forKey: "authorization") == "Bearer user-token")
        #expect(Metadata.bearer("own").forwardingAuthorization(from: incoming).strings(forKey: "authorization") == ["Bearer own"])
    }
}

private func writeFile(_ path: String, _ text: String) throws {
    guard let file = fopen(path, "wb") else { throw AuthConfigurationError("cannot write \(path)") }
    _ = Array(text.utf8).withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    fclose(file)
}
