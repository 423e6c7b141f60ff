import Logging
import STBAuth
import STBCatalog
import STBMessages
import STBPostgres
import STBRPC
import STBRules
import STBService
import STBServiceTestSupport
import STBAuthTestSupport
import Synchronization
import Testing

typealias Rules = Stb_Rules_V1_Rules
typealias Catalog = Stb_Catalog_V1_Catalog

extension RPCClient.Configuration {
    /// A client whose calls carry `role`'s token (an engineer's by default).
    static func authenticated(_ role: Role = .engineer, name: String = "tester") -> RPCClient.Configuration {
        var configuration = RPCClient.Configuration()
        configuration.credentials = BearerCredentials(token: TestIdentity.token(role, name: name))
        return configuration
    }
}

/// A catalog service and a rules service following it, each on a free port with a fresh
/// schema of its own in the test database, migrated with the services' real migrations.
struct RulesHarness {
    let catalogServer: RPCServer
    let rulesServer: RPCServer
    let catalog: RPCClient
    let rules: RPCClient
    let service: RulesService
    let replica: CatalogReplica
    let pools: [PostgresPool]
    let listeners: [PostgresListener]
    let group: EventLoopGroup

    static func start(replicaMaxMessageSize: Int = CatalogReplica.defaultMaxMessageSize) async throws -> RulesHarness {
        let group = try EventLoopGroup(count: 2, name: "rules-test")
        let logger = Logger(label: "rules-test")
        let authenticator = Authenticator(keys: CurrentKeys(TestIdentity.keys))

        let (catalogPool, catalogConninfo) = try await TestDatabase.migratedPool("catalog", prefix: "catalog_rt", group: group)
        let catalogListener = PostgresListener(conninfo: catalogConninfo, channels: [CatalogService.channel], loop: group.loops[0], pollInterval: .milliseconds(200))
        catalogListener.start()
        var configuration = RPCServer.Configuration()
        configuration.port = 0
        let catalogServer = try RPCServer(
            configuration: configuration, services: [CatalogService(pool: catalogPool, signal: catalogListener.signal, logger: logger)],
            interceptors: ServiceDaemon.interceptors(for: "catalog", logger: logger, authenticator: authenticator), group: group)
        let catalogPort = try await catalogServer.start()

        let (rulesPool, rulesConninfo) = try await TestDatabase.migratedPool("rules", prefix: "rules_rt", group: group)
        let rulesListener = PostgresListener(conninfo: rulesConninfo, channels: [RulesService.channel], loop: group.loops[1], pollInterval: .milliseconds(200))
        rulesListener.start()
        let service = RulesService(pool: rulesPool, signal: rulesListener.signal, logger: logger)
        try await service.reloadRules()
        let replica = try CatalogReplica(
            host: "127.0.0.1", port: catalogPort, maxMessageSize: replicaMaxMessageSize,
            credentials: BearerCredentials(token: TestIdentity.token(.service, name: "rules")), logger: logger,
            onFreshnessChange: { service.catalogFreshnessChanged($0) },
            onUpdate: { service.catalogChanged($0) }
        )
        let rulesServer = try RPCServer(
            configuration: configuration, services: [service],
            interceptors: ServiceDaemon.interceptors(for: "rules", logger: logger, authenticator: authenticator), group: group)
        let rulesPort = try await rulesServer.start()
        return RulesHarness(
            catalogServer: catalogServer, rulesServer: rulesServer,
            catalog: try RPCClient(host: "127.0.0.1", port: catalogPort, configuration: .authenticated()),
            rules: try RPCClient(host: "127.0.0.1", port: rulesPort, configuration: .authenticated()),
            service: service, replica: replica, pools: [catalogPool, rulesPool], listeners: [catalogListener, rulesListener], group: group)
    }

    func stop() async {
        await replica.stop()
        await catalog.close()
        await rules.close()
        await rulesServer.shutdown(gracePeriod: .seconds(1))
        await catalogServer.shutdown(gracePeriod: .seconds(1))
        for listener in listeners { await listener.stop() }
        for pool in pools { await pool.close() }
        group.shutdown()
    }

    /// Imports `document` into the catalog, starts following it, and waits for the copy.
    static func with(
        seed document: String, replicaMaxMessageSize: Int = CatalogReplica.defaultMaxMessageSize,
        _ body: (RulesHarness) async throws -> Void
    ) async throws {
        let harness = try await start(replicaMaxMessageSize: replicaMaxMessageSize)
        do {
            var request = Stb_Catalog_V1_ImportSeedRequest()
            request.documentJson = document
            _ = try await harness.catalog.unary(Catalog.importSeed, request: request)
            harness.replica.start()
            try await harness.waitUntil { harness.service.isReady }
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

    @discardableResult
    func createRule(_ key: String, subject: String, type: Stb_Rules_V1_RuleType, payload: String, severity: Stb_Rules_V1_Severity = .error, message: String = "") async throws -> Stb_Rules_V1_Rule {
        var rule = Stb_Rules_V1_Rule()
        rule.key = key
        rule.subject = subject
        rule.type = type
        rule.payloadJson = payload
        rule.severity = severity
        rule.message = message
        rule.active = true
        var request = Stb_Rules_V1_CreateRuleRequest()
        request.rule = rule
        return try await rules.unary(Rules.createRule, request: request)
    }

    func evaluate(_ choices: [(String, Bool?, String?)], base: [UInt8] = []) async throws -> Stb_Rules_V1_EvaluateResponse {
        var request = Stb_Rules_V1_EvaluateRequest()
        request.baseSelectionHash = base
        request.options = choices.map { key, included, value in
            var choice = Stb_Rules_V1_OptionChoice()
            choice.key = key
            choice.included = included
            choice.valueJson = value
            return choice
        }
        return try await rules.unary(Rules.evaluate, request: request)
    }
}

/// Expects `body` to throw an `RPCError` with `code`; returns it.
let smallSeed = """
{"modules": [
  {"key": "video", "name": "Video", "initial_state": "idle",
   "states": [{"name": "idle"}, {"name": "4k_enabled"}],
   "transitions": [{"from": "idle", "event": "ENABLE_4K", "to": "4k_enabled", "condition": {"==": [{"var": "hdmi_version"}, "2.1"]}}],
   "groups": [{"key": "output", "name": "Output", "options": [
     {"key": "hdr", "name": "HDR", "type": "boolean", "default": true, "included_by_default": true},
     {"key": "uhd_output", "name": "4K output", "type": "boolean", "default": false},
     {"key": "hdmi_2_1", "name": "HDMI 2.1", "type": "boolean", "default": false},
     {"key": "legacy_mode", "name": "Legacy", "type": "boolean", "default": false},
     {"key": "max_bitrate", "name": "Max bitrate", "type": "integer", "default": 20000, "meta": {"min": 0, "max": 100000}},
     {"key": "h264", "name": "H.264", "type": "boolean", "default": true},
     {"key": "h265", "name": "H.265", "type": "boolean", "default": true}]}]}]}
"""
