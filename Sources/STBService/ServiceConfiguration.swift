import STBPostgres
import STBRPC

/// What every service executable reads from the environment, once, at start. A bad value
/// stops start-up with a message naming the variable.
///
/// Variables start with the service's name in upper case (`CATALOG_PORT`): `_HOST`,
/// `_PORT`, `_WORKERS`, `_DATABASE_URL`, `_DB_POOL_SIZE`, `_MIGRATIONS_DIR`,
/// `_DB_WAIT_SECONDS`, `_EVENT_RETENTION_HOURS`, `_SERVICE_SECRET`, `_SERVICE_TOKEN`; the
/// shared `STB_RPC_*` variables tune the RPC layer, `STB_AUTH_KEYS_FILE` and
/// `STB_GATEWAY_ADDR` say where token verification keys come from.
public struct ServiceConfiguration: Sendable {
    /// The service's name, lowercase: `catalog`, `rules`.
    public var name: String
    public var server: RPCServer.Configuration
    public var database: PostgresConfiguration
    /// The service's migrations folder.
    public var migrationsDirectory: String
    /// How long start-up waits for a database that is still starting.
    public var databaseWait: Duration
    /// How long change events are kept; older cursors must resync.
    public var eventRetention: Duration
    /// Token verification keys and this service's own account (`STB_AUTH_KEYS_FILE`,
    /// `STB_GATEWAY_ADDR`, `_SERVICE_SECRET`, `_SERVICE_TOKEN`).
    public var auth: AuthConfiguration

    /// Reads the configuration of service `name` (default port `defaultPort`) from `environment`.
    public init(name: String, defaultPort: Int, environment: [String: String]) throws(ConfigurationError) {
        let prefix = name.uppercased()
        self.name = name
        do {
            server = try RPCServer.Configuration.fromEnvironment(prefix: prefix, defaultPort: defaultPort, environment: environment)
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError(variable: "\(prefix)_*", value: "", expected: "valid: \(error)")
        }
        database = PostgresConfiguration.fromEnvironment(service: name, environment: environment)
        if let text = environment["\(prefix)_DB_POOL_SIZE"] {
            database.poolSize = try Self.integer("\(prefix)_DB_POOL_SIZE", text, in: 1...1000)
        }
        migrationsDirectory = environment["\(prefix)_MIGRATIONS_DIR"] ?? Self.findMigrations(of: name)
        var waitSeconds = 30
        if let text = environment["\(prefix)_DB_WAIT_SECONDS"] {
            waitSeconds = try Self.integer("\(prefix)_DB_WAIT_SECONDS", text, in: 0...86_400)
        }
        databaseWait = .seconds(waitSeconds)
        // At most ten years: the retention is subtracted from now() in SQL.
        var hours = 168
        if let text = environment["\(prefix)_EVENT_RETENTION_HOURS"] {
            hours = try Self.integer("\(prefix)_EVENT_RETENTION_HOURS", text, in: 0...87_600)
        }
        eventRetention = .seconds(hours * 3600)
        auth = try AuthConfiguration(serviceName: name, environment: environment)
    }

    /// An integer variable within `range`.
    public static func integer(_ variable: String, _ text: String, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let value = Int(text), range.contains(value) else {
            throw ConfigurationError(variable: variable, value: text, expected: "an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// A `host:port` variable, or `default` when unset.
    public static func address(_ variable: String, in environment: [String: String], default fallback: String) throws(ConfigurationError) -> (host: String, port: Int) {
        let text = environment[variable] ?? fallback
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port),
              colon > text.startIndex
        else { throw ConfigurationError(variable: variable, value: text, expected: "host:port") }
        return (String(text[..<colon]), port)
    }

    /// `services/<name>/migrations`, found from the working directory or from the
    /// executable's location (a build folder inside the checkout).
    static func findMigrations(of name: String) -> String {
        let relative = "services/\(name)/migrations"
        var candidates = [relative]
        if var folder = executablePath() {
            for _ in 0..<4 {
                folder = String(folder[..<(folder.lastIndex(of: "/") ?? folder.startIndex)])
                candidates.append("\(folder)/\(relative)")
            }
        }
        return candidates.first(where: isReadable) ?? candidates[0]
    }
}
