import STBPostgres
import Testing

@Suite("Query interpolation")
struct QueryTests {
    @Test("values are bound in order; unescaped fragments are spliced as SQL")
    func interpolation() {
        let columns = "id, key, name"
        let key = "hdr'; DROP TABLE options; --"
        let limit: Int64 = 10
        let query: PostgresQuery = "SELECT \(unescaped: columns) FROM options WHERE key = \(key) AND id > \(Int64(5)) LIMIT \(limit)"
        #expect(query.sql == "SELECT id, key, name FROM options WHERE key = $1 AND id > $2 LIMIT $3")
        #expect(query.bindings.count == 3)
    }

    @Test("an interpolated value never becomes SQL, whatever it holds")
    func valuesAreNeverSQL() async throws {
        try await TestDatabase.shared {
            let pool = TestDatabase.pool(size: 1)
            let hostile = ["'; SELECT 1; --", "$1", "\\", "\"", "O'Reilly", "); DROP TABLE x; ("]
            for text in hostile {
                let rows = try await pool.query("SELECT \(unescaped: "length(")\(text)\(unescaped: ")::int8"), \(text)::text")
                #expect(try rows[0].decode(0, as: Int64.self) == Int64(text.utf8.count))
                #expect(try rows[0].decode(1, as: String.self) == text)
            }
            await pool.close()
        }
    }
}
