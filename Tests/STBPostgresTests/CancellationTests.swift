import STBPostgres
import Testing

@Suite("Cancellation", .sharedDatabase, .timeLimit(.minutes(1)))
struct CancellationTests {
    /// Waits until backend `pid` runs a statement (state `active`).
    static func waitUntilActive(_ pid: Int32, monitor: PostgresConnection) async throws -> Bool {
        try await TestDatabase.eventually {
            try await TestDatabase.backendState(pid, monitor: monitor) == "active"
        }
    }

    @Test("cancelling a task stops its running query server-side; the connection is reused")
    func cancelRunningQuery() async throws {
        try await TestDatabase.withPool(size: 1) { pool in
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
            try await Task.sleep(for: .milliseconds(200))
            try await TestDatabase.withConnection { monitor in
                let backend = try #require(pid.value)
                #expect(try await Self.waitUntilActive(backend, monitor: monitor), "pg_sleep never started")

                let cancelled = ContinuousClock.now
                task.cancel()
                let (error, finished) = try await value(of: task)
                #expect(error?.code == .queryCancelled)
                #expect(error?.sqlState == "57014")
                #expect(error?.isRetryable == false)
                #expect(finished - cancelled < .seconds(15), "cancelling took \(finished - cancelled)")

                // The server stopped the statement: the session is idle, not still sleeping.
                let idle = try await TestDatabase.eventually(timeout: .seconds(20)) {
                    try await TestDatabase.backendState(backend, monitor: monitor) == "idle"
                }
                let state = try await TestDatabase.backendState(backend, monitor: monitor)
                #expect(idle, "backend state: \(String(describing: state))")

                // The pool's only connection serves the next caller, promptly.
                let start = ContinuousClock.now
                let next = try await pool.withConnection { try await TestDatabase.backendPID($0) }
                #expect(next == backend)
                #expect(ContinuousClock.now - start < .seconds(15))
            }
        }
    }

    @Test("a task cancelled before it queries throws without sending anything")
    func cancelledBeforeQuery() async throws {
        try await TestDatabase.withTable("cancel_before", columns: "id int") { table in
            try await TestDatabase.withPool(size: 1) { pool in
                let before = try await pool.withConnection { try await TestDatabase.backendPID($0) }
                let task = Task {
                    try await postgresError {
                        try await pool.withConnection { connection in
                            withUnsafeCurrentTask { $0?.cancel() }
                            _ = try await connection.query("INSERT INTO \(raw: table) VALUES (1)")
                        }
                    }
                }
                let error = try await value(of: task)
                #expect(error?.code == .queryCancelled)
                let (after, count) = try await pool.withConnection { connection in
                    (try await TestDatabase.backendPID(connection), try await TestDatabase.count(table, on: connection))
                }
                #expect(count == 0, "the cancelled INSERT reached the server")
                #expect(after == before, "the connection was not reused")
            }
        }
    }

    @Test("cancelling inside a transaction rolls it back; the connection is reused")
    func cancelInsideTransaction() async throws {
        try await TestDatabase.withTable("cancel_tx", columns: "id int") { table in
            try await TestDatabase.withPool(size: 1) { pool in
                let pid = Locked<Int32?>(nil)
                let task = Task {
                    try await postgresError {
                        try await pool.withTransaction { transaction in
                            _ = try await transaction.query("INSERT INTO \(raw: table) VALUES (1)")
                            let backend = try await TestDatabase.backendPID(transaction.connection)
                            pid.withLock { $0 = backend }
                            _ = try await transaction.query("SELECT pg_sleep(30)")
                        }
                    }
                }
                try await TestDatabase.withConnection { monitor in
                    let started = try await TestDatabase.eventually {
                        guard let backend = pid.value else { return false }
                        return try await TestDatabase.backendState(backend, monitor: monitor) == "active"
                    }
                    #expect(started)
                    task.cancel()
                    #expect(try await value(of: task)?.code == .queryCancelled)
                    #expect(try await TestDatabase.count(table, on: monitor) == 0)
                    let next = try await pool.withConnection { connection in
                        let rows = try await connection.query("SELECT pg_backend_pid(), txid_current_if_assigned() IS NULL")
                        return try rows[0].decode(Int32.self, Bool.self)
                    }
                    #expect(next.0 == pid.value)
                    #expect(next.1, "a transaction is still open")
                }
            }
        }
    }

    @Test("a task cancelled after its transaction body returned still commits")
    func cancelledAfterBodyStillCommits() async throws {
        try await TestDatabase.withTable("cancel_commit", columns: "id int") { table in
            try await TestDatabase.withPool(size: 1) { pool in
                let task = Task {
                    try await postgresError {
                        try await pool.withTransaction { transaction in
                            _ = try await transaction.query("INSERT INTO \(raw: table) VALUES (1)")
                            withUnsafeCurrentTask { $0?.cancel() }
                        }
                    }
                }
                #expect(try await value(of: task) == nil)
                #expect(try await pool.query("SELECT count(*) FROM \(raw: table)")[0].decode(0, as: Int64.self) == 1)
                let open = try await pool.query("SELECT txid_current_if_assigned() IS NULL")
                #expect(try open[0].decode(0, as: Bool.self))
            }
        }
    }

    @Test("a query after the task was cancelled inside a transaction body throws and rolls back")
    func cancelledBodyRollsBack() async throws {
        try await TestDatabase.withTable("cancel_body", columns: "id int") { table in
            try await TestDatabase.withPool(size: 1) { pool throws in
                let task = Task {
                    try await postgresError {
                        try await pool.withTransaction { transaction in
                            _ = try await transaction.query("INSERT INTO \(raw: table) VALUES (1)")
                            withUnsafeCurrentTask { $0?.cancel() }
                            _ = try await transaction.query("INSERT INTO \(raw: table) VALUES (2)")
                        }
                    }
                }
                #expect(try await value(of: task)?.code == .queryCancelled)
                #expect(try await pool.query("SELECT count(*) FROM \(raw: table)")[0].decode(0, as: Int64.self) == 0)
            }
        }
    }

    @Test("cancelling a pipeline mid-way: none of its statements take effect")
    func cancelPipeline() async throws {
        try await TestDatabase.withTable("cancel_pipe", columns: "id int") { table in
            try await TestDatabase.withPool(size: 1) { pool in
                let task = Task {
                    try await postgresError {
                        try await pool.withConnection { connection in
                            _ = try await connection.pipeline([
                                "INSERT INTO \(raw: table) VALUES (1)",
                                "SELECT pg_sleep(30)",
                                "INSERT INTO \(raw: table) VALUES (2)",
                            ])
                        }
                    }
                }
                try await Task.sleep(for: .milliseconds(200))
                let cancelled = ContinuousClock.now
                task.cancel()
                #expect(try await value(of: task)?.code == .queryCancelled)
                #expect(ContinuousClock.now - cancelled < .seconds(15))
                #expect(try await pool.query("SELECT count(*) FROM \(raw: table)")[0].decode(0, as: Int64.self) == 0)
            }
        }
    }

    @Test("cancelling a request still queued behind another drops it; the running one completes")
    func cancelQueuedRequest() async throws {
        try await TestDatabase.withConnection { connection in
            let running = Task { try await postgresError { _ = try await connection.query("SELECT pg_sleep(4)") } }
            try await Task.sleep(for: .milliseconds(50))
            let queued = Task { () -> (PostgresError?, ContinuousClock.Instant) in
                let error = try await postgresError { _ = try await connection.query("SELECT 1") }
                return (error, .now)
            }
            try await Task.sleep(for: .milliseconds(50))
            let cancelled = ContinuousClock.now
            queued.cancel()
            let (error, finished) = try await value(of: queued)
            #expect(error?.code == .queryCancelled)
            #expect(finished - cancelled < .seconds(2), "the queued request waited for the running one")
            #expect(try await value(of: running) == nil, "the running query was hit by the other's cancel")
            #expect(try await connection.query("SELECT 2::int8")[0].decode(0, as: Int64.self) == 2)
        }
    }

    @Test("cancels that arrive late never hit the next caller's statement")
    func lateCancelsDoNotLeak() async throws {
        try await TestDatabase.withPool(size: 1) { pool in
            var cancelledCount = 0
            for round in 0..<25 {
                let task = Task {
                    try await postgresError { _ = try await pool.query("SELECT pg_sleep(0.01)") }
                }
                // Cancel at varying points: before, during and just after the statement.
                try await Task.sleep(for: .microseconds(600 * (round % 25)))
                task.cancel()
                if try await value(of: task)?.code == .queryCancelled { cancelledCount += 1 }
                // The next statement runs long enough for a stray cancel to catch it.
                let error = try await postgresError { _ = try await pool.query("SELECT pg_sleep(0.03)") }
                #expect(error == nil, "round \(round): the next caller's statement failed: \(String(describing: error))")
            }
            // Not a check of the pool; that the rounds exercised cancellation at all.
            #expect(cancelledCount > 0)
        }
    }
}
