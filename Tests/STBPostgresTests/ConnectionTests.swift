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
}
