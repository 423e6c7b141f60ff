import Glibc
import STBEventLoop
import STBPostgres
import Synchronization

/// The test database: `STB_TEST_DATABASE_URL` (set by `scripts/test` from `scripts/db env`),
/// else the local development cluster's `stb_test` database over TCP.
enum TestDatabase {
    static let environment = PostgresConfiguration.currentEnvironment()

    static var conninfo: String {
        environment["STB_TEST_DATABASE_URL"] ?? "postgresql://stb_test@127.0.0.1:54329/stb_test"
    }

    /// `scripts/db`, which can restart the local cluster; nil against an external server.
    static var control: String? { environment["STB_PG_CONTROL"] }

    /// Two loops shared by every test in the process.
    static let group: EventLoopGroup = try! EventLoopGroup(count: 2, name: "pg-test")

    static func pool(size: Int = 4) -> PostgresPool {
        PostgresPool(configuration: PostgresConfiguration(conninfo: conninfo, poolSize: size), group: group)
    }

    /// A table name unique to this test run, so suites running in parallel never collide.
    static func uniqueName(_ prefix: String) -> String {
        "\(prefix)_\(counter.wrappingAdd(1, ordering: .relaxed).newValue)_\(processID)"
    }

    private static let counter = Atomic<Int>(0)
    private static let processID = Int(getpid())
}
