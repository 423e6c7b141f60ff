import STBPostgres
import Testing

/// Restarts and stops the local cluster (`scripts/db`): each test has the server to itself
/// (`.exclusiveDatabase`; every other suite of this target takes it shared).
@Suite(
    "Server restarts", .serialized, .exclusiveDatabase, .timeLimit(.minutes(1)),
    .enabled(if: TestDatabase.control != nil, "STB_PG_CONTROL is not set (an external server): nothing to restart")
)
struct RestartTests {
    @Test("a query in flight during a restart fails with connectionLost, retryable, promptly")
    func inFlightQueryDuringRestart() async throws {
        try await TestDatabase.withPool(size: 2) { pool in
            let pid = Locked<Int32?>(nil)
            let task = Task { () -> (PostgresError?, ContinuousClock.Instant) in
                let error = try await postgresError {
                    try await pool.withConnection { connection in
                        let backend = try await TestDatabase.backendPID(connection)
                        pid.withLock { $0 = backend }
                        _ = try await connection.query("SELECT pg_sleep(30)")
                    }
                }
                return (error, .now)
            }
            try await TestDatabase.withConnection { monitor in
                let started = try await TestDatabase.eventually {
                    guard let backend = pid.value else { return false }
                    return try await TestDatabase.backendState(backend, monitor: monitor) == "active"
                }
                #expect(started, "pg_sleep never started")
            }
            let restarting = ContinuousClock.now
            try await TestDatabase.runControl("restart")
            let (error, finished) = try await value(of: task)
            #expect(error?.code == .connectionLost, "got \(String(describing: error))")
            #expect(error?.isRetryable == true)
            #expect(finished - restarting < .seconds(15), "the query failed only after \(finished - restarting)")
        }
    }

    @Test("after a restart the pool hands out no stale connection: 10 queries in a row succeed")
    func poolRecoversAfterRestart() async throws {
        try await TestDatabase.withPool(size: 2) { pool in
            // Two idle connections in the pool.
            let barrier = Barrier(count: 2)
            let before = try await withThrowingTaskGroup(of: Int32.self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        try await pool.withConnection { connection in
                            let pid = try await TestDatabase.backendPID(connection)
                            _ = await barrier.arrive()
                            return pid
                        }
                    }
                }
                return try await group.reduce(into: Set<Int32>()) { $0.insert($1) }
            }
            #expect(before.count == 2)

            try await TestDatabase.runControl("restart")

            for attempt in 0..<10 {
                let error = try await postgresError {
                    let pid = try await pool.withConnection { try await TestDatabase.backendPID($0) }
                    #expect(!before.contains(pid), "query \(attempt) ran on a pre-restart backend")
                }
                #expect(error == nil, "query \(attempt) after the restart failed: \(String(describing: error))")
            }
        }
    }

    @Test("an idle dedicated connection notices the restart; its next query fails at once")
    func idleConnectionNoticesRestart() async throws {
        let connection = try await TestDatabase.connect()
        #expect(connection.isUsable)
        try await TestDatabase.runControl("restart")
        let noticed = try await TestDatabase.eventually(timeout: .seconds(20)) { !connection.isUsable }
        #expect(noticed, "the connection still claims to be usable after the restart")
        let start = ContinuousClock.now
        let error = await #expect(throws: PostgresError.self) { try await connection.query("SELECT 1") }
        #expect(error?.code == .connectionLost)
        #expect(error?.isRetryable == true)
        #expect(ContinuousClock.now - start < .seconds(10))
        await connection.close()
    }

    @Test("a transaction cut by a restart is rolled back and reported as connectionLost")
    func transactionDuringRestart() async throws {
        try await TestDatabase.withTable("restart_tx", columns: "id int") { table in
            try await TestDatabase.withPool(size: 1) { pool in
                let inside = Latch()
                let task = Task {
                    try await postgresError {
                        try await pool.withTransaction { transaction in
                            _ = try await transaction.query("INSERT INTO \(raw: table) VALUES (1)")
                            await inside.open()
                            _ = try await transaction.query("SELECT pg_sleep(30)")
                        }
                    }
                }
                await inside.wait()
                try await Task.sleep(for: .milliseconds(100))
                try await TestDatabase.runControl("restart")
                #expect(try await value(of: task)?.code == .connectionLost)
                #expect(try await pool.query("SELECT count(*) FROM \(raw: table)")[0].decode(0, as: Int64.self) == 0)
            }
        }
    }

    @Test("while the server is stopped, callers fail fast with connectionFailed; after start, all is well")
    func serverStopped() async throws {
        try await TestDatabase.withPool(size: 1) { pool in
            _ = try await pool.query("SELECT 1")
            try await TestDatabase.runControl("stop")
            do {
                let start = ContinuousClock.now
                let error = try await postgresError { _ = try await pool.query("SELECT 1") }
                #expect(error?.code == .connectionFailed, "got \(String(describing: error))")
                #expect(error?.isRetryable == true)
                // Several callers queued on the one slot: each fails, none hangs.
                let errors = try await withThrowingTaskGroup(of: PostgresError?.self) { group in
                    for _ in 0..<4 {
                        group.addTask { try await postgresError { _ = try await pool.query("SELECT 1") } }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(errors.map { $0?.code } == Array(repeating: .connectionFailed, count: 4))
                // Half the pool's 10 s connect timeout: no caller waited it out.
                #expect(ContinuousClock.now - start < .seconds(5))
            } catch {
                try await TestDatabase.runControl("start")
                throw error
            }
            try await TestDatabase.runControl("start")
            for _ in 0..<3 {
                #expect(try await pool.query("SELECT 1::int8")[0].decode(0, as: Int64.self) == 1)
            }
        }
    }
}
