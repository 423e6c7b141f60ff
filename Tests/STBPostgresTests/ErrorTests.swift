import STBPostgres
import Testing

@Suite("Server errors", .sharedDatabase, .timeLimit(.minutes(1)))
struct ErrorTests {
    /// One failing statement and what it must map to.
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let sql: PostgresQuery
        let code: PostgresError.Code
        let sqlState: String
        var constraint: String? = nil
        var table: String? = nil
        var column: String? = nil
        /// Literal text of the statement that must not leak into `message`.
        var secret: String? = nil

        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "unique violation", sql: "INSERT INTO err_child (id, code) VALUES (\(2), \("taken"))",
            code: .uniqueViolation, sqlState: "23505", constraint: "err_child_code_key", table: "err_child"
        ),
        Case(
            name: "unique violation, literal values", sql: "INSERT INTO err_child (id, code) VALUES (3, 'taken')",
            code: .uniqueViolation, sqlState: "23505", constraint: "err_child_code_key", table: "err_child",
            secret: "INSERT INTO err_child"
        ),
        Case(
            name: "foreign key violation", sql: "INSERT INTO err_child (id, parent_id) VALUES (\(4), \(99))",
            code: .foreignKeyViolation, sqlState: "23503", constraint: "err_child_parent_fk", table: "err_child"
        ),
        Case(
            name: "check violation", sql: "INSERT INTO err_child (id, qty) VALUES (\(5), \(Int32(0)))",
            code: .checkViolation, sqlState: "23514", constraint: "err_child_qty_positive", table: "err_child"
        ),
        Case(
            name: "not-null violation", sql: "INSERT INTO err_child (id, qty) VALUES (\(6), NULL)",
            code: .notNullViolation, sqlState: "23502", table: "err_child", column: "qty"
        ),
        Case(name: "bad int cast", sql: "SELECT 'x'::int", code: .invalidData, sqlState: "22P02"),
        Case(
            name: "value too long", sql: "INSERT INTO err_child (id, code) VALUES (\(7), \("much-too-long"))",
            code: .invalidData, sqlState: "22001"
        ),
        Case(name: "division by zero", sql: "SELECT 1 / \(Int32(0))", code: .invalidData, sqlState: "22012"),
        Case(name: "syntax error", sql: "SELEC 1 FROM err_child", code: .server, sqlState: "42601"),
        Case(name: "undefined table", sql: "SELECT * FROM err_no_such_table", code: .server, sqlState: "42P01"),
    ]

    /// Temporary tables: private to the session, gone with the connection.
    static let schema = """
        CREATE TEMP TABLE err_parent (id int PRIMARY KEY);
        CREATE TEMP TABLE err_child (
            id int PRIMARY KEY,
            parent_id int CONSTRAINT err_child_parent_fk REFERENCES err_parent (id),
            qty int NOT NULL DEFAULT 1 CONSTRAINT err_child_qty_positive CHECK (qty > 0),
            code varchar(8) CONSTRAINT err_child_code_key UNIQUE
        );
        INSERT INTO err_parent VALUES (1);
        INSERT INTO err_child (id, parent_id, code) VALUES (1, 1, 'taken');
        """

    @Test("a failing statement maps to its code and diagnostics; the connection stays usable", arguments: cases)
    func mapsError(_ testCase: Case) async throws {
        try await TestDatabase.withPool(size: 1) { pool in
            try await pool.withConnection { connection in
                try await connection.execute(script: Self.schema)
                let pid = try await TestDatabase.backendPID(connection)

                let error = await #expect(throws: PostgresError.self) { try await connection.query(testCase.sql) }
                #expect(error?.code == testCase.code)
                #expect(error?.sqlState == testCase.sqlState)
                if let constraint = testCase.constraint { #expect(error?.constraint == constraint) }
                if let table = testCase.table { #expect(error?.table == table) }
                if let column = testCase.column { #expect(error?.column == column) }
                if let message = error?.message {
                    #expect(!message.isEmpty)
                    #expect(!message.contains(testCase.sql.sql), "message holds the SQL: \(message)")
                    if let secret = testCase.secret { #expect(!message.contains(secret), "message holds SQL: \(message)") }
                }
                #expect(error?.isRetryable == false)

                // The same session carries on: not in an aborted transaction, temp tables
                // still there, nothing of the failed statement stored.
                #expect(connection.isUsable)
                #expect(try await TestDatabase.backendPID(connection) == pid)
                #expect(try await TestDatabase.count("err_child", on: connection) == 1)
                let inserted = try await connection.query("INSERT INTO err_child (id, code) VALUES (\(100), \("fresh"))")
                #expect(inserted.affectedRows == 1)
                #expect(try await TestDatabase.count("err_child", on: connection) == 2)
                // The failing statement fails the same way again (its prepared-statement
                // cache entry, if any, is consistent with the server).
                let again = await #expect(throws: PostgresError.self) { try await connection.query(testCase.sql) }
                #expect(again?.sqlState == testCase.sqlState)
            }
        }
    }

    @Test("the error message of a unique violation is the server's sentence, the key in detail")
    func uniqueViolationFields() async throws {
        try await TestDatabase.withConnection { connection in
            try await connection.execute(script: Self.schema)
            let secretValue = "taken"
            let error = await #expect(throws: PostgresError.self) {
                try await connection.query("INSERT INTO err_child (id, code) VALUES (\(9), \(secretValue))")
            }
            #expect(error?.message == "duplicate key value violates unique constraint \"err_child_code_key\"")
            #expect(error?.detail?.contains("(code)=(taken)") == true)
            #expect(error?.description.contains("23505") == true)
        }
    }

    @Test("an error inside an explicit transaction aborts it until ROLLBACK, then the session works")
    func errorInExplicitTransaction() async throws {
        try await TestDatabase.withConnection { connection in
            try await connection.execute(script: Self.schema)
            _ = try await connection.query("BEGIN")
            _ = try await connection.query("INSERT INTO err_child (id) VALUES (\(20))")
            let error = await #expect(throws: PostgresError.self) { try await connection.query("SELECT 'x'::int") }
            #expect(error?.code == .invalidData)
            let aborted = await #expect(throws: PostgresError.self) { try await connection.query("SELECT 1") }
            #expect(aborted?.sqlState == "25P02")
            _ = try await connection.query("ROLLBACK")
            #expect(try await TestDatabase.count("err_child", on: connection) == 1)
        }
    }

    @Test("a failing simple-protocol script is atomic and reports the server's error")
    func scriptError() async throws {
        try await TestDatabase.withConnection { connection in
            try await connection.execute(script: Self.schema)
            let error = await #expect(throws: PostgresError.self) {
                try await connection.execute(script: "INSERT INTO err_child (id) VALUES (30); INSERT INTO err_child (id, qty) VALUES (31, -1)")
            }
            #expect(error?.code == .checkViolation)
            #expect(error?.constraint == "err_child_qty_positive")
            // One implicit transaction: the first INSERT is gone too.
            #expect(try await TestDatabase.count("err_child", on: connection) == 1)
            try await connection.execute(script: "INSERT INTO err_child (id) VALUES (32)")
            #expect(try await TestDatabase.count("err_child", on: connection) == 2)
        }
    }

    @Test("columns are looked up by their exact name: case-sensitive, no identifier folding")
    func columnNamesAreExact() async throws {
        try await TestDatabase.withConnection { connection in
            let rows = try await connection.query(#"SELECT 1::int8 AS "userId", 2::int8 AS userid, 3::int8 AS "Quoted""Name""#)
            #expect(try rows[0].decode("userId", as: Int64.self) == 1)
            #expect(try rows[0].decode("userid", as: Int64.self) == 2)
            #expect(try rows[0].decode(#"Quoted"Name"#, as: Int64.self) == 3)
            #expect(rows.columnIndex("USERID") == nil)
            #expect(rows.columnNames == ["userId", "userid", #"Quoted"Name"#])
        }
    }

    @Test("decoding a column as the wrong type fails with decodingFailed, not a crash")
    func decodingFailure() async throws {
        try await TestDatabase.withConnection { connection in
            let rows = try await connection.query("SELECT 'abc'::text AS word, NULL::int8 AS nothing")
            let wrongType = #expect(throws: PostgresError.self) { try rows[0].decode(0, as: Int64.self) }
            #expect(wrongType?.code == .decodingFailed)
            let null = #expect(throws: PostgresError.self) { try rows[0].decode("nothing", as: Int64.self) }
            #expect(null?.code == .decodingFailed)
            let missing = #expect(throws: PostgresError.self) { try rows[0].decode("no_such_column", as: Int64.self) }
            #expect(missing?.code == .decodingFailed)
            #expect(try rows[0].decode("nothing", as: Int64?.self) == nil)
        }
    }
}
