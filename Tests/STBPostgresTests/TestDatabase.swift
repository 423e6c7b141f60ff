import Glibc
import STBEventLoop
import STBPostgres
import Synchronization
import Testing

/// The test database: `STB_TEST_DATABASE_URL` (set by `scripts/test` from `scripts/db env`),
/// else the local development cluster's `stb_test` database over TCP.
enum TestDatabase {
    static let environment = PostgresConfiguration.currentEnvironment()

    static var conninfo: String {
        environment["STB_TEST_DATABASE_URL"] ?? "postgresql://stb_test@127.0.0.1:54329/stb_test"
    }

    /// `scripts/db`, which can restart the local cluster; nil against an external server.
    static var control: String? { environment["STB_PG_CONTROL"] }

    /// Two loops shared by every test in the process.
    static let group: EventLoopGroup = try! EventLoopGroup(count: 2, name: "pg-test")

    static func pool(size: Int = 4) -> PostgresPool {
        PostgresPool(configuration: PostgresConfiguration(conninfo: conninfo, poolSize: size), group: group)
    }

    /// A table name unique to this test run, so suites running in parallel never collide.
    static func uniqueName(_ prefix: String) -> String {
        "\(prefix)_\(counter.wrappingAdd(1, ordering: .relaxed).newValue)_\(processID)"
    }

    private static let counter = Atomic<Int>(0)
    private static let processID = Int(getpid())
}

// MARK: - Scoped pools, connections and tables

extension TestDatabase {
    /// Runs `body` with a pool of its own, closed afterwards (idle connections close then;
    /// connections still in use close when returned).
    static func withPool<R>(
        size: Int = 4, isolation: isolated (any Actor)? = #isolation, _ body: (PostgresPool) async throws -> R
    ) async throws -> R {
        let pool = pool(size: size)
        do {
            let result = try await body(pool)
            await pool.close()
            return result
        } catch {
            await pool.close()
            throw error
        }
    }

    /// A connection outside any pool (a second session to observe the server with).
    static func connect() async throws -> PostgresConnection {
        try await PostgresConnection.connect(to: conninfo, on: group.next(), timeoutSeconds: 20)
    }

    /// Runs `body` with a dedicated connection, closed afterwards.
    static func withConnection<R>(
        isolation: isolated (any Actor)? = #isolation, _ body: (PostgresConnection) async throws -> R
    ) async throws -> R {
        let connection = try await connect()
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }

    /// Creates a table (`columns` is the part between the parentheses) under a unique name,
    /// runs `body` with that name and drops the table afterwards.
    static func withTable<R>(
        _ prefix: String, columns: String, isolation: isolated (any Actor)? = #isolation,
        _ body: (String) async throws -> R
    ) async throws -> R {
        let table = uniqueName(prefix)
        try await withConnection { try await $0.execute(script: "CREATE TABLE \(table) (\(columns))") }
        do {
            let result = try await body(table)
            try? await withConnection { try await $0.execute(script: "DROP TABLE IF EXISTS \(table)") }
            return result
        } catch {
            try? await withConnection { try await $0.execute(script: "DROP TABLE IF EXISTS \(table)") }
            throw error
        }
    }

    /// The server process serving `connection`.
    static func backendPID(_ connection: PostgresConnection) async throws -> Int32 {
        try await connection.query("SELECT pg_backend_pid()")[0].decode(0, as: Int32.self)
    }

    /// The `pg_stat_activity` state of backend `pid` (`active`, `idle`, `idle in transaction`
    /// ...), or nil when no such backend exists, as seen from `monitor`.
    static func backendState(_ pid: Int32, monitor: PostgresConnection) async throws -> String? {
        let rows = try await monitor.query("SELECT coalesce(state, '?') FROM pg_stat_activity WHERE pid = \(pid)")
        return rows.isEmpty ? nil : try rows[0].decode(0, as: String.self)
    }

    /// Row count of `table` (its name comes from `uniqueName`, never from input).
    static func count(_ table: String, on connection: PostgresConnection) async throws -> Int64 {
        try await connection.query("SELECT count(*) FROM \(raw: table)")[0].decode(0, as: Int64.self)
    }

    /// Polls `condition` every 20 ms until it holds or `timeout` passes; returns its last value.
    static func eventually(
        timeout: Duration = .seconds(20), isolation: isolated (any Actor)? = #isolation,
        _ condition: () async throws -> Bool
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            if try await condition() { return true }
            if ContinuousClock.now >= deadline { return false }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

// MARK: - Shared and exclusive use of the server

/// Tests that restart or stop the server take it exclusively; every other test in this
/// target takes it shared (apply `.sharedDatabase` to the suite), so a restart never
/// lands in the middle of an unrelated test. Waiting is FIFO: once an exclusive request
/// waits, later shared requests queue behind it.
actor DatabaseGate {
    static let instance = DatabaseGate()

    private var readers = 0
    private var writing = false
    private var waiting: [(exclusive: Bool, continuation: CheckedContinuation<Void, Never>)] = []

    /// How many lock requests wait (for the gate's own tests, to order their steps).
    var queued: Int { waiting.count }

    func lock(exclusive: Bool) async {
        if waiting.isEmpty && canEnter(exclusive: exclusive) {
            enter(exclusive: exclusive)
            return
        }
        await withCheckedContinuation { waiting.append((exclusive, $0)) }
    }

    func unlock(exclusive: Bool) {
        if exclusive { writing = false } else { readers -= 1 }
        while let next = waiting.first, canEnter(exclusive: next.exclusive) {
            waiting.removeFirst()
            enter(exclusive: next.exclusive)
            next.continuation.resume()
        }
    }

    private func canEnter(exclusive: Bool) -> Bool {
        exclusive ? !writing && readers == 0 : !writing
    }

    private func enter(exclusive: Bool) {
        if exclusive { writing = true } else { readers += 1 }
    }
}

extension TestDatabase {
    /// The access the current task (and its child tasks) already holds, so nested calls
    /// (a `.sharedDatabase` suite whose test also calls `shared`, a task group inside a
    /// test) do not queue behind a waiting restart that waits for them: a deadlock.
    /// true: exclusive, false: shared.
    @TaskLocal static var heldAccess: Bool? = nil

    /// Runs `body` while no test restarts or stops the server.
    static func shared<R>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> R) async throws -> R {
        try await gated(exclusive: false, body)
    }

    /// Runs `body` as the only test using the server (for restarts and stops).
    static func exclusive<R>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> R) async throws -> R {
        try await gated(exclusive: true, body)
    }

    private static func gated<R>(
        exclusive: Bool, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> R
    ) async throws -> R {
        if let held = heldAccess {
            // Already inside: shared within anything, exclusive within exclusive.
            guard held || !exclusive else { throw GateMisuse() }
            return try await body()
        }
        await DatabaseGate.instance.lock(exclusive: exclusive)
        do {
            let result = try await $heldAccess.withValue(exclusive) { try await body() }
            await DatabaseGate.instance.unlock(exclusive: exclusive)
            return result
        } catch {
            await DatabaseGate.instance.unlock(exclusive: exclusive)
            throw error
        }
    }

    struct GateMisuse: Error, CustomStringConvertible {
        var description: String {
            "TestDatabase.exclusive inside TestDatabase.shared (or a .sharedDatabase suite) would wait for itself; "
                + "give the suite .exclusiveDatabase or call exclusive outside shared"
        }
    }
}

/// Wraps each test of a suite in `TestDatabase.shared` or `TestDatabase.exclusive`.
struct DatabaseAccessTrait: SuiteTrait, TestTrait, TestScoping {
    let exclusive: Bool

    /// Applies to every test (case) of the suite, each scoped on its own.
    var isRecursive: Bool { true }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        if exclusive {
            try await TestDatabase.exclusive { try await function() }
        } else {
            try await TestDatabase.shared { try await function() }
        }
    }
}

extension Trait where Self == DatabaseAccessTrait {
    /// Every test of the suite uses the database alongside others, never during a restart.
    static var sharedDatabase: Self { DatabaseAccessTrait(exclusive: false) }
    /// Every test of the suite has the server to itself (it restarts or stops it).
    static var exclusiveDatabase: Self { DatabaseAccessTrait(exclusive: true) }
}

// MARK: - Restarting the server

struct ControlFailure: Error, CustomStringConvertible {
    let description: String
}

extension TestDatabase {
    /// Runs `scripts/db <command>` (restart, stop, start) and waits for it without blocking
    /// a cooperative thread: posix_spawn, then `waitpid(WNOHANG)` between short sleeps.
    /// The child starts with an empty signal mask and default SIGPIPE (the test runner's
    /// threads block or ignore signals, which the restarted server would inherit).
    static func runControl(_ command: String, timeout: Duration = .seconds(60)) async throws {
        guard let control else { throw ControlFailure(description: "STB_PG_CONTROL is not set") }
        let logPath = "/tmp/stb-pg-control-\(getpid())-\(uniqueName("run")).log"
        defer { unlink(logPath) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let arguments = [control, command]
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, control, &actions, &attributes, argv, environ)
        guard rc == 0 else {
            throw ControlFailure(description: "posix_spawn \(control): \(String(cString: strerror(rc)))")
        }

        var status: Int32 = 0
        let deadline = ContinuousClock.now + timeout
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { break }
            if reaped < 0 && errno != EINTR {
                throw ControlFailure(description: "waitpid: \(String(cString: strerror(errno)))")
            }
            if ContinuousClock.now > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                throw ControlFailure(description: "\(control) \(command) did not finish within \(timeout)")
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        let exited = status & 0x7f == 0
        let exitCode = (status >> 8) & 0xff
        guard exited && exitCode == 0 else {
            throw ControlFailure(description: "\(control) \(command) failed (status \(status)): \(readFile(logPath))")
        }
    }

    /// `scripts/db restart`: fast shutdown (sessions are cut), back once it accepts
    /// connections. Call inside `TestDatabase.exclusive`.
    static func restartServer() async throws {
        try await runControl("restart")
    }

    private static func readFile(_ path: String) -> String {
        guard let file = fopen(path, "r") else { return "" }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

// MARK: - Small concurrency helpers

/// A value several tasks update under a lock.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }

    var value: Value { mutex.withLock { $0 } }

    @discardableResult
    func withLock<R: Sendable>(_ body: (inout sending Value) -> R) -> R {
        mutex.withLock { body(&$0) }
    }
}

/// Opens once `count` tasks have arrived (or after a timeout, so a broken test fails
/// instead of hanging).
actor Barrier {
    private let count: Int
    private var arrived = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(count: Int) { self.count = count }

    /// Waits for the others; returns whether all `count` arrived within `timeout`.
    func arrive(timeout: Duration = .seconds(20)) async -> Bool {
        arrived += 1
        if arrived >= count {
            release()
            return true
        }
        let timer = Task { [self] in
            try? await Task.sleep(for: timeout)
            release()
        }
        await withCheckedContinuation { waiters.append($0) }
        timer.cancel()
        return arrived >= count
    }

    private func release() {
        let continuations = waiters
        waiters.removeAll()
        for continuation in continuations { continuation.resume() }
    }
}

/// A one-shot signal: `wait()` returns once `open()` was called.
actor Latch {
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func wait() async {
        if isOpen { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func open() {
        isOpen = true
        let continuations = waiters
        waiters.removeAll()
        for continuation in continuations { continuation.resume() }
    }
}

struct TimedOut: Error, CustomStringConvertible {
    let limit: Duration
    var description: String { "the task did not finish within \(limit)" }
}

/// `task`'s value, or `TimedOut` after `limit` (the task is then cancelled and left to
/// itself). For awaiting unstructured tasks: a regression that never resumes a
/// continuation must fail the test, not hang the run (swift-testing's time limit cannot
/// end a test that awaits an unstructured task).
func value<T: Sendable>(of task: Task<T, any Error>, within limit: Duration = .seconds(30)) async throws -> T {
    let pending = Locked<CheckedContinuation<T, any Error>?>(nil)
    let take: @Sendable () -> CheckedContinuation<T, any Error>? = { pending.withLock { continuation in
        defer { continuation = nil }
        return continuation
    } }
    return try await withCheckedThrowingContinuation { continuation in
        pending.withLock { $0 = continuation }
        Task {
            let result = await task.result
            take()?.resume(with: result)
        }
        Task {
            try? await Task.sleep(for: limit)
            if let continuation = take() {
                task.cancel()
                continuation.resume(throwing: TimedOut(limit: limit))
            }
        }
    }
}

/// The outcome of `body` as a value: its `PostgresError`, or nil when it succeeded (any
/// other error is rethrown).
func postgresError(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> Void) async throws -> PostgresError? {
    do {
        try await body()
        return nil
    } catch let error as PostgresError {
        return error
    }
}

extension Duration {
    var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}

extension PostgresQuery.StringInterpolation {
    /// Splices trusted SQL text (a generated table name) instead of binding a parameter.
    /// (`PostgresQuery("... \(x)")` is a literal too: there `\(x)` binds a parameter.)
    mutating func appendInterpolation(raw text: String) {
        appendLiteral(text)
    }
}
