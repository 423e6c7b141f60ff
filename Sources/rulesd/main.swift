import Dispatch
import Glibc
import Logging
import STBMessages
import STBPostgres
import STBRPC
import STBRules

// The rules service. Configuration (environment, with local defaults):
//   RULES_HOST / RULES_PORT (127.0.0.1 / 50052), RULES_WORKERS (cores)
//   RULES_DATABASE_URL         libpq URI (default: the local cluster of scripts/db)
//   RULES_DB_POOL_SIZE         connections (cores × 2)
//   RULES_MIGRATIONS_DIR       migrations folder (services/rules/migrations)
//   RULES_DB_WAIT_SECONDS      how long start-up waits for the database (30)
//   RULES_CATALOG_ADDR         the catalog service (127.0.0.1:50051)
//   STB_RPC_*, LOG_LEVEL

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = getenv("LOG_LEVEL").flatMap { Logger.Level(rawValue: String(cString: $0)) } ?? .info
    return handler
}
let logger = Logger(label: "stb.rules")
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
    if let configured = environment["RULES_MIGRATIONS_DIR"] { return configured }
    var candidates = ["services/rules/migrations"]
    var buffer = [CChar](repeating: 0, count: 4096)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    if length > 0 {
        var folder = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        for _ in 0..<4 {
            folder = String(folder[..<(folder.lastIndex(of: "/") ?? folder.startIndex)])
            candidates.append("\(folder)/services/rules/migrations")
        }
    }
    return candidates.first { access($0, R_OK) == 0 } ?? candidates[0]
}

let serverConfiguration: RPCServer.Configuration
do {
    serverConfiguration = try RPCServer.Configuration.fromEnvironment(prefix: "RULES", defaultPort: 50052)
} catch {
    fail("\(error)")
}
let catalogAddress = environment["RULES_CATALOG_ADDR"] ?? "127.0.0.1:50051"
guard let colon = catalogAddress.lastIndex(of: ":"), let catalogPort = Int(catalogAddress[catalogAddress.index(after: colon)...]) else {
    fail("RULES_CATALOG_ADDR=\"\(catalogAddress)\" is not host:port")
}
let catalogHost = String(catalogAddress[..<colon])

let databaseConfiguration = PostgresConfiguration.fromEnvironment(service: "rules", environment: environment)
let group: EventLoopGroup
do {
    group = try EventLoopGroup(count: max(1, serverConfiguration.workers), name: "rules")
} catch {
    fail("could not start worker threads: \(error)")
}
let pool = PostgresPool(configuration: databaseConfiguration, group: group)

let migrator: Migrator
do {
    migrator = try Migrator(directory: migrationsDirectory())
} catch {
    fail("\(error)")
}
let waitDeadline = ContinuousClock.now + .seconds(integer("RULES_DB_WAIT_SECONDS", default: 30))
while true {
    do {
        let applied = try await migrator.migrate(pool)
        logger.info("database ready", metadata: ["migrations_applied": "\(applied.joined(separator: ","))"])
        break
    } catch let error as PostgresError where error.isRetryable && ContinuousClock.now < waitDeadline {
        logger.notice("waiting for the database", metadata: ["error": "\(error.message)"])
        try await Task.sleep(for: .milliseconds(500))
    } catch {
        fail("cannot prepare the rules database: \(error)")
    }
}

let listener = PostgresListener(conninfo: databaseConfiguration.conninfo, channels: [RulesService.channel], loop: group.loops[0])
listener.start()
let service = RulesService(pool: pool, signal: listener.signal, logger: logger)
do {
    try await service.reloadRules()
} catch {
    fail("cannot load the rules: \(error)")
}

let server: RPCServer
do {
    server = try RPCServer(configuration: serverConfiguration, services: [service], group: group, logger: logger)
} catch {
    fail("could not start: \(error)")
}

// Health is NOT_SERVING until a copy of the catalog exists; it stays SERVING from the
// last copy while the catalog is unreachable.
let replica: CatalogReplica
do {
    replica = try CatalogReplica(host: catalogHost, port: catalogPort, logger: logger) { configuration in
        service.catalogChanged(configuration)
        server.health.setStatus(.serving, forService: "")
        server.health.setStatus(.serving, forService: "stb.rules.v1.Rules")
    }
} catch {
    fail("cannot reach the catalog at \(catalogAddress): \(error)")
}
replica.start()
service.followRuleChanges()

signal(SIGTERM, SIG_IGN)
signal(SIGINT, SIG_IGN)
let signals = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0, queue: .main) }
for source in signals {
    source.setEventHandler {
        logger.info("shutting down")
        Task { await server.shutdown(gracePeriod: .seconds(10)) }
    }
    source.resume()
}

do {
    let port = try await server.start()
    if !service.isReady {
        server.health.setStatus(.notServing, forService: "")
        server.health.setStatus(.notServing, forService: "stb.rules.v1.Rules")
    }
    print("rulesd listening on \(server.configuration.host):\(port)")
    fflush(nil)
} catch {
    fail("could not start: \(error)")
}
await server.waitUntilStopped()
service.stopFollowingRuleChanges()
await replica.stop()
await listener.stop()
await pool.close()
group.shutdown()
