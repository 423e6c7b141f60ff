import Glibc
import Logging
import STBMessages
import STBPostgres
import STBRPC
import STBRules
import STBService

// The rules service. Configuration (environment, with local defaults):
//   RULES_HOST / RULES_PORT (127.0.0.1 / 50052), RULES_WORKERS (cores)
//   RULES_DATABASE_URL         libpq URI (default: the local cluster of scripts/db)
//   RULES_DB_POOL_SIZE         connections (cores × 2)
//   RULES_MIGRATIONS_DIR       migrations folder (services/rules/migrations)
//   RULES_DB_WAIT_SECONDS      how long start-up waits for the database (30)
//   RULES_CATALOG_ADDR         the catalog service (127.0.0.1:50051)
//   STB_RPC_*, LOG_LEVEL

let daemon = ServiceDaemon(name: "rules")
let logger = daemon.logger

let serverConfiguration: RPCServer.Configuration
do {
    serverConfiguration = try RPCServer.Configuration.fromEnvironment(prefix: "RULES", defaultPort: 50052)
} catch {
    daemon.fail("\(error)")
}
let catalogAddress = daemon.environment["RULES_CATALOG_ADDR"] ?? "127.0.0.1:50051"
guard let colon = catalogAddress.lastIndex(of: ":"), let catalogPort = Int(catalogAddress[catalogAddress.index(after: colon)...]) else {
    daemon.fail("RULES_CATALOG_ADDR=\"\(catalogAddress)\" is not host:port")
}
let catalogHost = String(catalogAddress[..<colon])

let databaseConfiguration = PostgresConfiguration.fromEnvironment(service: "rules", environment: daemon.environment)
let group: EventLoopGroup
do {
    group = try EventLoopGroup(count: max(1, serverConfiguration.workers), name: "rules")
} catch {
    daemon.fail("could not start worker threads: \(error)")
}
let pool = PostgresPool(configuration: databaseConfiguration, group: group)
await daemon.migrate(pool)

let listener = PostgresListener(conninfo: databaseConfiguration.conninfo, channels: [RulesService.channel], loop: group.loops[0])
listener.start()
let service = RulesService(pool: pool, signal: listener.signal, logger: logger)
do {
    try await service.reloadRules()
} catch {
    daemon.fail("cannot load the rules: \(error)")
}

let server: RPCServer
do {
    server = try RPCServer(configuration: serverConfiguration, services: [service], group: group, logger: logger)
} catch {
    daemon.fail("could not start: \(error)")
}

// Health is NOT_SERVING until a copy of the catalog exists, and while the copy is known to
// be behind a revision the catalog announced but that cannot be fetched; it stays SERVING
// from the last copy while the catalog is unreachable and nothing newer is known.
let publishHealth: @Sendable () -> Void = { [server, service] in
    let status: HealthService.Status = service.isServing ? .serving : .notServing
    server.health.setStatus(status, forService: "")
    server.health.setStatus(status, forService: "stb.rules.v1.Rules")
}
let replica: CatalogReplica
do {
    replica = try CatalogReplica(
        host: catalogHost, port: catalogPort, logger: logger,
        onFreshnessChange: { freshness in
            service.catalogFreshnessChanged(freshness)
            publishHealth()
        },
        onUpdate: { configuration in
            service.catalogChanged(configuration)
            publishHealth()
        }
    )
} catch {
    daemon.fail("cannot reach the catalog at \(catalogAddress): \(error)")
}
replica.start()
service.followRuleChanges()

await daemon.serve(server) { publishHealth() }
service.stopFollowingRuleChanges()
await replica.stop()
await listener.stop()
await pool.close()
group.shutdown()
