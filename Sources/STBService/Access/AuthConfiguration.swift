import Logging
import STBAuth
import STBRPC

/// How a service verifies callers and presents itself, read from the environment with
/// the rest of its configuration:
///
/// - `STB_AUTH_KEYS_FILE`: a JWKS file with the verification keys; when set, nothing is
///   fetched (offline use, tests);
/// - `STB_GATEWAY_ADDR` (`127.0.0.1:50050`): otherwise the keys come from the gateway's
///   `Auth.GetKeys`, at start and on an unknown `kid`; service accounts sign in there;
/// - `<PREFIX>_SERVICE_TOKEN`: a ready access token for this service's outgoing calls;
/// - `<PREFIX>_SERVICE_SECRET`: otherwise this service account's secret, exchanged with
///   `Auth.ServiceLogin` for a token renewed before it expires (the account's name is the
///   service's).
///
/// There is no switch to turn authentication off.
public struct AuthConfiguration: Sendable {
    public static let defaultGatewayAddress = "127.0.0.1:50050"

    /// The service account's name: the service's.
    public var serviceName: String
    public var keysFile: String?
    public var gateway: (host: String, port: Int)
    public var serviceToken: String?
    public var serviceSecret: String?

    public init(serviceName: String, environment: [String: String]) throws(ConfigurationError) {
        let prefix = serviceName.uppercased()
        self.serviceName = serviceName
        keysFile = environment["STB_AUTH_KEYS_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        gateway = try ServiceConfiguration.address("STB_GATEWAY_ADDR", in: environment, default: Self.defaultGatewayAddress)
        serviceToken = environment["\(prefix)_SERVICE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        serviceSecret = environment["\(prefix)_SERVICE_SECRET"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The key source this configuration names: the JWKS file, or the gateway's keys
    /// (fetched now, waiting up to `attempts` seconds for a gateway that is starting).
    public func keySource(attempts: Int = 30, logger: Logger) async throws -> any VerificationKeySource {
        if let keysFile {
            let text: String
            do {
                text = try readTextFile(keysFile)
            } catch {
                throw AuthConfigurationError("cannot read STB_AUTH_KEYS_FILE \(keysFile): \(error)")
            }
            let keys: KeySet
            do {
                keys = try KeySet(jwksJSON: text)
            } catch {
                throw AuthConfigurationError("STB_AUTH_KEYS_FILE \(keysFile): \(error)")
            }
            guard !keys.isEmpty else { throw AuthConfigurationError("STB_AUTH_KEYS_FILE \(keysFile) holds no Ed25519 keys") }
            return CurrentKeys(keys)
        }
        return try await GatewayKeySource.fetch(host: gateway.host, port: gateway.port, attempts: attempts, logger: logger)
    }

    /// The credentials this service's outgoing calls present: the ready token, or a
    /// service-account sign-in at the gateway. Throws when neither variable is set.
    public func serviceCredentials(logger: Logger) throws -> any CallCredentials {
        if let serviceToken { return BearerCredentials(token: serviceToken) }
        if let serviceSecret {
            return try ServiceAccountCredentials(
                service: serviceName, secret: serviceSecret, gatewayHost: gateway.host, gatewayPort: gateway.port, logger: logger)
        }
        let prefix = serviceName.uppercased()
        throw AuthConfigurationError("\(prefix)_SERVICE_SECRET (or \(prefix)_SERVICE_TOKEN) must be set: the \(serviceName) service calls other services as itself")
    }
}
