import Glibc
import Logging
import STBPostgres
import STBRPC
import ServiceLifecycle
import UnixSignals

/// Runs a service executable. `main` reads its configuration into one typed value and
/// hands it here with a function that assembles the service; the daemon does the rest,
/// the same way for every service:
///
/// 1. worker loops, the database pool, and the migrations (waiting for a database that is
///    still starting);
/// 2. the outbox listener, the health service, then `assemble` (the service's RPC
///    services and background services);
/// 3. the RPC server listens; `<name>d listening on HOST:PORT` is printed (scripts wait
///    for it);
///    Every call runs inside the interceptors: metrics (`MetricsInterceptor`), statuses
///    (`StatusInterceptor`), authentication and the method's least role
///    (`AuthenticationInterceptor`, keys from `STB_AUTH_KEYS_FILE` or the gateway, see
///    `AuthConfiguration`), then the service's own; `GET /metrics` (and `/metrics/<name>`)
///    on the same port serves the process's metrics
///    (`ServiceMetrics`, bootstrapped first, so that every layer records into it);
/// 4. one `ServiceGroup` runs the listener, the background services, the outbox pruner and
///    the server. SIGTERM or SIGINT shuts it down gracefully, in reverse order: the server
///    first (health NOT_SERVING, GOAWAY, running calls drain within the grace period),
///    then the background services, then the listener; then the pool closes.
public struct ServiceDaemon: Sendable {
    /// The service's name, lowercase: `catalog`, `rules`.
    public let name: String
    /// The executable's name, as its ready line says it (`catalogd`; `stubd` for `stubs`).
    public let executable: String
    public let logger: Logger
    public let environment: [String: String]

    /// Sets up logging (`LOG_LEVEL`; only `main` does this) and reads the environment.
    /// `executable` defaults to the name with a `d`.
    public init(name: String, executable: String? = nil) {
        // A write to a pipe or socket whose reader has gone (a closed stderr pipe under a
        // supervisor, say) must fail with EPIPE, not raise SIGPIPE, whose default action
        // ends the process without a word. Sockets already write with MSG_NOSIGNAL.
        signal(SIGPIPE, SIG_IGN)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = getenv("LOG_LEVEL").flatMap { Logger.Level(rawValue: String(cString: $0)) } ?? .info
            return handler
        }
        self.name = name
        self.executable = executable ?? "\(name)d"
        self.logger = Logger(label: "stb.\(name)")
        self.environment = PostgresConfiguration.currentEnvironment()
    }

    /// Logs `message` as critical and exits 1.
    public func fail(_ message: String) -> Never {
        logger.critical("\(message)")
        exit(1)
    }

    /// The executable's configuration, read by `read` from the environment; a bad value
    /// stops start-up with its message.
    public func configuration<Configuration>(_ read: ([String: String]) throws -> Configuration) -> Configuration {
        do {
            return try read(environment)
        } catch {
            fail("\(error)")
        }
    }

    /// Runs the service until SIGTERM or SIGINT has stopped it gracefully (see the type's
    /// documentation). `channels` are the outbox channels the listener follows.
    public func run(
        _ configuration: ServiceConfiguration, channels: [String],
        assemble: (ServiceAssembly) async throws -> ServiceParts
    ) async {
        let registry = ServiceMetrics.bootstrap()
        let loops: EventLoopGroup
        do {
            loops = try EventLoopGroup(count: max(1, configuration.server.workers), name: name)
        } catch {
            fail("could not start worker threads: \(error)")
        }
        let pool = PostgresPool(configuration: configuration.database, group: loops)
        await migrate(pool, configuration: configuration)

        let listener = PostgresListener(conninfo: configuration.database.conninfo, channels: channels, loop: loops.loops[0])
        let health = HealthService()
        let parts: ServiceParts
        do {
            parts = try await assemble(ServiceAssembly(configuration: configuration, logger: logger, pool: pool, listener: listener, health: health))
        } catch {
            fail("cannot start the \(name) service: \(error)")
        }
        let keys: any VerificationKeySource
        do {
            if let own = parts.keySource {
                keys = own
            } else {
                keys = try await configuration.auth.keySource(logger: logger)
            }
        } catch {
            fail("cannot verify access tokens: \(error)")
        }
        let server: RPCServer
        do {
            let authenticator = Authenticator(keys: keys)
            let interceptors = Self.interceptors(for: name, logger: logger, authenticator: authenticator) + parts.interceptors
            var serverConfiguration = configuration.server
            serverConfiguration.metricsExposition = ServiceMetrics.exposition(of: registry)
            serverConfiguration.metricsServiceName = name
            serverConfiguration.httpRoutes = parts.httpRoutes
            server = try RPCServer(
                configuration: serverConfiguration, services: parts.rpcServices, interceptors: interceptors,
                group: loops, health: health, logger: logger
            )
            let port = try await server.start()
            print("\(executable) listening on \(configuration.server.host):\(port)")
            fflush(nil)
        } catch {
            fail("could not start: \(error)")
        }

        var services: [any Service] = [listener]
        services += parts.background
        if let outbox = parts.outbox {
            services.append(OutboxPruner(outbox: outbox, pool: pool, retention: configuration.eventRetention, logger: logger))
        }
        services.append(server)
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        var failure: (any Error)?
        do {
            try await group.run()
        } catch {
            failure = error
        }
        await pool.close()
        loops.shutdown()
        // A part that failed (rather than a signal) ends the process with a failure status.
        if let failure { fail("the \(name) service stopped: \(failure)") }
    }

    /// The interceptors every service runs its calls inside: metrics outermost (so they
    /// count the status the caller gets, refusals included), then statuses (so what a
    /// later interceptor throws is mapped too), then authentication against `access`,
    /// which establishes the caller's verified identity.
    public static func interceptors(
        for service: String, logger: Logger, authenticator: Authenticator, access: MethodAccess = .platform
    ) -> [any ServerInterceptor] {
        [
            MetricsInterceptor(), StatusInterceptor(service: service, logger: logger),
            AuthenticationInterceptor(authenticator: authenticator, access: access),
        ]
    }

    /// Applies the migrations, waiting for a database that is still starting; anything
    /// else stops start-up.
    private func migrate(_ pool: PostgresPool, configuration: ServiceConfiguration) async {
        let migrator: Migrator
        do {
            migrator = try Migrator(directory: configuration.migrationsDirectory)
        } catch {
            fail("\(error)")
        }
        let deadline = ContinuousClock.now + configuration.databaseWait
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
}

/// What a service's `assemble` step gets from `ServiceDaemon.run`.
public struct ServiceAssembly: Sendable {
    public let configuration: ServiceConfiguration
    public let logger: Logger
    public let pool: PostgresPool
    /// Follows the service's outbox channels; its `signal` wakes `Watch` streams.
    public let listener: PostgresListener
    /// The server's health: a service that is not ready yet sets NOT_SERVING here (the
    /// server keeps a status set before it starts).
    public let health: HealthService
}

/// What a service is made of, for `ServiceDaemon.run`.
public struct ServiceParts: Sendable {
    /// Served by the RPC server.
    public var rpcServices: [any RPCService]
    /// The service's outbox, pruned after the configured retention.
    public var outbox: Outbox?
    /// Run beside the server, stopped after it on shutdown.
    public var background: [any Service]
    /// Run around every call, inside the daemon's own (statuses, then authentication).
    public var interceptors: [any ServerInterceptor]
    /// Where token verification keys come from when the service has its own (the
    /// gateway's key store); nil reads `STB_AUTH_KEYS_FILE` or fetches from the gateway.
    public var keySource: (any VerificationKeySource)?
    /// Plain HTTP requests served on the same port (the gateway's web routes); none by default.
    public var httpRoutes: HTTPRoutes

    public init(
        rpcServices: [any RPCService], outbox: Outbox? = nil, background: [any Service] = [],
        interceptors: [any ServerInterceptor] = [], keySource: (any VerificationKeySource)? = nil,
        httpRoutes: HTTPRoutes = HTTPRoutes()
    ) {
        self.httpRoutes = httpRoutes
        self.rpcServices = rpcServices
        self.outbox = outbox
        self.background = background
        self.interceptors = interceptors
        self.keySource = keySource
    }
}

/// The running executable's path, from /proc.
func executablePath() -> String? {
    var buffer = [CChar](repeating: 0, count: 4096)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard length > 0 else { return nil }
    return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func isReadable(_ path: String) -> Bool { access(path, R_OK) == 0 }
