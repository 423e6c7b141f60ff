import STBPostgres
import Testing

@Suite("Pipelines and prepared statements", .sharedDatabase, .timeLimit(.minutes(1)))
struct PipelineTests {
    @Test("a pipeline returns each statement's rows, in order")
    func rowsInOrder() async throws {
        try await TestDatabase.withPool(size: 1) { pool in
            try await pool.withConnection { connection in
                try await connection.execute(script: "CREATE TEMP TABLE pipe_order (n int8)")
                let results = try await connection.pipeline([
                    "SELECT \(Int64(41)) + 1",
                    "INSERT INTO pipe_order VALUES (1), (2), (3)",
                    "SELECT n FROM pipe_order ORDER BY n DESC",
                    "SELECT generate_series(1, 0)",
                    "SELECT \("b")::text, \("a")::text",
                ])
                try #require(results.count == 5)
                #expect(try results[0][0].decode(0, as: Int64.self) == 42)
                #expect(results[1].affectedRows == 3)
                #expect(results[1].count == 0)
                #expect(try results[2].map { try $0.decode(0, as: Int64.self) } == [3, 2, 1])
                #expect(results[3].isEmpty)
                #expect(try results[4][0].decode(String.self, String.self) == ("b", "a"))
                #expect(try await connection.pipeline([]).isEmpty)
            }
        }
    }

    @Test("a failing statement fails the whole batch: nothing persists, the connection carries on")
    func failingStatementAbortsBatch() async throws {
        try await TestDatabase.withTable("pipe_atomic", columns: "id int PRIMARY KEY") { table in
            try await TestDatabase.withPool(size: 1) { pool in
                try await pool.withConnection { connection in
                    let error = await #expect(throws: PostgresError.self) {
                        try await connection.pipeline([
                            "INSERT INTO \(raw: table) VALUES (1)",
                            "INSERT INTO \(raw: table) VALUES (2)",
                            "INSERT INTO \(raw: table) VALUES (1)",
                            "INSERT INTO \(raw: table) VALUES (3)",
                        ])
                    }
                    // The first error is reported, not the "pipeline aborted" of the rest.
                    #expect(error?.code == .uniqueViolation)
                    #expect(error?.table == table)
                    // Seen from another session: none of the batch's inserts took effect.
                    try await TestDatabase.withConnection { other throws in
                        #expect(try await TestDatabase.count(table, on: other) == 0)
                    }
                    // Same connection, next request: works, and sees an empty table.
                    #expect(try await TestDatabase.count(table, on: connection) == 0)
                    let results = try await connection.pipeline([
                        "INSERT INTO \(raw: table) VALUES (4)",
                        "INSERT INTO \(raw: table) VALUES (5)",
                    ])
                    #expect(results.map(\.affectedRows) == [1, 1])
                    try await TestDatabase.withConnection { other throws in
                        #expect(try await TestDatabase.count(table, on: other) == 2)
                    }
                }
            }
        }
    }

    @Test("inside an explicit transaction, a pipeline's statements commit with the transaction")
    func pipelineInTransaction() async throws {
        try await TestDatabase.withTable("pipe_tx", columns: "id int PRIMARY KEY") { table in
            try await TestDatabase.withPool(size: 1) { pool in
                try await pool.withTransaction { transaction in
                    _ = try await transaction.pipeline([
                        "INSERT INTO \(raw: table) VALUES (1)",
                        "INSERT INTO \(raw: table) VALUES (2)",
                    ])
                    // Not visible to others before COMMIT.
                    try await TestDatabase.withConnection { other throws in
                        #expect(try await TestDatabase.count(table, on: other) == 0)
                    }
                }
                await #expect(throws: PostgresError.self) {
                    try await pool.withTransaction { transaction in
                        _ = try await transaction.pipeline([
                            "INSERT INTO \(raw: table) VALUES (3)",
                            "INSERT INTO \(raw: table) VALUES (1)",
                        ])
                    }
                }
                try await TestDatabase.withConnection { other throws in
                    let ids = try await other.query("SELECT id FROM \(raw: table) ORDER BY id")
                    #expect(try ids.map { try $0.decode(0, as: Int32.self) } == [1, 2])
                }
            }
        }
    }

    /// Statements of this connection's cache as the server knows them: text → count.
    static func prepared(_ tag: String, on connection: PostgresConnection) async throws -> [String: Int64] {
        let rows = try await connection.query("""
            SELECT statement, count(*) FROM pg_prepared_statements
            WHERE from_sql = false AND strpos(statement, \(tag)) > 0 GROUP BY statement
            """)
        var result: [String: Int64] = [:]
        for row in rows {
            let (statement, count) = try row.decode(String.self, Int64.self)
            result[statement] = count
        }
        return result
    }

    @Test("a statement whose prepare fails leaves the statement cache consistent")
    func failedPrepareKeepsCacheConsistent() async throws {
        let tag = TestDatabase.uniqueName("tag")
        let first = "SELECT 1::int8 AS first /* \(tag) */"
        let broken = "SELEC 2 /* \(tag) */"
        let third = "SELECT 3::int8 AS third /* \(tag) */"
        let fourth = "SELECT 4::int8 AS fourth /* \(tag) */"
        try await TestDatabase.withPool(size: 1) { pool in
            try await pool.withConnection { connection in
                let error = await #expect(throws: PostgresError.self) {
                    try await connection.pipeline([PostgresQuery(sql: first), PostgresQuery(sql: broken), PostgresQuery(sql: third)])
                }
                #expect(error?.sqlState == "42601")

                // The statement after the broken one was never prepared: it is now.
                #expect(try await connection.query(PostgresQuery(sql: third))[0].decode(0, as: Int64.self) == 3)
                #expect(try await connection.query(PostgresQuery(sql: first))[0].decode(0, as: Int64.self) == 1)
                // The broken one fails for what it is, not as a missing prepared statement.
                let again = await #expect(throws: PostgresError.self) { try await connection.query(PostgresQuery(sql: broken)) }
                #expect(again?.sqlState == "42601")
                // A broken statement first in a batch, then new ones.
                await #expect(throws: PostgresError.self) {
                    try await connection.pipeline([PostgresQuery(sql: broken), PostgresQuery(sql: fourth), PostgresQuery(sql: third)])
                }
                let results = try await connection.pipeline([PostgresQuery(sql: fourth), PostgresQuery(sql: first), PostgresQuery(sql: third)])
                #expect(try results.map { try $0[0].decode(0, as: Int64.self) } == [4, 1, 3])

                // Each good statement is prepared exactly once; the broken one not at all.
                let statements = try await Self.prepared(tag, on: connection)
                #expect(statements == [first: 1, third: 1, fourth: 1])
            }
        }
    }

    @Test("a statement whose execution fails stays prepared and reusable")
    func failedExecutionKeepsStatement() async throws {
        let tag = TestDatabase.uniqueName("tag")
        let divide = "SELECT 10 / $1::int4 /* \(tag) */"
        let after = "SELECT 5::int8 AS after /* \(tag) */"
        try await TestDatabase.withConnection { connection throws in
            var bindings = PostgresBindings()
            bindings.append(Int32(0))
            let failing = PostgresQuery(sql: divide, bindings: bindings)
            let error = await #expect(throws: PostgresError.self) {
                try await connection.pipeline([failing, PostgresQuery(sql: after)])
            }
            #expect(error?.sqlState == "22012")
            #expect(try await connection.query(PostgresQuery(sql: after))[0].decode(0, as: Int64.self) == 5)
            var good = PostgresBindings()
            good.append(Int32(2))
            #expect(try await connection.query(PostgresQuery(sql: divide, bindings: good))[0].decode(0, as: Int32.self) == 5)
            let again = await #expect(throws: PostgresError.self) { try await connection.query(failing) }
            #expect(again?.sqlState == "22012")
            #expect(try await Self.prepared(tag, on: connection) == [divide: 1, after: 1])
        }
    }

    @Test("statements first prepared inside a transaction survive its rollback, or failed and are re-prepared")
    func prepareInTransaction() async throws {
        let tag = TestDatabase.uniqueName("tag")
        let inRolledBack = "SELECT 6::int8 AS rolled_back /* \(tag) */"
        let inAborted = "SELECT 7::int8 AS aborted /* \(tag) */"
        try await TestDatabase.withConnection { connection in
            _ = try await connection.query("BEGIN")
            #expect(try await connection.query(PostgresQuery(sql: inRolledBack))[0].decode(0, as: Int64.self) == 6)
            _ = try await connection.query("ROLLBACK")
            // Prepared statements are not transactional: the cached one still exists.
            #expect(try await connection.query(PostgresQuery(sql: inRolledBack))[0].decode(0, as: Int64.self) == 6)

            _ = try await connection.query("BEGIN")
            await #expect(throws: PostgresError.self) { try await connection.query("SELECT 'x'::int") }
            // Its prepare fails in the aborted transaction...
            let aborted = await #expect(throws: PostgresError.self) { try await connection.query(PostgresQuery(sql: inAborted)) }
            #expect(aborted?.sqlState == "25P02")
            _ = try await connection.query("ROLLBACK")
            // ...and it is prepared afresh afterwards.
            #expect(try await connection.query(PostgresQuery(sql: inAborted))[0].decode(0, as: Int64.self) == 7)
            #expect(try await Self.prepared(tag, on: connection) == [inRolledBack: 1, inAborted: 1])
        }
    }

    @Test("a statement whose preparation failed, even looked up again in the same pipeline, is prepared afresh on its next run")
    func failedPrepareForgotten() async throws {
        let table = TestDatabase.uniqueName("later")
        let sql = "SELECT count(*) FROM \(table)"
        try await TestDatabase.withConnection { connection in
            // The second copy finds the statement the first is preparing; both fail.
            await #expect(throws: PostgresError.self) {
                _ = try await connection.pipeline([PostgresQuery(sql: sql), PostgresQuery(sql: sql)])
            }
            await #expect(throws: PostgresError.self) { try await connection.query(PostgresQuery(sql: sql)) }
            _ = try await connection.query(PostgresQuery(sql: "CREATE TEMP TABLE \(table) (id int)"))
            // Neither the cache nor the statement run last may still name the failed one.
            #expect(try await connection.query(PostgresQuery(sql: sql))[0].decode(0, as: Int64.self) == 0)
            #expect(try await connection.query(PostgresQuery(sql: sql))[0].decode(0, as: Int64.self) == 0)
        }
    }

    @Test("the same statement run 100 times is prepared once and executed 100 times")
    func preparedOnce() async throws {
        let tag = TestDatabase.uniqueName("tag")
        let sql = "SELECT $1::int8 + 1 /* \(tag) */"
        try await TestDatabase.withPool(size: 1) { pool in
            try await pool.withConnection { connection in
                let pid = try await TestDatabase.backendPID(connection)
                for value in 0..<100 {
                    var bindings = PostgresBindings()
                    bindings.append(Int64(value))
                    let rows = try await connection.query(PostgresQuery(sql: sql, bindings: bindings))
                    #expect(try rows[0].decode(0, as: Int64.self) == Int64(value) + 1)
                }
                #expect(try await TestDatabase.backendPID(connection) == pid)
                let rows = try await connection.query("""
                    SELECT count(*), coalesce(sum(generic_plans + custom_plans), 0)::int8
                    FROM pg_prepared_statements WHERE statement = \(sql)
                    """)
                let (statements, executions) = try rows[0].decode(Int64.self, Int64.self)
                #expect(statements == 1)
                #expect(executions == 100)

                // The same text with another parameter type is another statement.
                var narrow = PostgresBindings()
                narrow.append(Int32(1))
                _ = try await connection.query(PostgresQuery(sql: sql, bindings: narrow))
                let types = try await connection.query("""
                    SELECT parameter_types::text FROM pg_prepared_statements WHERE statement = \(sql) ORDER BY 1
                    """)
                #expect(try types.map { try $0.decode(0, as: String.self) } == ["{bigint}", "{integer}"])
            }
        }
    }

    @Test("a large pipeline past the statement cache's limit: every result, at most 512 prepared")
    func largePipeline() async throws {
        let tag = TestDatabase.uniqueName("tag")
        try await TestDatabase.withConnection { connection in
            let queries = (0..<600).map { PostgresQuery(sql: "SELECT \($0)::int8, repeat('x', 2000) /* \(tag) */") }
            let results = try await connection.pipeline(queries)
            try #require(results.count == 600)
            for (index, rows) in results.enumerated() {
                let (number, padding) = try rows[0].decode(Int64.self, String.self)
                #expect(number == Int64(index))
                #expect(padding.utf8.count == 2000)
            }
            let total = try await connection.query("SELECT count(*) FROM pg_prepared_statements")[0].decode(0, as: Int64.self)
            #expect(total == 512)
            // Statements past the limit still run (unnamed), again and again.
            for _ in 0..<3 {
                #expect(try await connection.query(queries[599])[0].decode(0, as: Int64.self) == 599)
            }
        }
    }
}
