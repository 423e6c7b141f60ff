import STBRPC
import STBService

/// `projectd`'s configuration, read once from the environment: the service's common part
/// (`PROJECT_*`, see `ServiceConfiguration`; port 50053), the catalog it follows
/// (`PROJECT_CATALOG_ADDR`, 127.0.0.1:50051) and the rules service that checks every
/// selection (`PROJECT_RULES_ADDR`, 127.0.0.1:50052).
public struct ProjectConfiguration: Sendable {
    public var service: ServiceConfiguration
    public var catalogHost: String
    public var catalogPort: Int
    public var rulesHost: String
    public var rulesPort: Int
    /// How many projects drift re-evaluates at once (`PROJECT_DRIFT_CONCURRENCY`, 8).
    public var driftConcurrency: Int

    public init(environment: [String: String]) throws(ConfigurationError) {
        service = try ServiceConfiguration(name: "project", defaultPort: 50053, environment: environment)
        (catalogHost, catalogPort) = try ServiceConfiguration.address("PROJECT_CATALOG_ADDR", in: environment, default: "127.0.0.1:50051")
        (rulesHost, rulesPort) = try ServiceConfiguration.address("PROJECT_RULES_ADDR", in: environment, default: "127.0.0.1:50052")
        driftConcurrency = try ServiceConfiguration.integer(
            "PROJECT_DRIFT_CONCURRENCY", environment["PROJECT_DRIFT_CONCURRENCY"] ?? "8", in: 1...64)
    }
}
