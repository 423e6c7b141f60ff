import Glibc
import STBEventLoop
import Metrics
import Synchronization

/// Where a service's database is and how many connections it may hold.
public struct PostgresConfiguration: Sendable {
    /// A libpq connection URI (`postgresql://user@host:port/db?...`) or `key=value` string.
    public var conninfo: String
    /// The most connections the pool opens; about cores × 2 by default.
    public var poolSize: Int
    public var connectTimeoutSeconds: Int

    public init(conninfo: String, poolSize: Int = PostgresConfiguration.defaultPoolSize, connectTimeoutSeconds: Int = 10) {
        self.conninfo = conninfo
        self.poolSize = max(1, poolSize)
        self.connectTimeoutSeconds = connectTimeoutSeconds
    }

    public static var defaultPoolSize: Int { max(2, sysconf(Int32(_SC_NPROCESSORS_ONLN)) * 2) }

    /// Reads `<SERVICE>_DATABASE_URL` and `<SERVICE>_DB_POOL_SIZE`; without a URL, the
    /// service's own database on the local development cluster (`scripts/db`, port 54329).
    public static func fromEnvironment(service: String, environment: [String: String] = currentEnvironment()) -> PostgresConfiguration {
        let prefix = service.uppercased()
        let url = environment["\(prefix)_DATABASE_URL"] ?? "postgresql://\(service)@127.0.0.1:54329/\(service)"
        let size = environment["\(prefix)_DB_POOL_SIZE"].flatMap(Int.init) ?? defaultPoolSize
        return PostgresConfiguration(conninfo: url, poolSize: size)
    }

    public static func currentEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }
}

/// A service's connection pool.
///
/// Connections open lazily, up to `poolSize`, spread over the event loops; a caller
/// running on a loop gets a connection on that loop when one is idle. Callers beyond the
/// limit wait in order. A connection whose server went away is dropped as soon as its
/// socket reports it and is never handed out; the next caller opens a fresh one.
public final class PostgresPool: Sendable {
    public let configuration: PostgresConfiguration
    private let group: EventLoopGroup
    private let state = Mutex(State())

    private struct State {
        var idle: [PostgresConnection] = []
        /// Connections open or being opened.
        var open = 0
        var waiters: [Waiter] = []
        var nextWaiterID = 0
        var closed = false
    }

    private struct Waiter {
        let id: Int
        let continuation: CheckedContinuation<Lease, any Error>
    }

    private enum Lease {
        case connection(PostgresConnection)
        /// The caller may open a new connection (capacity was reserved for it).
        case openNew
    }

    private let metrics: PostgresPoolMetrics

    /// A pool of `configuration.poolSize` connections on `group`'s loops; its gauges and
    /// query timer go to `metricsFactory` (by default the process's `MetricsSystem`).
    public init(configuration: PostgresConfiguration, group: EventLoopGroup, metricsFactory: any MetricsFactory = MetricsSystem.factory) {
        self.configuration = configuration
        self.group = group
        self.metrics = PostgresPoolMetrics(factory: metricsFactory)
    }

    /// Changes the state under its lock and publishes the pool gauges from it.
    private func withState<Result: Sendable>(_ body: (inout State) -> Result) -> Result {
        state.withLock { state in
            let result = body(&state)
            metrics.record(open: state.open, idle: state.idle.count, waiters: state.waiters.count)
            return result
        }
    }

    // MARK: - Scoped use

    /// Runs `body` with a connection of its own, returned to the pool afterwards. The
    /// body runs with the connection's loop as preferred executor, so its queries
    /// complete without a thread hop.
    ///
    /// It runs on its caller's executor (`nonisolated(nonsending)`): returning from its
    /// awaits needs no executor check, as an `isolated` parameter would.
    nonisolated(nonsending) public func withConnection<R: Sendable>(
        _ body: (PostgresConnection) async throws -> R
    ) async throws -> R {
        // The usual case, an idle connection on the caller's loop, needs no await (and so
        // no executor check on the way back).
        let preferred = group.loops.first { $0.inEventLoop }
        let connection: PostgresConnection
        switch try leaseNow(on: preferred) {
        case .connection(let idle)?: connection = idle
        case let lease: connection = try await acquire(on: preferred, after: lease)
        }
        defer { release(connection) }
        // Handler tasks usually prefer their loop already: skip the preference record then.
        // A task runs on a loop's thread only when that loop is its preferred executor, so
        // this is the same test as reading the task's preference, which takes the task's
        // status lock. (Were it ever wrong, the queries would still run, one hop away.)
        if connection.loop.inEventLoop { return try await body(connection) }
        return try await withTaskExecutorPreference(connection.loop, isolation: #isolation) {
            try await body(connection)
        }
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it
    /// throws. With `maxAttempts` above one, the whole transaction (body included) runs
    /// again after a serialization failure or a deadlock.
    public func withTransaction<R: Sendable>(
        isolationLevel level: PostgresIsolationLevel = .readCommitted,
        maxAttempts: Int = 1,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresTransaction) async throws -> R
    ) async throws -> R {
        var attempt = 1
        while true {
            do {
                return try await withConnection { connection in
                    try await connection.transaction(level: level, body)
                }
            } catch let error as PostgresError
                where (error.code == .serializationFailure || error.code == .deadlockDetected) && attempt < maxAttempts
            {
                // Back off a little (randomised, growing) so the conflicting transaction can finish.
                try await Task.sleep(for: .microseconds(Int.random(in: 1...(500 << min(attempt, 6)))))
                attempt += 1
            }
        }
    }

    /// Runs one statement on any connection.
    nonisolated(nonsending) public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try await withConnection { try await $0.query(query) }
    }

    // MARK: - Acquire and release

    /// Fast path, without suspending: an idle connection (or room for a new one); nil
    /// when the caller must wait.
    private func leaseNow(on preferred: EventLoop?) throws(PostgresError) -> Lease? {
        // No Result under the lock: wrapping the lease with a possible error (a large
        // struct) costs copies on every checkout.
        let (lease, closed) = withState { state -> (Lease?, Bool) in
            if state.closed { return (nil, true) }
            return (Self.lease(&state, on: preferred, poolSize: configuration.poolSize), false)
        }
        if closed { throw PostgresError(code: .poolClosed, message: "the database pool is shut down") }
        return lease
    }

    /// A connection, given what `leaseNow` found: opens the new one it made room for, or
    /// waits for one to be returned (or for room) when it found nothing.
    nonisolated(nonsending) private func acquire(on preferred: EventLoop?, after fast: Lease?) async throws -> PostgresConnection {
        switch fast {
        case .connection(let connection)?: return connection
        case .openNew?: return try await openConnection(on: preferred ?? group.next())
        case nil: break
        }
        let waiterID = withState { state -> Int in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        let lease: Lease = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let immediate: Result<Lease, PostgresError>? = withState { state in
                    if state.closed { return .failure(PostgresError(code: .poolClosed, message: "the database pool is shut down")) }
                    if let lease = Self.lease(&state, on: preferred, poolSize: configuration.poolSize) { return .success(lease) }
                    // Cancelled before the waiter was queued: the cancel handler found nothing to remove.
                    if Task.isCancelled { return .failure(PostgresError.cancelled) }
                    state.waiters.append(Waiter(id: waiterID, continuation: continuation))
                    return nil
                }
                if let immediate { continuation.resume(with: immediate.mapError { $0 as any Error }) }
            }
        } onCancel: {
            let waiter = withState { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == waiterID }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: PostgresError.cancelled)
        }
        switch lease {
        case .connection(let connection):
            return connection
        case .openNew:
            return try await openConnection(on: preferred ?? group.next())
        }
    }

    /// An idle connection on the caller's `loop`; else room for a new one (opened on that
    /// loop); else an idle connection on another loop; nil when the caller must wait.
    /// A connection on another loop costs the caller two thread hops per use (there and
    /// back), so while the pool may grow it grows where its callers run.
    private static func lease(_ state: inout State, on loop: EventLoop?, poolSize: Int) -> Lease? {
        if let loop, let connection = takeIdle(&state.idle, where: { $0.loop === loop }) { return .connection(connection) }
        if loop == nil, let connection = takeIdle(&state.idle, where: { _ in true }) { return .connection(connection) }
        if state.open < poolSize {
            state.open += 1
            return .openNew
        }
        return takeIdle(&state.idle, where: { _ in true }).map { .connection($0) }
    }

    /// Takes the most recently returned idle connection that `matches` out of `idle`.
    /// Connections found broken on the way are dropped (their close handler does the
    /// counting); the list is scanned, not rebuilt, so a lease allocates nothing.
    private static func takeIdle(_ idle: inout [PostgresConnection], where matches: (PostgresConnection) -> Bool) -> PostgresConnection? {
        var index = idle.endIndex
        while index > idle.startIndex {
            index -= 1
            let connection = idle[index]
            if !connection.isUsable {
                idle.remove(at: index)
            } else if matches(connection) {
                return idle.remove(at: index)
            }
        }
        return nil
    }

    private func openConnection(on loop: EventLoop) async throws -> PostgresConnection {
        do {
            return try await PostgresConnection.connect(
                to: configuration.conninfo, on: loop, timeoutSeconds: configuration.connectTimeoutSeconds,
                queryTimer: metrics.queryDuration
            ) { [weak self] in
                self?.connectionClosed()
            }
        } catch {
            // Give the reserved slot back; a waiter may try its own luck.
            connectionClosed()
            throw error
        }
    }

    /// Bookkeeping for a connection that closed (or failed to open).
    private func connectionClosed() {
        let waiter = withState { state -> Waiter? in
            state.open -= 1
            state.idle.removeAll { !$0.isUsable }
            guard !state.closed, !state.waiters.isEmpty, state.open < configuration.poolSize else { return nil }
            state.open += 1
            return state.waiters.removeFirst()
        }
        waiter?.continuation.resume(returning: .openNew)
    }

    private func release(_ connection: PostgresConnection) {
        // The common case, on the connection's own loop with no cancel pending, allocates nothing.
        if connection.loop.inEventLoop, !connection.hasCancelsInFlight {
            checkIn(connection)
            return
        }
        connection.loop.runOnLoop { [self] in
            // A cancel request still on its way must not reach the next user's statement.
            connection.whenQuiet { [self] in checkIn(connection) }
        }
    }

    /// Loop only (the connection's).
    private func checkIn(_ connection: PostgresConnection) {
        guard connection.isUsable else { return }
        guard connection.isIdleOutsideTransaction else {
            // Left mid-transaction or mid-request: not safe to reuse.
            connection.closeNow()
            return
        }
        // The common case, nobody waiting: one pass under the lock, nothing to copy out.
        let kept = withState { state -> Bool in
            guard !state.closed, state.waiters.isEmpty else { return false }
            state.idle.append(connection)
            return true
        }
        if kept { return }
        let handoff = withState { state -> Waiter?? in
            if state.closed { return .some(nil) }
            if !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.idle.append(connection)
            return nil
        }
        switch handoff {
        case .none: break
        case .some(nil): connection.closeNow()
        case .some(.some(let waiter)): waiter.continuation.resume(returning: .connection(connection))
        }
    }

    /// Closes idle connections and refuses new work; connections in use close when returned.
    public func close() async {
        let (idle, waiters) = withState { state in
            state.closed = true
            defer {
                state.idle.removeAll()
                state.waiters.removeAll()
            }
            return (state.idle, state.waiters)
        }
        for waiter in waiters {
            waiter.continuation.resume(throwing: PostgresError(code: .poolClosed, message: "the database pool is shut down"))
        }
        for connection in idle { await connection.close() }
    }
}

public enum PostgresIsolationLevel: String, Sendable {
    case readCommitted = "READ COMMITTED"
    case repeatableRead = "REPEATABLE READ"
    case serializable = "SERIALIZABLE"
}

/// An open transaction on one connection, valid inside `withTransaction`'s body.
public final class PostgresTransaction: Sendable {
    public let connection: PostgresConnection
    private let channels = Mutex<[String]>([])
    var channelsToNotify: [String] { channels.withLock { $0 } }

    init(connection: PostgresConnection) {
        self.connection = connection
    }

    public func query(_ query: PostgresQuery) async throws(PostgresError) -> PostgresRows {
        try await connection.query(query)
    }

    public func pipeline(_ queries: [PostgresQuery]) async throws(PostgresError) -> [PostgresRows] {
        try await connection.pipeline(queries)
    }

    /// Sends one payload-free `pg_notify(channel)` with the commit, however often it is asked for.
    public func notifyOnCommit(channel: String) {
        channels.withLock { if !$0.contains(channel) { $0.append(channel) } }
    }
}

extension PostgresConnection {
    /// Runs `body` inside BEGIN ... COMMIT on this connection; ROLLBACK when it throws.
    public func transaction<R: Sendable>(
        level: PostgresIsolationLevel = .readCommitted,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresTransaction) async throws -> R
    ) async throws -> R {
        let begin: PostgresQuery = level == .readCommitted ? "BEGIN" : "BEGIN ISOLATION LEVEL \(unescaped: level.rawValue)"
        _ = try await run(.single(begin))
        let transaction = PostgresTransaction(connection: self)
        let result: R
        do {
            result = try await body(transaction)
        } catch {
            _ = try? await run(.single("ROLLBACK"), cancellable: false)
            throw error
        }
        var finish: [PostgresQuery] = transaction.channelsToNotify.map { "SELECT pg_notify(\($0), '')" }
        finish.append("COMMIT")
        // The body is done: commit even if the task was cancelled meanwhile.
        do {
            _ = try await run(.extended(finish), cancellable: false)
        } catch {
            _ = try? await run(.single("ROLLBACK"), cancellable: false)
            throw error
        }
        return result
    }
}
