import Glibc
import Logging
import STBAuth
import STBGateway
import STBMessages
import STBPostgres
import STBRPC
import STBService
import STBServiceTestSupport
import Synchronization
import Testing

typealias Auth = Stb_Gateway_V1_Auth

/// A gateway on a free port, with a fresh schema of its own in the test database
/// (`STB_TEST_DATABASE_URL`), migrated with the service's real migrations, and its first
/// admin bootstrapped.
struct GatewayHarness {
    static let adminPassword = "admin password 0123"

    let server: RPCServer
    let client: RPCClient
    let pool: PostgresPool
    let service: GatewayService
    let configuration: GatewayConfiguration
    let conninfo: String
    let group: EventLoopGroup
    let listener: PostgresListener
    /// The project keys each user id is a member of, as the alarms' visibility reads them.
    let memberships: TestMemberships

    /// `settings` are `GATEWAY_*` variables over the defaults (a 1 s refresh overlap).
    static func start(_ settings: [String: String] = [:]) async throws -> GatewayHarness {
        let group = try EventLoopGroup(count: 2, name: "gateway-test")
        let conninfo = try await TestDatabase.schema("gateway_test", group: group)
        var environment = [
            "GATEWAY_DATABASE_URL": conninfo, "GATEWAY_REFRESH_OVERLAP_SECONDS": "1",
            "GATEWAY_SERVICE_ACCOUNTS": "rules:rules-secret-0123456789",
        ]
        environment.merge(settings) { _, new in new }
        let configuration = try GatewayConfiguration(environment: environment)
        let pool = PostgresPool(configuration: PostgresConfiguration(conninfo: conninfo, poolSize: 4), group: group)
        try await Migrator(directory: "\(TestDatabase.root)/services/gateway/migrations").migrate(pool)
        _ = try await GatewayBootstrap.createFirstAdmin(username: "admin", password: adminPassword, configuration: configuration, pool: pool)
        let keys = try await KeyRing.load(pool: pool, sealingKey: configuration.keyEncryptionKey, accessLifetime: configuration.accessLifetime)
        let logger = Logger(label: "gateway-test")
        let service = GatewayService(pool: pool, keys: keys, configuration: configuration, logger: logger)
        try await service.prepare()
        var serverConfiguration = RPCServer.Configuration()
        serverConfiguration.port = 0
        let authenticator = Authenticator(keys: CurrentKeys { keys.published })
        let listener = PostgresListener(conninfo: conninfo, channels: [AlarmBook.outbox.channel], loop: group.loops[0], pollInterval: .milliseconds(200))
        listener.start()
        let memberships = TestMemberships()
        let alarms = AlarmsService(pool: pool, signal: listener.signal, visibility: ProjectVisibility { memberships[$0] })
        let server = try RPCServer(
            configuration: serverConfiguration, services: [service, alarms, DashboardsService(pool: pool)],
            interceptors: ServiceDaemon.interceptors(for: "gateway", logger: logger, authenticator: authenticator), group: group)
        let port = try await server.start()
        let client = try RPCClient(host: "127.0.0.1", port: port)
        return GatewayHarness(
            server: server, client: client, pool: pool, service: service, configuration: configuration, conninfo: conninfo, group: group,
            listener: listener, memberships: memberships)
    }

    func stop() async {
        await client.close()
        await server.shutdown(gracePeriod: .seconds(1))
        await listener.stop()
        await pool.close()
        group.shutdown()
    }

    static func with(_ settings: [String: String] = [:], _ body: (GatewayHarness) async throws -> Void) async throws {
        let harness = try await start(settings)
        do {
            try await body(harness)
        } catch {
            await harness.stop()
            throw error
        }
        await harness.stop()
    }

    // MARK: - Calls

    func login(_ username: String = "admin", _ password: String = adminPassword) async throws -> Stb_Gateway_V1_LoginResponse {
        var request = Stb_Gateway_V1_LoginRequest()
        request.username = username
        request.password = password
        return try await client.unary(Auth.login, request: request)
    }

    func refresh(_ token: String) async throws -> Stb_Gateway_V1_LoginResponse {
        var request = Stb_Gateway_V1_RefreshRequest()
        request.refreshToken = token
        return try await client.unary(Auth.refresh, request: request)
    }

    func whoAmI(_ token: String) async throws -> Stb_Gateway_V1_User {
        try await client.unary(Auth.whoAmI, request: Stb_Gateway_V1_WhoAmIRequest(), metadata: Metadata.bearer(token))
    }

    @discardableResult
    func createUser(_ username: String, role: Stb_Gateway_V1_Role, password: String, as token: String) async throws -> Stb_Gateway_V1_User {
        var request = Stb_Gateway_V1_CreateUserRequest()
        request.username = username
        request.role = role
        request.password = password
        return try await client.unary(Auth.createUser, request: request, metadata: Metadata.bearer(token))
    }

    func activityKinds(of user: String) async throws -> [String] {
        let rows = try await pool.query("SELECT kind FROM activity WHERE username = \(user) ORDER BY id")
        return try rows.map { row throws(PostgresError) in try row.decode(0, as: String.self) }
    }

    func count(_ sql: String) async throws -> Int {
        try await pool.query(PostgresQuery(sql: sql))[0].decode(0, as: Int.self)
    }
}

/// Project memberships by user id, set by a test.
final class TestMemberships: Sendable {
    private let table = Mutex<[String: [String]]>([:])

    subscript(userID: String) -> [String] {
        get { table.withLock { $0[userID] ?? [] } }
        set { table.withLock { $0[userID] = newValue } }
    }
}

/// Expects `body` to throw an `RPCError` with `code`; returns it.
@discardableResult
func expectStatus(
    _ code: RPCError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void
) async -> RPCError? {
    do {
        try await body()
        Issue.record("expected \(code), but the call succeeded", sourceLocation: sourceLocation)
    } catch let error as RPCError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected RPCError \(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
