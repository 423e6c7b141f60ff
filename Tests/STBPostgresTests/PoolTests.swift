import Glibc
import STBEventLoop
import STBPostgres
import Testing

@Suite("Connection pool", .sharedDatabase, .timeLimit(.minutes(1)))
struct PoolTests {
    @Test("20 concurrent callers on a pool of 2 all complete, on at most 2 server backends")
    func boundedConcurrency() async throws {
        try await TestDatabase.withPool(size: 2) { pool in
            let pids = Locked<Set<Int32>>([])
            let inside = Locked((now: 0, most: 0))
            try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<20 {
                    group.addTask {
                        try await pool.withConnection { connection in
                            inside.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
                            defer { inside.withLock { $0.now -= 1 } }
                            let pid = try await TestDatabase.backendPID(connection)
                            pids.withLock { _ = $0.insert(pid) }
                            try await Task.sleep(for: .milliseconds(5))
                            let echoed = try await connection.query("SELECT \(index)::int8")
                            return try echoed[0].decode(0, as: Int.self)
                        }
                    }
                }
                var done: Set<Int> = []
                for try await index in group { done.insert(index) }
                #expect(done == Set(0..<20))
            }
            #expect(pids.value.count <= 2 && !pids.value.isEmpty, "backends: \(pids.value)")
            #expect(inside.value.most <= 2)
            // Server side: those backends are this pool's sessions, still open, named "stb".
            try await TestDatabase.withConnection { monitor throws in
                for pid in pids.value {
                    let rows = try await monitor.query("SELECT application_name FROM pg_stat_activity WHERE pid = \(pid)")
                    #expect(try rows.map { try $0.decode(0, as: String.self) } == ["stb"], "backend \(pid)")
                }
            }
        }
    }

    @Test("a waiter whose task is cancelled leaves the queue with an error and leaks no slot")
    func cancelledWaiter() async throws {
        try await TestDatabase.withPool(size: 2) { pool in
            let release = Latch()
            let holding = Barrier(count: 3)
            let holders = (0..<2).map { _ in
                Task {
                    try await pool.withConnection { _ in
                        _ = await holding.arrive()
                        await release.wait()
                    }
                }
            }
            #expect(await holding.arrive(), "the two holders did not get connections")

            let waiter = Task { () -> (PostgresError?, ContinuousClock.Instant) in
                let error = try await postgresError {
                    try await pool.withConnection { connection in _ = try await connection.query("SELECT 1") }
                }
                return (error, .now)
            }
            try await Task.sleep(for: .milliseconds(100))
            let cancelled = ContinuousClock.now
            waiter.cancel()
            let (error, finished) = try await value(of: waiter)
            #expect(error?.code == .queryCancelled)
            #expect(finished - cancelled < .seconds(10), "the cancelled waiter took \(finished - cancelled)")

            await release.open()
            for holder in holders { try await value(of: holder) }

            // Both slots are still there: two callers hold connections at the same time.
            let together = Barrier(count: 2)
            let met = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        try await pool.withConnection { connection in
                            _ = try await connection.query("SELECT 1")
                            return await together.arrive(timeout: .seconds(20))
                        }
                    }
                }
                return try await group.reduce(true) { $0 && $1 }
            }
            #expect(met, "the pool no longer serves two callers at once")
        }
    }

    @Test("a caller whose task is already cancelled does not wait for a connection")
    func alreadyCancelledCaller() async throws {
        try await TestDatabase.withPool(size: 1) { pool in
            let release = Latch()
            let holding = Barrier(count: 2)
            let holder = Task {
                try await pool.withConnection { _ in
                    _ = await holding.arrive()
                    await release.wait()
                }
            }
            #expect(await holding.arrive())
            // The holder lets go after 20 s at the latest, so a broken pool fails the test
            // instead of hanging it.
            let safety = Task {
                try? await Task.sleep(for: .seconds(20))
                await release.open()
            }
            let caller = Task { () -> (PostgresError?, Duration) in
                withUnsafeCurrentTask { $0?.cancel() }
                let start = ContinuousClock.now
                let error = try await postgresError {
                    try await pool.withConnection { connection in _ = try await connection.query("SELECT 1") }
                }
                return (error, ContinuousClock.now - start)
            }
            let (error, waited) = try await value(of: caller)
            #expect(error?.code == .queryCancelled)
            #expect(waited < .seconds(10), "a cancelled caller queued for \(waited)")
            await release.open()
            safety.cancel()
            try await value(of: holder)
        }
    }

    @Test("a connection returned inside an open transaction is closed, never reused")
    func openTransactionNotReused() async throws {
        try await TestDatabase.withTable("pool_open_tx", columns: "id int") { table in
            try await TestDatabase.withPool(size: 1) { pool in
                let first = try await pool.withConnection { connection in
                    _ = try await connection.query("BEGIN")
                    _ = try await connection.query("INSERT INTO \(raw: table) VALUES (1)")
                    return try await TestDatabase.backendPID(connection)
                }
                let (second, outside) = try await pool.withConnection { connection in
                    let rows = try await connection.query("SELECT pg_backend_pid(), txid_current_if_assigned() IS NULL")
                    return try rows[0].decode(Int32.self, Bool.self)
                }
                #expect(second != first)
                #expect(outside, "the next caller found a transaction open")
                try await TestDatabase.withConnection { monitor in
                    let gone = try await TestDatabase.eventually {
                        try await TestDatabase.backendState(first, monitor: monitor) == nil
                    }
                    #expect(gone, "the backend left in a transaction is still there")
                    // Its transaction never committed.
                    #expect(try await TestDatabase.count(table, on: monitor) == 0)
                }
            }
        }
    }

    @Test("a connection whose backend was terminated while idle is never handed out")
    func terminatedIdleConnection() async throws {
        try await TestDatabase.withPool(size: 1) { pool in
            let first = try await pool.withConnection { try await TestDatabase.backendPID($0) }
            try await TestDatabase.withConnection { monitor in
                // Waits (up to 5 s) until the backend has exited.
                let rows = try await monitor.query("SELECT pg_terminate_backend(\(first), 5000)")
                #expect(try rows[0].decode(0, as: Bool.self))
            }
            // Give the loop a moment to read the end of the socket (a loaded machine is slow to).
            try await Task.sleep(for: .milliseconds(500))
            for _ in 0..<5 {
                let pid = try await pool.withConnection { try await TestDatabase.backendPID($0) }
                #expect(pid != first)
            }
        }
    }

    @Test("closing the pool fails waiters and new callers; every connection closes server-side")
    func closeRefusesCallers() async throws {
        let pool = TestDatabase.pool(size: 2)
        let pids = Locked<Set<Int32>>([])
        let release = Latch()
        let holding = Barrier(count: 3)
        // One connection idle in the pool to begin with.
        _ = try await pool.withConnection { connection in
            let pid = try await TestDatabase.backendPID(connection)
            pids.withLock { _ = $0.insert(pid) }
        }
        // Two holders: both slots in use.
        let holders = (0..<2).map { _ in
            Task {
                try await pool.withConnection { connection in
                    let pid = try await TestDatabase.backendPID(connection)
                    pids.withLock { _ = $0.insert(pid) }
                    _ = await holding.arrive()
                    await release.wait()
                }
            }
        }
        #expect(await holding.arrive())
        let waiter = Task { try await postgresError { try await pool.withConnection { _ in } } }
        try await Task.sleep(for: .milliseconds(100))

        await pool.close()
        #expect(try await value(of: waiter)?.code == .poolClosed)
        let refused = await #expect(throws: PostgresError.self) { try await pool.withConnection { _ in } }
        #expect(refused?.code == .poolClosed)

        // Connections in use when the pool closed close as they come back.
        await release.open()
        for holder in holders { try await value(of: holder) }
        try await TestDatabase.withConnection { monitor in
            #expect(pids.value.count == 2)
            for pid in pids.value {
                let gone = try await TestDatabase.eventually {
                    try await TestDatabase.backendState(pid, monitor: monitor) == nil
                }
                #expect(gone, "backend \(pid) is still connected after the pool closed")
            }
        }
    }

    @Test("a caller on a loop gets a connection on that loop: a new one while the pool may grow, else one lent from another loop")
    func connectionsOnTheCallersLoop() async throws {
        let loops = TestDatabase.group.loops
        /// The loop of the connection a caller running on `loop` is given, and its backend.
        func lease(from loop: EventLoop, _ pool: PostgresPool) async throws -> (loop: ObjectIdentifier, pid: Int32) {
            try await withTaskExecutorPreference(loop) {
                try await pool.withConnection { connection in
                    (ObjectIdentifier(connection.loop), try await TestDatabase.backendPID(connection))
                }
            }
        }
        try await TestDatabase.withPool(size: 2) { pool in
            let first = try await lease(from: loops[0], pool)
            #expect(first.loop == ObjectIdentifier(loops[0]))
            // The idle connection is on the other loop, and the pool may still grow.
            let second = try await lease(from: loops[1], pool)
            #expect(second.loop == ObjectIdentifier(loops[1]))
            #expect(second.pid != first.pid)
            #expect(try await lease(from: loops[0], pool) == first)
            #expect(try await lease(from: loops[1], pool) == second)
        }
        try await TestDatabase.withPool(size: 1) { pool in
            let first = try await lease(from: loops[0], pool)
            // Full: the one connection is lent across loops rather than the caller waiting.
            #expect(try await lease(from: loops[1], pool) == first)
        }
    }

    @Test("a failing connect gives its slot back: every caller fails fast with connectionFailed")
    func connectFailureFreesSlot() async throws {
        let pool = PostgresPool(
            configuration: PostgresConfiguration(conninfo: "postgresql://stb_test@127.0.0.1:1/stb_test", poolSize: 1, connectTimeoutSeconds: 20),
            group: TestDatabase.group
        )
        let start = ContinuousClock.now
        let errors = try await withThrowingTaskGroup(of: PostgresError?.self) { group in
            for _ in 0..<5 {
                group.addTask { try await postgresError { try await pool.withConnection { _ in } } }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(errors.map { $0?.code } == Array(repeating: .connectionFailed, count: 5))
        #expect(errors.allSatisfy { $0?.isRetryable == true })
        #expect(ContinuousClock.now - start < .seconds(10))
        await pool.close()
    }

    @Test("a connect timeout fails with connectionFailed")
    func connectTimeout() async throws {
        // A listening socket that never answers: the server's greeting never comes.
        let listener = try SilentListener()
        defer { listener.close() }
        let start = ContinuousClock.now
        let error = await #expect(throws: PostgresError.self) {
            _ = try await PostgresConnection.connect(
                to: "postgresql://stb_test@127.0.0.1:\(listener.port)/stb_test?sslmode=disable",
                on: TestDatabase.group.next(), timeoutSeconds: 1
            )
        }
        #expect(error?.code == .connectionFailed)
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(900) && elapsed < .seconds(15), "took \(elapsed)")
    }
}

/// A TCP socket on 127.0.0.1 that listens but never accepts or answers: a server that hangs.
final class SilentListener: Sendable {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketError(operation: "socket", errno: errno) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(fd, socketAddress, length) == 0 && listen(fd, 8) == 0
                    && getsockname(fd, socketAddress, &length) == 0
            }
        }
        guard bound else {
            let error = errno
            Glibc.close(fd)
            throw SocketError(operation: "bind/listen", errno: error)
        }
        self.fd = fd
        port = UInt16(bigEndian: address.sin_port)
    }

    func close() {
        Glibc.close(fd)
    }
}
