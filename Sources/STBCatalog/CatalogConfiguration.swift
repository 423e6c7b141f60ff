import STBRPC
import STBService

/// `catalogd`'s configuration, read once from the environment: the service's common part
/// (`CATALOG_*`, see `ServiceConfiguration`; port 50051).
public struct CatalogConfiguration: Sendable {
    public var service: ServiceConfiguration

    public init(environment: [String: String]) throws(ConfigurationError) {
        service = try ServiceConfiguration(name: "catalog", defaultPort: 50051, environment: environment)
    }
}
