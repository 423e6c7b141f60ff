import STBRPC
import STBService

/// `rulesd`'s configuration, read once from the environment: the service's common part
/// (`RULES_*`, see `ServiceConfiguration`; port 50052) and the catalog it follows
/// (`RULES_CATALOG_ADDR`, 127.0.0.1:50051).
public struct RulesConfiguration: Sendable {
    public var service: ServiceConfiguration
    public var catalogHost: String
    public var catalogPort: Int

    public init(environment: [String: String]) throws(ConfigurationError) {
        service = try ServiceConfiguration(name: "rules", defaultPort: 50052, environment: environment)
        (catalogHost, catalogPort) = try ServiceConfiguration.address("RULES_CATALOG_ADDR", in: environment, default: "127.0.0.1:50051")
    }
}
