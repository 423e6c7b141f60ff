import Logging
import STBAuth
import STBAuthTestSupport
import STBCatalog
import STBMessages
import STBPostgres
import STBProject
import STBRPC
import STBRules
import STBService
import STBServiceTestSupport
import Synchronization
import Testing

typealias Projects = Stb_Project_V1_Projects
typealias Rules = Stb_Rules_V1_Rules
typealias Catalog = Stb_Catalog_V1_Catalog

/// A catalog, a rules service following it and a project service following both, each on
/// a free port with a fresh schema of its own in the test database (the services' real
/// migrations), and clients that present test identities.
final class ProjectHarness: Sendable {
    let servers: [RPCServer]
    let catalogPort: Int
    let rulesPort: Int
    let projectPort: Int
    let service: ProjectService
    let rulesService: RulesService
    let replicas: [CatalogReplica]
    let pools: [PostgresPool]
    let projectConninfo: String
    let listeners: [PostgresListener]
    let group: EventLoopGroup
    let clients = Mutex<[String: RPCClient]>([:])

    init(servers: [RPCServer], ports: (Int, Int, Int), service: ProjectService, rulesService: RulesService, replicas: [CatalogReplica],
         pools: [PostgresPool], projectConninfo: String, listeners: [PostgresListener], group: EventLoopGroup) {
        self.servers = servers
        (catalogPort, rulesPort, projectPort) = ports
        self.service = service
        self.rulesService = rulesService
        self.replicas = replicas
        self.pools = pools
        self.projectConninfo = projectConninfo
        self.listeners = listeners
        self.group = group
    }

    static func start() async throws -> ProjectHarness {
        let group = try EventLoopGroup(count: 2, name: "project-test")
        let logger = Logger(label: "project-test")
        let authenticator = Authenticator(keys: CurrentKeys(TestIdentity.keys))
        var configuration = RPCServer.Configuration()
        configuration.port = 0

        let (catalogPool, catalogConninfo) = try await TestDatabase.migratedPool("catalog", prefix: "catalog_pt", group: group)
        let catalogListener = PostgresListener(conninfo: catalogConninfo, channels: [CatalogService.channel], loop: group.loops[0], pollInterval: .milliseconds(200))
        catalogListener.start()
        let catalogServer = try RPCServer(
            configuration: configuration, services: [CatalogService(pool: catalogPool, signal: catalogListener.signal, logger: logger)],
            interceptors: ServiceDaemon.interceptors(for: "catalog", logger: logger, authenticator: authenticator), group: group)
        let catalogPort = try await catalogServer.start()

        let (rulesPool, rulesConninfo) = try await TestDatabase.migratedPool("rules", prefix: "rules_pt", group: group)
        let rulesListener = PostgresListener(conninfo: rulesConninfo, channels: [RulesService.channel], loop: group.loops[1], pollInterval: .milliseconds(200))
        rulesListener.start()
        let rulesService = RulesService(pool: rulesPool, signal: rulesListener.signal, logger: logger)
        try await rulesService.reloadRules()
        let rulesReplica = try CatalogReplica(
            host: "127.0.0.1", port: catalogPort, credentials: BearerCredentials(token: TestIdentity.token(.service, name: "rules")), logger: logger,
            onFreshnessChange: { rulesService.catalogFreshnessChanged($0) }, onUpdate: { rulesService.catalogChanged($0) })
        let rulesServer = try RPCServer(
            configuration: configuration, services: [rulesService],
            interceptors: ServiceDaemon.interceptors(for: "rules", logger: logger, authenticator: authenticator), group: group)
        let rulesPort = try await rulesServer.start()

        let (projectPool, projectConninfo) = try await TestDatabase.migratedPool("project", prefix: "project_pt", group: group)
        let projectListener = PostgresListener(conninfo: projectConninfo, channels: [ProjectService.channel], loop: group.loops[0], pollInterval: .milliseconds(200))
        projectListener.start()
        let serviceCredentials = BearerCredentials(token: TestIdentity.token(.service, name: "project"))
        var rulesClient = RPCClient.Configuration()
        rulesClient.credentials = serviceCredentials
        let service = ProjectService(
            pool: projectPool, signal: projectListener.signal,
            rules: try RPCClient(host: "127.0.0.1", port: rulesPort, configuration: rulesClient), logger: logger)
        let projectReplica = try CatalogReplica(
            host: "127.0.0.1", port: catalogPort, credentials: serviceCredentials, logger: logger,
            onFreshnessChange: { service.catalogFreshnessChanged($0) }, onUpdate: { service.catalogChanged($0) })
        let projectServer = try RPCServer(
            configuration: configuration, services: [service],
            interceptors: ServiceDaemon.interceptors(for: "project", logger: logger, authenticator: authenticator), group: group)
        let projectPort = try await projectServer.start()
        return ProjectHarness(
            servers: [projectServer, rulesServer, catalogServer], ports: (catalogPort, rulesPort, projectPort), service: service,
            rulesService: rulesService, replicas: [rulesReplica, projectReplica], pools: [catalogPool, rulesPool, projectPool],
            projectConninfo: projectConninfo, listeners: [catalogListener, rulesListener, projectListener], group: group)
    }

    func stop() async {
        for replica in replicas { await replica.stop() }
        for client in clients.withLock({ Array($0.values) }) { await client.close() }
        for server in servers { await server.shutdown(gracePeriod: .seconds(1)) }
        for listener in listeners { await listener.stop() }
        for pool in pools { await pool.close() }
        group.shutdown()
    }

    /// A client of the project service (or `port`) acting as `name` with `role`.
    func client(_ name: String, _ role: Role = .engineer, port: Int? = nil) throws -> RPCClient {
        let port = port ?? projectPort
        let key = "\(name)/\(role.claim)/\(port)"
        if let existing = clients.withLock({ $0[key] }) { return existing }
        var configuration = RPCClient.Configuration()
        configuration.credentials = BearerCredentials(token: TestIdentity.token(role, name: name))
        let client = try RPCClient(host: "127.0.0.1", port: port, configuration: configuration)
        clients.withLock { $0[key] = client }
        return client
    }

    /// Imports `seed` into the catalog (and `rules`, a rules document, into the rules
    /// service), starts the copies and waits until both services have the catalog.
    static func with(seed: String, rules: String? = nil, _ body: (ProjectHarness) async throws -> Void) async throws {
        let harness = try await start()
        do {
            let admin = try harness.client("root", .admin, port: harness.catalogPort)
            _ = try await admin.unary(Catalog.importSeed, request: Stb_Catalog_V1_ImportSeedRequest(documentJson: seed))
            for replica in harness.replicas { replica.start() }
            try await harness.waitUntil { harness.service.isServing && harness.rulesService.isServing }
            if let rules {
                let rulesAdmin = try harness.client("root", .admin, port: harness.rulesPort)
                _ = try await rulesAdmin.unary(Rules.importRules, request: Stb_Rules_V1_ImportRulesRequest(documentJson: rules))
            }
            try await body(harness)
        } catch {
            await harness.stop()
            throw error
        }
        await harness.stop()
    }

    func waitUntil(timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
        try await STBServiceTestSupport.waitUntil(timeout: timeout, condition)
    }

    /// The user id the test identities give `name`.
    static func userID(_ name: String) -> String { "user:\(name)" }
}

/// A small catalog: video (hdr, 4k_output, max_bitrate, codec) and audio (dolby).
let demoSeed = """
{
  "modules": [
    {"key": "video", "name": "Video", "groups": [
      {"key": "output", "name": "Output", "options": [
        {"key": "hdr", "name": "HDR", "type": "boolean", "default": false, "included_by_default": true},
        {"key": "4k_output", "name": "4K output", "type": "boolean", "default": false, "included_by_default": true},
        {"key": "max_bitrate", "name": "Max bitrate", "type": "integer", "default": 8000, "included_by_default": true,
         "meta": {"min": 1000, "max": 50000}},
        {"key": "codec", "name": "Codec", "type": "enum", "default": "h264", "included_by_default": true,
         "meta": {"values": ["h264", "h265", "av1"]}},
        {"key": "serial", "name": "Serial", "type": "string", "default": "x", "editable": false, "included_by_default": false}
      ]}
    ]},
    {"key": "audio", "name": "Audio", "groups": [
      {"key": "main", "name": "Main", "options": [
        {"key": "dolby", "name": "Dolby", "type": "boolean", "default": true, "included_by_default": false}
      ]}
    ]}
  ]
}
"""

/// `hdr` requires `4k_output`; bitrate at most 40000 when hdr is on.
let demoRules = """
{"rules": [
  {"key": "hdr-needs-4k", "subject": "hdr", "type": "requires", "payload": {"requires": ["4k_output"]}, "message": "HDR needs 4K output"},
  {"key": "dolby-warning", "subject": "dolby", "type": "validation", "payload": {"logic": {"<": [{"var": "max_bitrate"}, 100]}},
   "severity": "warning", "message": "Dolby at this bitrate is wasteful"}
]}
"""

extension ProjectHarness {
    @discardableResult
    func createProject(_ key: String, as owner: String = "olivia") async throws -> Stb_Project_V1_Project {
        try await client(owner).unary(Projects.createProject, request: Stb_Project_V1_CreateProjectRequest(key: key, name: "Project \(key)"))
    }

    @discardableResult
    func set(_ project: String, _ changes: [Stb_Project_V1_OptionChange], as user: String = "olivia", role: Role = .engineer) async throws -> Stb_Project_V1_SetOptionsResponse {
        try await client(user, role).unary(Projects.setOptions, request: Stb_Project_V1_SetOptionsRequest(projectKey: project, changes: changes))
    }

    func config(_ project: String, as user: String = "olivia", role: Role = .engineer, known: [UInt8] = []) async throws -> Stb_Project_V1_ProjectConfig {
        try await client(user, role).unary(Projects.getProjectConfig, request: Stb_Project_V1_GetProjectConfigRequest(projectKey: project, knownHash: known))
    }

    func audit(_ project: String, as user: String = "olivia") async throws -> [Stb_Project_V1_AuditEntry] {
        try await client(user).unary(Projects.listAudit, request: Stb_Project_V1_ListAuditRequest(projectKey: project)).entries
    }
}

func value(_ key: String, _ json: String) -> Stb_Project_V1_OptionChange {
    Stb_Project_V1_OptionChange(key: key, change: .valueJson(json))
}

func include(_ key: String, _ on: Bool) -> Stb_Project_V1_OptionChange {
    Stb_Project_V1_OptionChange(key: key, change: .include(on))
}

extension Stb_Project_V1_ProjectConfig {
    func option(_ key: String) -> Stb_Project_V1_ProjectOption? {
        for module in modules { for group in module.groups { if let found = group.options.first(where: { $0.key == key }) { return found } } }
        return nil
    }
}
