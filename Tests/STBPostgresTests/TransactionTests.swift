import STBEventLoop
@testable import STBPostgres
import Testing

@Suite("Transactions", .sharedDatabase, .timeLimit(.minutes(1)))
struct TransactionTests {
    struct BodyFailed: Error, Equatable {}

    @Test("withTransaction commits when the body returns; others see the row afterwards, not before")
    func commitsOnReturn() async throws {
        try await TestDatabase.withTable("tx_commit", columns: "id int PRIMARY KEY") { table in
            try await TestDatabase.withPool(size: 1) { pool in
                let value = try await pool.withTransaction { transaction in
                    let rows = try await transaction.query("INSERT INTO \(raw: table) VALUES (1) RETURNING id")
                    try await TestDatabase.withConnection { other throws in
                        #expect(try await TestDatabase.count(table, on: other) == 0)
                    }
                    return try rows[0].decode(0, as: Int32.self)
                }
                #expect(value == 1)
                try await TestDatabase.withConnection { other throws in
                    #expect(try await TestDatabase.count(table, on: other) == 1)
                }
            }
        }
    }

    @Test("withTransaction rolls back when the body throws, rethrows its error and reuses the connection")
    func rollsBackOnThrow() async throws {
        try await TestDatabase.withTable("tx_rollback", columns: "id int PRIMARY KEY") { table in
            try await TestDatabase.withPool(size: 1) { pool in
                let pid = Locked<Int32?>(nil)
                await #expect(throws: BodyFailed.self) {
                    try await pool.withTransaction { transaction in
                        _ = try await transaction.query("INSERT INTO \(raw: table) VALUES (1)")
                        let backend = try await TestDatabase.backendPID(transaction.connection)
                        pid.withLock { $0 = backend }
                        throw BodyFailed()
                    }
                }
                try await TestDatabase.withConnection { other throws in
                    #expect(try await TestDatabase.count(table, on: other) == 0)
                }
                // Rolled back, so idle: the same session serves the next caller.
                try await pool.withConnection { connection in
                    #expect(try await TestDatabase.backendPID(connection) == pid.value)
                    let open = try await connection.query("SELECT txid_current_if_assigned() IS NULL")
                    #expect(try open[0].decode(0, as: Bool.self))
                }
            }
        }
    }

    @Test("a failing statement inside withTransaction rolls back the earlier ones")
    func failingStatementRollsBack() async throws {
        try await TestDatabase.withTable("tx_failing", columns: "id int PRIMARY KEY") { table in
            try await TestDatabase.withPool(size: 1) { pool throws in
                let error = await #expect(throws: PostgresError.self) {
                    try await pool.withTransaction { transaction in
                        _ = try await transaction.query("INSERT INTO \(raw: table) VALUES (1)")
                        _ = try await transaction.query("INSERT INTO \(raw: table) VALUES (2)")
                        _ = try await transaction.query("INSERT INTO \(raw: table) VALUES (1)")
                    }
                }
                #expect(error?.code == .uniqueViolation)
                #expect(try await pool.query("SELECT count(*) FROM \(raw: table)")[0].decode(0, as: Int64.self) == 0)
            }
        }
    }

    @Test("withTransaction runs at the requested isolation level", arguments: [
        (PostgresIsolationLevel.readCommitted, "read committed"),
        (.repeatableRead, "repeatable read"),
        (.serializable, "serializable"),
    ])
    func isolationLevel(_ level: PostgresIsolationLevel, _ expected: String) async throws {
        try await TestDatabase.withPool(size: 1) { pool in
            let shown = try await pool.withTransaction(isolationLevel: level) { transaction in
                try await transaction.query("SHOW transaction_isolation")[0].decode(0, as: String.self)
            }
            #expect(shown == expected)
        }
    }

    @Test("notifyOnCommit sends one notification per committed transaction, none on rollback")
    func notifyOnCommit() async throws {
        let channel = TestDatabase.uniqueName("tx_channel")
        let sentinel = TestDatabase.uniqueName("tx_sentinel")
        let received = Locked<[String]>([])
        let listener = try await TestDatabase.connect()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            listener.loop.execute {
                listener.onNotification = { channel in received.withLock { $0.append(channel) } }
                continuation.resume()
            }
        }
        try await listener.execute(script: "LISTEN \(channel); LISTEN \(sentinel)")

        try await TestDatabase.withPool(size: 2) { pool in
            // Asked for twice: still one notification.
            try await pool.withTransaction { transaction in
                transaction.notifyOnCommit(channel: channel)
                transaction.notifyOnCommit(channel: channel)
                _ = try await transaction.query("SELECT 1")
            }
            // Rolled back: none.
            await #expect(throws: BodyFailed.self) {
                try await pool.withTransaction { transaction in
                    transaction.notifyOnCommit(channel: channel)
                    throw BodyFailed()
                }
            }
            // Nothing is sent before the commit.
            try await pool.withTransaction { transaction in
                transaction.notifyOnCommit(channel: channel)
                try await Task.sleep(for: .milliseconds(100))
                #expect(received.value.filter { $0 == channel }.count <= 1)
            }
            // Notifications arrive in commit order: once the sentinel is in, so is everything before it.
            try await pool.withTransaction { $0.notifyOnCommit(channel: sentinel) }
        }
        let arrived = try await TestDatabase.eventually { received.value.contains(sentinel) }
        #expect(arrived, "no notification arrived on the listening connection")
        #expect(received.value == [channel, channel, sentinel])
        await listener.close()
    }

    /// Two SERIALIZABLE transactions, `first` and `second`, that each read the table's sum
    /// and insert it plus one: a write skew the server must break by failing one of them.
    /// Both read before either writes (the first time round); `second` writes once `first`
    /// has committed, so the server fails `second` (deterministically) and a retry of
    /// `second` sees `first`'s row.
    func conflictingTransactions(maxAttempts: Int) async throws -> (results: [Result<Int64, PostgresError>], bodyRuns: Int, values: [Int64]) {
        try await TestDatabase.withTable("tx_ssi", columns: "id bigserial PRIMARY KEY, v int8 NOT NULL") { table in
            try await TestDatabase.withPool(size: 2) { pool in
                _ = try await pool.query("INSERT INTO \(raw: table) (v) VALUES (1)")
                let runs = Locked(0)
                let bothRead = Barrier(count: 2)
                let firstCommitted = Latch()
                let results = try await withThrowingTaskGroup(of: (Int, Result<Int64, PostgresError>).self) { group in
                    for index in 0..<2 {
                        group.addTask {
                            var attempt = 0
                            let result = try await postgresResult {
                                try await pool.withTransaction(isolationLevel: .serializable, maxAttempts: maxAttempts) { transaction in
                                    attempt += 1
                                    runs.withLock { $0 += 1 }
                                    let sum = try await transaction.query("SELECT sum(v)::int8 FROM \(raw: table)")[0].decode(0, as: Int64.self)
                                    if attempt == 1 {
                                        _ = await bothRead.arrive()
                                        if index == 1 { await firstCommitted.wait() }
                                    }
                                    _ = try await transaction.query("INSERT INTO \(raw: table) (v) VALUES (\(sum + 1))")
                                    return sum + 1
                                }
                            }
                            if index == 0 { await firstCommitted.open() }
                            return (index, result)
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }.sorted { $0.0 < $1.0 }.map(\.1)
                }
                let values = try await pool.query("SELECT v FROM \(raw: table) ORDER BY v").map { try $0.decode(0, as: Int64.self) }
                return (results, runs.value, values)
            }
        }
    }

    @Test("conflicting SERIALIZABLE transactions both succeed with retries, as if run one after the other")
    func serializationRetry() async throws {
        let (results, runs, values) = try await conflictingTransactions(maxAttempts: 5)
        for result in results {
            if case .failure(let error) = result { Issue.record("a transaction failed: \(error)") }
        }
        #expect(runs == 3, "the losing transaction's body should have run twice")
        // Serial order: 1, then 1 + 1 = 2, then 1 + 2 + 1 = 4.
        #expect(values == [1, 2, 4])
    }

    @Test("without retries, one of two conflicting SERIALIZABLE transactions fails with serializationFailure")
    func serializationFailureWithoutRetry() async throws {
        let (results, runs, values) = try await conflictingTransactions(maxAttempts: 1)
        let failures = results.compactMap { result -> PostgresError? in
            if case .failure(let error) = result { return error }
            return nil
        }
        #expect(runs == 2)
        #expect(failures.count == 1)
        #expect(results[1].failure != nil, "the second (later writer) should have failed")
        #expect(failures.first?.code == .serializationFailure)
        #expect(failures.first?.isRetryable == true)
        #expect(values == [1, 2])
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

/// The outcome of `body`, with a `PostgresError` as its failure (any other error is rethrown).
func postgresResult<T>(
    isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T
) async throws -> Result<T, PostgresError> {
    do {
        return .success(try await body())
    } catch let error as PostgresError {
        return .failure(error)
    }
}
