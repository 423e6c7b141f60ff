import Dispatch
import Glibc
import Logging
import STBPostgres
import STBRPC

/// Throws INVALID_ARGUMENT listing every problem (the first `limit`), or returns.
public func check(_ problems: [String], limit: Int = 20) throws {
    guard !problems.isEmpty else { return }
    var message = problems.prefix(limit).joined(separator: "; ")
    if problems.count > limit { message += "; and \(problems.count - limit) more" }
    throw RPCError(code: .invalidArgument, message: message)
}

/// Whether `value` is a valid key of a catalog entity or rule: lowercase letters, digits,
/// '_', '.' and '-', starting with a letter or digit, at most 64 characters.
public func isValidKey(_ value: String) -> Bool {
    let bytes = Array(value.utf8)
    guard let first = bytes.first, bytes.count <= 64, isLowercaseLetterOrDigit(first) else { return false }
    return bytes.allSatisfy { isLowercaseLetterOrDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
}

private func isLowercaseLetterOrDigit(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
}

/// What every service executable does around its own service: configuration from the
/// environment, the migrations folder, waiting for the database, and a graceful stop on
/// SIGTERM or SIGINT.
public struct ServiceDaemon: Sendable {
    /// The service's name, lowercase: `catalog`, `rules`. Variables start with it in upper case.
    public let name: String
    public let logger: Logger
    public let environment: [String: String]

    /// Sets up logging (`LOG_LEVEL`) and reads the environment.
    public init(name: String) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = getenv("LOG_LEVEL").flatMap { Logger.Level(rawValue: String(cString: $0)) } ?? .info
            return handler
        }
        self.name = name
        self.logger = Logger(label: "stb.\(name)")
        self.environment = PostgresConfiguration.currentEnvironment()
    }

    private var prefix: String { name.uppercased() }

    /// Logs `message` as critical and exits 1.
    public func fail(_ message: String) -> Never {
        logger.critical("\(message)")
        exit(1)
    }

    /// A non-negative integer variable, or `value` when unset; a bad value stops start-up.
    public func integer(_ variable: String, default value: Int) -> Int {
        guard let text = environment[variable] else { return value }
        guard let parsed = Int(text), parsed >= 0 else { fail("\(variable)=\"\(text)\" is not a valid non-negative integer") }
        return parsed
    }

    /// `<SERVICE>_MIGRATIONS_DIR`, else `services/<name>/migrations` found from the working
    /// directory or from the executable's location (a build folder inside the checkout).
    public var migrationsDirectory: String {
        if let configured = environment["\(prefix)_MIGRATIONS_DIR"] { return configured }
        let relative = "services/\(name)/migrations"
        var candidates = [relative]
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if length > 0 {
            var folder = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            for _ in 0..<4 {
                folder = String(folder[..<(folder.lastIndex(of: "/") ?? folder.startIndex)])
                candidates.append("\(folder)/\(relative)")
            }
        }
        return candidates.first { access($0, R_OK) == 0 } ?? candidates[0]
    }

    /// Applies the migrations, waiting up to `<SERVICE>_DB_WAIT_SECONDS` (30) for a
    /// database that is still starting; anything else stops start-up.
    public func migrate(_ pool: PostgresPool) async {
        let migrator: Migrator
        do {
            migrator = try Migrator(directory: migrationsDirectory)
        } catch {
            fail("\(error)")
        }
        let deadline = ContinuousClock.now + .seconds(integer("\(prefix)_DB_WAIT_SECONDS", default: 30))
        while true {
            do {
                let applied = try await migrator.migrate(pool)
                logger.info("database ready", metadata: ["migrations_applied": "\(applied.joined(separator: ","))"])
                return
            } catch let error as PostgresError where error.isRetryable && ContinuousClock.now < deadline {
                logger.notice("waiting for the database", metadata: ["error": "\(error.message)"])
                try? await Task.sleep(for: .milliseconds(500))
            } catch {
                fail("cannot prepare the \(name) database: \(error)")
            }
        }
    }

    /// Starts `server`, prints `<name>d listening on HOST:PORT` (scripts wait for it),
    /// and returns once SIGTERM or SIGINT has stopped it gracefully.
    @MainActor
    public func serve(_ server: RPCServer, onStart: @Sendable () -> Void = {}) async {
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let sources = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0, queue: .main) }
        for source in sources {
            source.setEventHandler { [logger] in
                logger.info("shutting down")
                Task { await server.shutdown(gracePeriod: .seconds(10)) }
            }
            source.resume()
        }
        do {
            let port = try await server.start()
            onStart()
            print("\(name)d listening on \(server.configuration.host):\(port)")
            fflush(nil)
        } catch {
            fail("could not start: \(error)")
        }
        await server.waitUntilStopped()
        for source in sources { source.cancel() }
    }
}
