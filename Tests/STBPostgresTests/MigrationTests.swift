import Glibc
import STBPostgres
import Testing

/// Each test migrates its own schema (through `search_path`), so tests do not share
/// `schema_migrations`.
@Suite("Migrations", .sharedDatabase)
struct MigrationTests {
    @Test("applies pending migrations in order, once, recording checksums")
    func appliesInOrder() async throws {
        let schema = try await TestSchema.create()
        let folder = try MigrationFolder([
            "0002_add_rows.sql": "INSERT INTO widgets (name) VALUES ('a'), ('b');",
            "0001_create.sql": "CREATE TABLE widgets (id serial PRIMARY KEY, name text NOT NULL);\nCREATE INDEX ON widgets (name);",
        ])
        let pool = schema.pool()
        let first = try await Migrator(directory: folder.path).migrate(pool)
        #expect(first == ["0001_create.sql", "0002_add_rows.sql"])
        let again = try await Migrator(directory: folder.path).migrate(pool)
        #expect(again.isEmpty)
        let rows = try await pool.query("SELECT version, file_name, length(checksum) FROM schema_migrations ORDER BY version")
        #expect(try rows.map { try $0.decode(Int.self, String.self, Int.self) }.map { "\($0.0) \($0.1) \($0.2)" }
            == ["1 0001_create.sql 64", "2 0002_add_rows.sql 64"])
        #expect(try await pool.query("SELECT count(*) FROM widgets")[0].decode(0, as: Int.self) == 2)

        try folder.write("0003_more.sql", "ALTER TABLE widgets ADD COLUMN size int NOT NULL DEFAULT 0;")
        #expect(try await Migrator(directory: folder.path).migrate(pool) == ["0003_more.sql"])
        await pool.close()
    }

    @Test("two migrators starting at once apply each migration once")
    func concurrentMigrators() async throws {
        let schema = try await TestSchema.create()
        let folder = try MigrationFolder([
            "0001_create.sql": "CREATE TABLE runs (id serial PRIMARY KEY);",
            // Slow enough that the second migrator surely arrives while the first holds the lock.
            "0002_slow.sql": "SELECT pg_sleep(0.3); INSERT INTO runs DEFAULT VALUES;",
        ])
        let pools = [schema.pool(), schema.pool()]
        async let first = Migrator(directory: folder.path).migrate(pools[0])
        async let second = Migrator(directory: folder.path).migrate(pools[1])
        let results = try await [first, second]
        #expect(results.filter { !$0.isEmpty } == [["0001_create.sql", "0002_slow.sql"]])
        #expect(results.filter(\.isEmpty).count == 1)
        #expect(try await pools[0].query("SELECT count(*) FROM runs")[0].decode(0, as: Int.self) == 1)
        for pool in pools { await pool.close() }
    }

    @Test("an applied migration that was edited stops start-up with a clear error")
    func editedMigration() async throws {
        let schema = try await TestSchema.create()
        let folder = try MigrationFolder(["0001_create.sql": "CREATE TABLE t (id int);"])
        let pool = schema.pool()
        try await Migrator(directory: folder.path).migrate(pool)
        try folder.write("0001_create.sql", "CREATE TABLE t (id bigint);")
        let error = await #expect(throws: MigrationError.self) { try await Migrator(directory: folder.path).migrate(pool) }
        #expect(error?.description.contains("0001_create.sql was edited after it was applied") == true)
        await pool.close()
    }

    @Test("a failing migration is rolled back whole and not recorded; earlier ones stay")
    func failingMigration() async throws {
        let schema = try await TestSchema.create()
        let folder = try MigrationFolder([
            "0001_create.sql": "CREATE TABLE t (id int PRIMARY KEY);",
            "0002_broken.sql": "INSERT INTO t VALUES (1); INSERT INTO t VALUES (1);",
        ])
        let pool = schema.pool()
        let error = await #expect(throws: MigrationError.self) { try await Migrator(directory: folder.path).migrate(pool) }
        #expect(error?.description.contains("0002_broken.sql failed") == true)
        #expect(try await pool.query("SELECT count(*) FROM t")[0].decode(0, as: Int.self) == 0)
        let versions = try await pool.query("SELECT version FROM schema_migrations").map { try $0.decode(0, as: Int.self) }
        #expect(versions == [1])
        await pool.close()
    }

    @Test("misnamed, duplicate and unknown-applied migrations are refused", arguments: [
        (["create.sql": "SELECT 1;"], "is not named NNNN_description.sql"),
        (["0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 1;"], "share version 1"),
        (["0001_Upper.sql": "SELECT 1;"], "is not named NNNN_description.sql"),
    ])
    func badFolders(files: [String: String], expected: String) throws {
        let folder = try MigrationFolder(files)
        let error = #expect(throws: MigrationError.self) { try Migrator(directory: folder.path) }
        #expect(error?.description.contains(expected) == true, "\(String(describing: error))")
    }

    @Test("a database with a migration this build lacks is refused")
    func unknownAppliedMigration() async throws {
        let schema = try await TestSchema.create()
        let pool = schema.pool()
        let newer = try MigrationFolder(["0001_a.sql": "SELECT 1;", "0002_b.sql": "SELECT 2;"])
        try await Migrator(directory: newer.path).migrate(pool)
        let older = try MigrationFolder(["0001_a.sql": "SELECT 1;"])
        let error = await #expect(throws: MigrationError.self) { try await Migrator(directory: older.path).migrate(pool) }
        #expect(error?.description.contains("0002_b.sql applied, which this build does not have") == true)
        await pool.close()
    }
}

/// A schema of its own in the test database, reached through `search_path`.
struct TestSchema {
    let name: String

    static func create() async throws -> TestSchema {
        let name = TestDatabase.uniqueName("schema")
        let pool = TestDatabase.pool(size: 1)
        _ = try await pool.query(PostgresQuery(sql: "CREATE SCHEMA \(name)"))
        await pool.close()
        return TestSchema(name: name)
    }

    func pool(size: Int = 2) -> PostgresPool {
        let conninfo = TestDatabase.conninfo
        let option = conninfo.contains("://")
            ? (conninfo.contains("?") ? "&" : "?") + "options=-csearch_path%3D\(name)"
            : " options='-csearch_path=\(name)'"
        return PostgresPool(configuration: PostgresConfiguration(conninfo: conninfo + option, poolSize: size), group: TestDatabase.group)
    }
}

/// A temporary folder of migration files.
final class MigrationFolder: Sendable {
    let path: String

    init(_ files: [String: String]) throws {
        var template = Array("/tmp/stb-migrations-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else { throw TestFailure("mkdtemp failed") }
        path = String(cString: created)
        for (name, text) in files { try write(name, text) }
    }

    func write(_ name: String, _ text: String) throws {
        guard let file = fopen("\(path)/\(name)", "wb") else { throw TestFailure("cannot write \(name)") }
        defer { fclose(file) }
        let bytes = Array(text.utf8)
        _ = fwrite(bytes, 1, bytes.count, file)
    }

    deinit {
        if let handle = opendir(path) {
            while let entry = readdir(handle) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { unlink("\(path)/\(name)") }
            }
            closedir(handle)
        }
        rmdir(path)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
