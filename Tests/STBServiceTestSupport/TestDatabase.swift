import Glibc
import STBEventLoop
import STBPostgres
import STBRPC
import Synchronization
import Testing

/// The test database the service suites share: each harness gets a fresh schema of its
/// own in it, so suites never see each other's rows.
public enum TestDatabase {
    public static let environment = PostgresConfiguration.currentEnvironment()
    /// `STB_TEST_DATABASE_URL`, else the local cluster's test database.
    public static let baseConninfo = environment["STB_TEST_DATABASE_URL"] ?? "postgresql://stb_test@127.0.0.1:54329/stb_test"
    private static let counter = Atomic<Int>(0)

    /// The checkout's root, from this file's path.
    public static var root: String {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path
    }

    /// A new schema named after `prefix`, and the connection string whose search path is it.
    public static func schema(_ prefix: String, group: EventLoopGroup) async throws -> String {
        let schema = "\(prefix)_\(counter.wrappingAdd(1, ordering: .relaxed).newValue)_\(getpid())"
        let admin = PostgresPool(configuration: PostgresConfiguration(conninfo: baseConninfo, poolSize: 1), group: group)
        _ = try await admin.query(PostgresQuery(sql: "CREATE SCHEMA \(schema)"))
        await admin.close()
        return baseConninfo + (baseConninfo.contains("?") ? "&" : "?") + "options=-csearch_path%3D\(schema)"
    }

    /// A pool on a new schema migrated with `service`'s real migrations, and its connection string.
    public static func migratedPool(_ service: String, prefix: String, group: EventLoopGroup, poolSize: Int = 4) async throws -> (PostgresPool, String) {
        let conninfo = try await schema(prefix, group: group)
        let pool = PostgresPool(configuration: PostgresConfiguration(conninfo: conninfo, poolSize: poolSize), group: group)
        try await Migrator(directory: "\(root)/services/\(service)/migrations").migrate(pool)
        return (pool, conninfo)
    }
}

/// Runs `body`, expecting it to fail with `code`; returns the error.
@discardableResult
public func expectStatus(
    _ code: RPCError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void
) async -> RPCError? {
    do {
        try await body()
        Issue.record("expected \(code), but the call succeeded", sourceLocation: sourceLocation)
    } catch let error as RPCError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected RPCError \(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Polls `condition` every 10 ms until it holds; DEADLINE_EXCEEDED after `timeout`.
public func waitUntil(timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw RPCError(code: .deadlineExceeded, message: "condition not met within \(timeout)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}
