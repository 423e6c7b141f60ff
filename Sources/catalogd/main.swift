import Glibc
import Logging
import STBCatalog
import STBPostgres
import STBRPC
import STBService

// The catalog service. Configuration (environment, with local defaults):
//   CATALOG_HOST / CATALOG_PORT (127.0.0.1 / 50051), CATALOG_WORKERS (cores)
//   CATALOG_DATABASE_URL       libpq URI (default: the local cluster of scripts/db)
//   CATALOG_DB_POOL_SIZE       connections (cores × 2)
//   CATALOG_MIGRATIONS_DIR     migrations folder (services/catalog/migrations)
//   CATALOG_DB_WAIT_SECONDS    how long start-up waits for the database (30)
//   CATALOG_EVENT_RETENTION_HOURS  change-feed retention (168)
//   STB_RPC_*, LOG_LEVEL

let daemon = ServiceDaemon(name: "catalog")
let logger = daemon.logger

let serverConfiguration: RPCServer.Configuration
do {
    serverConfiguration = try RPCServer.Configuration.fromEnvironment(prefix: "CATALOG", defaultPort: 50051)
} catch {
    daemon.fail("\(error)")
}
let databaseConfiguration = PostgresConfiguration.fromEnvironment(service: "catalog", environment: daemon.environment)
let group: EventLoopGroup
do {
    group = try EventLoopGroup(count: max(1, serverConfiguration.workers), name: "catalog")
} catch {
    daemon.fail("could not start worker threads: \(error)")
}
let pool = PostgresPool(configuration: databaseConfiguration, group: group)
await daemon.migrate(pool)

let listener = PostgresListener(conninfo: databaseConfiguration.conninfo, channels: [CatalogService.channel], loop: group.loops[0])
listener.start()
let service = CatalogService(pool: pool, signal: listener.signal, logger: logger)

let server: RPCServer
do {
    server = try RPCServer(configuration: serverConfiguration, services: [service], group: group, logger: logger)
} catch {
    daemon.fail("could not start: \(error)")
}

// Old change events are pruned; watchers behind the horizon are told to resync.
let retentionSeconds = Int64(daemon.integer("CATALOG_EVENT_RETENTION_HOURS", default: 168)) * 3600
let pruning = Task {
    while !Task.isCancelled {
        do {
            let pruned = try await service.pruneEvents(retentionSeconds: retentionSeconds)
            if pruned > 0 { logger.info("pruned change events", metadata: ["count": "\(pruned)"]) }
        } catch {
            logger.warning("pruning change events failed", metadata: ["error": "\(error)"])
        }
        try? await Task.sleep(for: .seconds(600))
    }
}

await daemon.serve(server)
pruning.cancel()
await listener.stop()
await pool.close()
group.shutdown()
