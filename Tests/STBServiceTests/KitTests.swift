import Glibc
import STBEventLoop
import STBJSON
import STBMessages
import STBPostgres
import STBRPC
import STBService
import Synchronization
import Testing

/// A stored entity of the tests' own: widgets in boxes.
private struct Widget: StoredEntity, Equatable {
    static let entityName = "widget"
    static let table = "kit_widgets"
    static let alias = "w"
    static let joins = "JOIN kit_boxes b ON b.id = w.box_id"
    static let columns = "w.id, w.key, b.key"

    let id: Int64
    let key: String
    let box: String

    init(row: PostgresRow) throws(PostgresError) {
        (id, key, box) = try row.decode(Int64.self, String.self, String.self)
    }

    var entityKey: String { key }
    var auditJSON: JSONValue { ["key": .string(key), "box": .string(box)] }
}

@Suite("Service kit")
struct KitTests {
    static let conninfo = PostgresConfiguration.currentEnvironment()["STB_TEST_DATABASE_URL"] ?? "postgresql://stb_test@127.0.0.1:54329/stb_test"

    @Test("a page: default and capped sizes; tokens only as issued")
    func page() throws {
        #expect(try Page(nil) == Page(size: 100, after: 0))
        var request = Stb_Common_V1_PageRequest()
        request.pageSize = UInt32.max
        #expect(try Page(request).size == 1000)
        request.pageSize = 7
        request.pageToken = "42"
        #expect(try Page(request) == Page(size: 7, after: 42))
        for token in ["-1", "042", "+42", "42 ", "x", "9223372036854775808", String(repeating: "9", count: 10_000)] {
            request.pageToken = token
            #expect(throws: RPCError.self, "\(token.prefix(20))") { try Page(request) }
        }
    }

    @Test("fetch, all, list with filters and totals, delete")
    func storedEntity() async throws {
        let group = try EventLoopGroup(count: 1, name: "kit-test")
        let schema = "kit_\(getpid())_\(Int.random(in: 0..<1_000_000))"
        let conninfo = Self.conninfo + (Self.conninfo.contains("?") ? "&" : "?") + "options=-csearch_path%3D\(schema)"
        let admin = PostgresPool(configuration: PostgresConfiguration(conninfo: Self.conninfo, poolSize: 1), group: group)
        _ = try await admin.query("CREATE SCHEMA \(unescaped: schema)")
        let pool = PostgresPool(configuration: PostgresConfiguration(conninfo: conninfo, poolSize: 2), group: group)
        _ = try await pool.withConnection { connection in
            try await connection.execute(script: """
                CREATE TABLE kit_boxes (id bigserial PRIMARY KEY, key text NOT NULL UNIQUE);
                CREATE TABLE kit_widgets (id bigserial PRIMARY KEY, box_id bigint NOT NULL REFERENCES kit_boxes, key text NOT NULL UNIQUE);
                INSERT INTO kit_boxes (key) VALUES ('a'), ('b');
                INSERT INTO kit_widgets (box_id, key) SELECT 1 + n % 2, 'w' || n FROM generate_series(1, 25) n;
                """)
        }
        let found = try await pool.withConnection { try await Widget.fetch(where: "w.key", equals: "w3", on: $0) }
        #expect(found?.key == "w3" && found?.box == "b")
        #expect(try await pool.withConnection { try await Widget.fetch(where: "w.key", equals: "'; DROP TABLE kit_widgets; --", on: $0) } == nil)
        #expect(try await pool.withConnection { try await Widget.all(where: "b.key", equals: "a", on: $0) }.map(\.key).count == 12)
        let byKeys = try await pool.withConnection { try await Widget.find(where: ["b.key", "w.key"], equal: ["b", "w3"], described: "b/w3", on: $0) }
        #expect(byKeys == found)
        await #expect(throws: RPCError.self) {
            _ = try await pool.withConnection { try await Widget.find(where: ["b.key", "w.key"], equal: ["a", "w3"], described: "a/w3", on: $0) }
        }
        #expect(try await pool.withConnection { try await Widget.find(id: found!.id, on: $0) } == found)

        // Page through box a: 12 widgets, 5 a page.
        var seen: [String] = []
        var page = Page(size: 5, after: 0)
        while true {
            let (widgets, info) = try await Widget.list(page, filters: [ListFilter("b.key", "a")], pool: pool)
            #expect(info.total == 12)
            seen += widgets.map(\.key)
            guard !info.nextPageToken.isEmpty else { break }
            var request = Stb_Common_V1_PageRequest()
            request.pageSize = 5
            request.pageToken = info.nextPageToken
            page = try Page(request)
        }
        #expect(seen.count == 12 && Set(seen).count == 12)
        #expect(try await Widget.list(Page(size: 100, after: 0), filters: [ListFilter("b.key", "")], pool: pool).info.total == 25)

        try await pool.withTransaction { transaction in
            try await found!.delete(in: transaction)
        }
        #expect(try await pool.withConnection { try await Widget.fetch(where: "w.key", equals: "w3", on: $0) } == nil)

        await pool.close()
        _ = try await admin.query("DROP SCHEMA \(unescaped: schema) CASCADE")
        await admin.close()
        group.shutdown()
    }
}
