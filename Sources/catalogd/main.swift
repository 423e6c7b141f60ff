import Dispatch
import Glibc
import Logging
import STBCatalog
import STBPostgres
import STBRPC

// The catalog service. Configuration (environment, with local defaults):
//   CATALOG_HOST / CATALOG_PORT (127.0.0.1 / 50051), CATALOG_WORKERS (cores)
//   CATALOG_DATABASE_URL       libpq URI (default: the local cluster of scripts/db)
//   CATALOG_DB_POOL_SIZE       connections (cores × 2)
//   CATALOG_MIGRATIONS_DIR     migrations folder (services/catalog/migrations)
//   CATALOG_DB_WAIT_SECONDS    how long start-up waits for the database (30)
//   CATALOG_EVENT_RETENTION_HOURS  change-feed retention (168)
//   STB_RPC_*, LOG_LEVEL

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = getenv("LOG_LEVEL").flatMap { Logger.Level(rawValue: String(cString: $0)) } ?? .info
    return handler
}
let logger = Logger(label: "stb.catalog")
let environment = PostgresConfiguration.currentEnvironment()

func fail(_ message: String) -> Never {
    logger.critical("\(message)")
    exit(1)
}

func integer(_ name: String, default value: Int) -> Int {
    guard let text = environment[name] else { return value }
    guard let parsed = Int(text), parsed >= 0 else { fail("\(name)=\"\(text)\" is not a valid non-negative integer") }
    return parsed
}

/// The migrations folder: as configured, else found from the working directory or the executable.
func migrationsDirectory() -> String {
    if let configured = environment["CATALOG_MIGRATIONS_DIR"] { return configured }
    var candidates = ["services/catalog/migrations"]
    var buffer = [CChar](repeating: 0, count: 4096)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    if length > 0 {
        let executable = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var folder = executable
        for _ in 0..<4 {
            folder = String(folder[..<(folder.lastIndex(of: "/") ?? folder.startIndex)])
            candidates.append("\(folder)/services/catalog/migrations")
        }
    }
    return candidates.first { access($0, R_OK) == 0 } ?? candidates[0]
}

let serverConfiguration: RPCServer.Configuration
do {
    serverConfiguration = try RPCServer.Configuration.fromEnvironment(prefix: "CATALOG", defaultPort: 50051)
} catch {
    fail("\(error)")
}
let databaseConfiguration = PostgresConfiguration.fromEnvironment(service: "catalog", environment: environment)
let group: EventLoopGroup
do {
    group = try EventLoopGroup(count: max(1, serverConfiguration.workers), name: "catalog")
} catch {
    fail("could not start worker threads: \(error)")
}
let pool = PostgresPool(configuration: databaseConfiguration, group: group)

// Migrations first, waiting a while for a database that is still starting.
let migrator: Migrator
do {
    migrator = try Migrator(directory: migrationsDirectory())
} catch {
    fail("\(error)")
}
let waitDeadline = ContinuousClock.now + .seconds(integer("CATALOG_DB_WAIT_SECONDS", default: 30))
while true {
    do {
        let applied = try await migrator.migrate(pool)
        logger.info("database ready", metadata: ["migrations_applied": "\(applied.joined(separator: ","))"])
        break
    } catch let error as PostgresError where error.isRetryable && ContinuousClock.now < waitDeadline {
        logger.notice("waiting for the database", metadata: ["error": "\(error.message)"])
        try await Task.sleep(for: .milliseconds(500))
    } catch {
        fail("cannot prepare the catalog database: \(error)")
    }
}

let listener = PostgresListener(conninfo: databaseConfiguration.conninfo, channels: [CatalogService.channel], loop: group.loops[0])
listener.start()
let service = CatalogService(pool: pool, signal: listener.signal, logger: logger)

let server: RPCServer
do {
    server = try RPCServer(configuration: serverConfiguration, services: [service], group: group, logger: logger)
} catch {
    fail("could not start: \(error)")
}

// Old change events are pruned; watchers behind the horizon are told to resync.
let retentionSeconds = Int64(integer("CATALOG_EVENT_RETENTION_HOURS", default: 168)) * 3600
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

signal(SIGTERM, SIG_IGN)
signal(SIGINT, SIG_IGN)
let signals = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0, queue: .main) }
for source in signals {
    source.setEventHandler {
        logger.info("shutting down")
        Task {
            pruning.cancel()
            await server.shutdown(gracePeriod: .seconds(10))
        }
    }
    source.resume()
}

do {
    let port = try await server.start()
    // Scripts wait for this line to learn the port.
    print("catalogd listening on \(server.configuration.host):\(port)")
    fflush(nil)
} catch {
    fail("could not start: \(error)")
}
await server.waitUntilStopped()
await listener.stop()
await pool.close()
group.shutdown()
