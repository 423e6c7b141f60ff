import Glibc
import Logging
import STBEventLoop
import STBPostgres
import STBService

/// `gatewayd`'s one-shot subcommands, run instead of the server:
///
/// - `gatewayd bootstrap-admin USERNAME`: creates the first admin (password: the first
///   line of standard input) when the gateway has no users; fails otherwise.
/// - `gatewayd rotate-key`: makes a new signing key; running gateways pick it up within
///   a minute and keep publishing the old one until its tokens have expired.
public enum GatewayCommands {
    /// Runs the subcommand `arguments` name (nil when they name none: run the server).
    public static func run(_ arguments: [String], daemon: ServiceDaemon, configuration: GatewayConfiguration) async -> Int32? {
        guard let command = arguments.first else { return nil }
        switch command {
        case "bootstrap-admin":
            guard arguments.count == 2 else { daemon.fail("usage: gatewayd bootstrap-admin USERNAME (password on standard input)") }
            guard let line = readLine(strippingNewline: true), !line.isEmpty else { daemon.fail("bootstrap-admin: no password on standard input") }
            return await withPool(daemon: daemon, configuration: configuration) { pool in
                let id = try await GatewayBootstrap.createFirstAdmin(username: arguments[1], password: line, configuration: configuration, pool: pool)
                print("gatewayd: admin \(arguments[1].lowercased()) created (\(id))")
            }
        case "rotate-key":
            return await withPool(daemon: daemon, configuration: configuration) { pool in
                let keys = try await KeyRing.load(pool: pool, sealingKey: configuration.keyEncryptionKey, accessLifetime: configuration.accessLifetime)
                print("gatewayd: signing key \(try await keys.rotate()) made")
            }
        default:
            daemon.fail("unknown command \(command); commands: bootstrap-admin USERNAME, rotate-key (none: run the server)")
        }
    }

    private static func withPool(daemon: ServiceDaemon, configuration: GatewayConfiguration, _ body: (PostgresPool) async throws -> Void) async -> Int32 {
        let loops: EventLoopGroup
        do {
            loops = try EventLoopGroup(count: 1, name: "gateway-command")
        } catch {
            daemon.fail("could not start a worker thread: \(error)")
        }
        var database = configuration.service.database
        database.poolSize = 1
        let pool = PostgresPool(configuration: database, group: loops)
        var status: Int32 = 0
        do {
            _ = try await Migrator(directory: configuration.service.migrationsDirectory).migrate(pool)
            try await body(pool)
        } catch {
            daemon.logger.critical("\(error)")
            status = 1
        }
        await pool.close()
        loops.shutdown()
        return status
    }
}
