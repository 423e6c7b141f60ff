import Glibc

/// One schema change: `NNNN_description.sql` in a service's migrations folder.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let fileName: String
    public let sql: String
}

/// Why migrations could not be applied. Start-up stops on any of these.
public struct MigrationError: Error, Sendable, CustomStringConvertible {
    public let description: String
}

/// Applies a service's migrations, in version order, each in its own transaction.
///
/// A session-level advisory lock serialises migrators of the same database, so two
/// processes starting at once apply each migration once. Applied migrations are recorded
/// with the SHA-256 of their text in `schema_migrations`; a recorded migration whose file
/// changed since, or that is missing from the folder, stops start-up with an error.
/// A migration file must not contain its own BEGIN/COMMIT.
public struct Migrator: Sendable {
    public let migrations: [Migration]

    /// The advisory lock key all migrators of a database agree on.
    static let lockKey: Int64 = 0x5354_425F_4D49_4752  // "STB_MIGR"

    public init(migrations: [Migration]) {
        self.migrations = migrations.sorted { $0.version < $1.version }
    }

    /// Loads `NNNN_description.sql` files from `directory`.
    public init(directory: String) throws(MigrationError) {
        self.init(migrations: try Self.load(directory: directory))
    }

    static func load(directory: String) throws(MigrationError) -> [Migration] {
        guard let handle = opendir(directory) else {
            throw MigrationError(description: "cannot read the migrations folder \(directory): \(String(cString: strerror(errno)))")
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(".sql") { names.append(name) }
        }
        var migrations: [Migration] = []
        var byVersion: [Int: String] = [:]
        for name in names.sorted() {
            guard let version = Self.version(of: name) else {
                throw MigrationError(description: "migration file \(name) is not named NNNN_description.sql (four digits, then lowercase letters, digits and underscores)")
            }
            if let other = byVersion[version] {
                throw MigrationError(description: "migrations \(other) and \(name) share version \(version)")
            }
            byVersion[version] = name
            migrations.append(Migration(version: version, fileName: name, sql: try readFile("\(directory)/\(name)")))
        }
        return migrations
    }

    /// The version of `NNNN_description.sql`, or nil when the name does not fit.
    static func version(of fileName: String) -> Int? {
        let utf8 = Array(fileName.utf8)
        guard utf8.count > 9, fileName.hasSuffix(".sql") else { return nil }
        let digits = utf8[0..<4]
        guard digits.allSatisfy({ $0 >= 48 && $0 <= 57 }), utf8[4] == UInt8(ascii: "_") else { return nil }
        let description = utf8[5..<(utf8.count - 4)]
        let allowed = description.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == UInt8(ascii: "_") }
        guard !description.isEmpty, allowed else { return nil }
        return Int(String(decoding: digits, as: UTF8.self))
    }

    private static func readFile(_ path: String) throws(MigrationError) -> String {
        guard let file = fopen(path, "rb") else {
            throw MigrationError(description: "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count > 0 { bytes.append(contentsOf: chunk[0..<count]) }
            if count < chunk.count { break }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw MigrationError(description: "\(path) is not valid UTF-8")
        }
        return text
    }

    /// Applies every pending migration; returns the file names applied (empty when the
    /// database was current).
    @discardableResult
    public func migrate(_ pool: PostgresPool) async throws -> [String] {
        try await pool.withConnection { connection in
            _ = try await connection.query("SELECT pg_advisory_lock(\(Self.lockKey))")
            do {
                let applied = try await apply(on: connection)
                _ = try await connection.run(.extended(["SELECT pg_advisory_unlock(\(Self.lockKey))"]), cancellable: false)
                return applied
            } catch {
                // Closing the session also releases the lock; unlock anyway when possible.
                _ = try? await connection.run(.extended(["SELECT pg_advisory_unlock(\(Self.lockKey))"]), cancellable: false)
                throw error
            }
        }
    }

    private func apply(on connection: PostgresConnection) async throws -> [String] {
        try await connection.execute(script: """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                file_name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        var recorded: [Int: (fileName: String, checksum: String)] = [:]
        for row in try await connection.query("SELECT version, file_name, checksum FROM schema_migrations") {
            let (version, fileName, checksum) = try row.decode(Int.self, String.self, String.self)
            recorded[version] = (fileName, checksum)
        }
        let checksums = try await checksums(on: connection)
        let known = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        for (version, record) in recorded.sorted(by: { $0.key < $1.key }) {
            guard let migration = known[version] else {
                throw MigrationError(description: "the database has migration \(record.fileName) applied, which this build does not have; deploy a build that includes it")
            }
            if checksums[version] != record.checksum {
                throw MigrationError(description: "migration \(migration.fileName) was edited after it was applied (recorded checksum \(record.checksum.prefix(12))…, file now \(checksums[version]?.prefix(12) ?? "?")…); put changes in a new migration instead")
            }
        }
        var applied: [String] = []
        for migration in migrations where recorded[migration.version] == nil {
            _ = try await connection.transaction { transaction in
                do {
                    try await transaction.connection.execute(script: migration.sql)
                } catch let error as PostgresError {
                    throw MigrationError(description: "migration \(migration.fileName) failed: \(error)")
                }
                _ = try await transaction.query("""
                    INSERT INTO schema_migrations (version, file_name, checksum)
                    VALUES (\(migration.version), \(migration.fileName), \(checksums[migration.version]!))
                    """)
                return true
            }
            applied.append(migration.fileName)
        }
        return applied
    }

    /// The SHA-256 of every migration's text, hex-encoded (computed by the server).
    private func checksums(on connection: PostgresConnection) async throws -> [Int: String] {
        guard !migrations.isEmpty else { return [:] }
        let queries: [PostgresQuery] = migrations.map { "SELECT encode(sha256(\(Array($0.sql.utf8))), 'hex')" }
        let results = try await connection.pipeline(queries)
        var checksums: [Int: String] = [:]
        for (migration, rows) in zip(migrations, results) {
            checksums[migration.version] = try rows[0].decode(0, as: String.self)
        }
        return checksums
    }
}
