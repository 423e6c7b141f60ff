import Logging
import STBAuth
import STBCatalog
import STBMessages
import STBPostgres
import STBRPC
import STBService
import STBAuthTestSupport
import STBServiceTestSupport
import Testing

typealias API = Stb_Catalog_V1_Catalog

/// A catalog service on a free port, with a fresh schema of its own in the test database
/// (`STB_TEST_DATABASE_URL`), migrated with the service's real migrations.
struct CatalogHarness {
    let server: RPCServer
    let client: RPCClient
    let pool: PostgresPool
    let service: CatalogService
    let listener: PostgresListener
    let group: EventLoopGroup

    static func start() async throws -> CatalogHarness {
        let group = try EventLoopGroup(count: 2, name: "catalog-test")
        let (pool, conninfo) = try await TestDatabase.migratedPool("catalog", prefix: "catalog_test", group: group)
        let listener = PostgresListener(conninfo: conninfo, channels: [CatalogService.channel], loop: group.loops[0], pollInterval: .milliseconds(200))
        listener.start()
        let service = CatalogService(pool: pool, signal: listener.signal, logger: Logger(label: "catalog-test"))
        var configuration = RPCServer.Configuration()
        configuration.port = 0
        let server = try RPCServer(
            configuration: configuration, services: [service],
            interceptors: ServiceDaemon.interceptors(for: "catalog", logger: Logger(label: "catalog-test"), authenticator: testAuthenticator()),
            group: group)
        let port = try await server.start()
        let client = try RPCClient(host: "127.0.0.1", port: port, configuration: .authenticated())
        return CatalogHarness(server: server, client: client, pool: pool, service: service, listener: listener, group: group)
    }

    func stop() async {
        await client.close()
        await server.shutdown(gracePeriod: .seconds(1))
        await listener.stop()
        await pool.close()
        group.shutdown()
    }

    static func with(_ body: (CatalogHarness) async throws -> Void) async throws {
        let harness = try await start()
        do {
            try await body(harness)
        } catch {
            await harness.stop()
            throw error
        }
        await harness.stop()
    }

    /// An engineer's token for `actor` (subject `user:<actor>`).
    func metadata(actor: String = "tester") -> Metadata {
        Metadata.bearer(TestIdentity.token(.engineer, name: actor))
    }

    func count(_ sql: String) async throws -> Int {
        try await pool.query(PostgresQuery(sql: sql))[0].decode(0, as: Int.self)
    }

    // MARK: - Building blocks

    @discardableResult
    func createModule(_ key: String, name: String? = nil) async throws -> Stb_Catalog_V1_Module {
        var request = Stb_Catalog_V1_CreateModuleRequest()
        var module = Stb_Catalog_V1_Module()
        module.key = key
        module.name = name ?? key.capitalized
        module.active = true
        request.module = module
        return try await client.unary(API.createModule, request: request, metadata: metadata())
    }

    @discardableResult
    func createGroup(_ module: String, _ key: String, position: Int32 = 0) async throws -> Stb_Catalog_V1_Group {
        var group = Stb_Catalog_V1_Group()
        group.moduleKey = module
        group.key = key
        group.name = key.capitalized
        group.position = position
        var request = Stb_Catalog_V1_CreateGroupRequest()
        request.group = group
        return try await client.unary(API.createGroup, request: request, metadata: metadata())
    }

    @discardableResult
    func createOption(
        _ module: String, _ group: String, _ key: String, type: Stb_Catalog_V1_OptionType = .boolean,
        default value: String = "true", meta: String = ""
    ) async throws -> Stb_Catalog_V1_Option {
        var option = Stb_Catalog_V1_Option()
        option.moduleKey = module
        option.groupKey = group
        option.key = key
        option.name = key.capitalized
        option.type = type
        option.defaultValue = value
        option.metaJson = meta
        option.editable = true
        var request = Stb_Catalog_V1_CreateOptionRequest()
        request.option = option
        return try await client.unary(API.createOption, request: request, metadata: metadata())
    }

    @discardableResult
    func createState(_ module: String, _ name: String) async throws -> Stb_Catalog_V1_State {
        var state = Stb_Catalog_V1_State()
        state.moduleKey = module
        state.name = name
        var request = Stb_Catalog_V1_CreateStateRequest()
        request.state = state
        return try await client.unary(API.createState, request: request, metadata: metadata())
    }

    func getConfig(modules: [String] = [], known: UInt64 = 0, acceptDelta: Bool = false) async throws -> Stb_Catalog_V1_GetConfigResponse {
        var request = Stb_Catalog_V1_GetConfigRequest()
        request.moduleKeys = modules
        request.knownRevision = known
        request.acceptDelta = acceptDelta
        return try await client.unary(API.getConfig, request: request)
    }
}

/// What a service under test verifies tokens with: the test key.
func testAuthenticator() -> Authenticator {
    Authenticator(keys: CurrentKeys(TestIdentity.keys))
}

extension RPCClient.Configuration {
    /// A client whose calls carry `role`'s token (an engineer's by default).
    static func authenticated(_ role: Role = .engineer, name: String = "tester") -> RPCClient.Configuration {
        var configuration = RPCClient.Configuration()
        configuration.credentials = BearerCredentials(token: TestIdentity.token(role, name: name))
        return configuration
    }
}

extension String {
    var capitalized: String { prefix(1).uppercased() + dropFirst() }
}

func optionRef(_ key: String) -> Stb_Catalog_V1_OptionRef {
    var ref = Stb_Catalog_V1_OptionRef()
    ref.ref = .key(key)
    return ref
}

func moduleRef(_ key: String) -> Stb_Catalog_V1_ModuleRef {
    var ref = Stb_Catalog_V1_ModuleRef()
    ref.ref = .key(key)
    return ref
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
