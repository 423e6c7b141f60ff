import STBPostgres
import Testing
import FoundationEssentials

@Suite("Postgres connection and pool", .sharedDatabase)
struct ConnectionTests {
    @Test("round trip of every supported type, NULLs included")
    func typesRoundTrip() async throws {
        let pool = TestDatabase.pool()
        defer { Task { await pool.close() } }
        let now = Date(timeIntervalSince1970: 1_763_000_000.123456)
        let rows = try await pool.query("""
            SELECT \(true)::bool, \(Int32(-7))::int4, \(Int64.max)::int8, \(2.5)::float8, \("héllo")::text,
                   \([UInt8]([0, 1, 255]))::bytea, \(now)::timestamptz, \(PostgresJSON("{\"a\": [1, 2]}"))::jsonb,
                   \(["x", "", "ü"])::text[], \(String?.none)::text, \("")::text, \([String]())::text[]
            """)
        #expect(rows.count == 1)
        let row = rows[0]
        let (flag, small, big, real, text) = try row.decode(Bool.self, Int32.self, Int64.self, Double.self, String.self)
        #expect(flag == true && small == -7 && big == Int64.max && real == 2.5 && text == "héllo")
        #expect(try row.decode(5, as: [UInt8].self) == [0, 1, 255])
        let date = try row.decode(6, as: Date.self)
        #expect(abs(date.timeIntervalSince1970 - now.timeIntervalSince1970) < 0.000_001)
        #expect(try row.decode(7, as: String.self) == "{\"a\": [1, 2]}")
        #expect(try row.decode(8, as: [String].self) == ["x", "", "ü"])
        #expect(try row.decode(9, as: String?.self) == nil)
        #expect(try row.decode(10, as: String.self) == "")
        #expect(try row.decode(11, as: [String].self) == [])
        #expect(throws: PostgresError.self) { try row.decode(9, as: String.self) }
    }

    @Test("statements sent on one connection by many tasks at once wait their turn, each answered with its own rows")
    func statementsQueueOnOneConnection() async throws {
        try await TestDatabase.withConnection { connection in
            let answers = try await withThrowingTaskGroup(of: (Int32, Int32).self) { group in
                // A slow statement first, so the others arrive while the connection is busy.
                group.addTask {
                    let rows = try await connection.query("SELECT \(Int32(-1))::int4 FROM pg_sleep(0.2)")
                    return (-1, try rows[0].decode(0, as: Int32.self))
                }
                try await Task.sleep(for: .milliseconds(50))
                for value in Int32(0)..<40 {
                    group.addTask {
                        let rows = try await connection.query("SELECT \(value)::int4 + 0")
                        return (value, try rows[0].decode(0, as: Int32.self))
                    }
                }
                var answers: [(Int32, Int32)] = []
                for try await answer in group { answers.append(answer) }
                return answers
            }
            #expect(answers.count == 41)
            #expect(answers.allSatisfy { $0.0 == $0.1 })
            // Still usable afterwards, on the idle path.
            #expect(try await connection.query("SELECT \(Int32(7))::int4")[0].decode(0, as: Int32.self) == 7)
        }
    }
}
