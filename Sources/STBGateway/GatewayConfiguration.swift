import STBMessages
import STBOptionValues
import STBRPC
import STBService

/// `gatewayd`'s configuration, read once from the environment: the service's common part
/// (`GATEWAY_*`, see `ServiceConfiguration`; port 50050) and the identity settings.
public struct GatewayConfiguration: Sendable {
    public var service: ServiceConfiguration
    /// `GATEWAY_SERVICE_ACCOUNTS`: `name:secret` pairs, comma-separated.
    public var serviceAccounts: [String: String]
    /// `GATEWAY_KEY_ENCRYPTION_KEY`: 32 bytes (base64 or 64 hex digits) that seal the
    /// signing keys at rest; unset, they are stored unsealed.
    public var keyEncryptionKey: [UInt8]?
    /// `GATEWAY_KEY_ROTATION_DAYS`: a signing key older than this is replaced; 0 never.
    public var keyRotationDays: Int
    /// `GATEWAY_REFRESH_TTL_DAYS`: how long a refresh token lives (30).
    public var refreshLifetime: Duration
    /// `GATEWAY_REFRESH_OVERLAP_SECONDS`: how long a used refresh token still works (10).
    public var refreshOverlap: Duration
    /// `GATEWAY_ACCESS_TTL_SECONDS`: how long access tokens live (600; tests shorten it).
    public var accessLifetime: Duration = .seconds(600)
    /// `GATEWAY_PASSWORD_MIN_LENGTH` (12).
    public var passwordMinimumLength: Int
    /// `GATEWAY_ARGON2_CONCURRENCY`: hashes at once (2).
    public var hashConcurrency: Int
    /// `GATEWAY_LOGIN_LOCK_AFTER` (10), `GATEWAY_LOGIN_PEER_LOCK_AFTER` (50),
    /// `GATEWAY_LOGIN_LOCK_SECONDS` (900): failed logins before a username or a peer
    /// address is locked out, and for how long.
    public var throttle: LoginThrottle.Policy
    /// `GATEWAY_PROJECT_ADDR` (host:port): the project service whose change feed raises
    /// alarms and whose memberships decide who sees them; unset, no alarms are raised and
    /// only admins see alarms.
    public var projectAddress: (host: String, port: Int)?
    /// `GATEWAY_ALARM_RETENTION_DAYS` (30): cleared alarms older than this are deleted.
    public var alarmRetentionDays: Int
    /// `GATEWAY_TRUSTED_PROXIES`: peer addresses (the edge's) whose `x-forwarded-for` names
    /// the real client, separated by commas; empty (the default): the header is ignored.
    /// The sign-in throttle and the activity log then key on the client, not on the edge
    /// that every browser shares.
    public var trustedProxies: Set<String> = []

    public init(environment: [String: String]) throws(ConfigurationError) {
        service = try ServiceConfiguration(name: "gateway", defaultPort: 50050, environment: environment)
        serviceAccounts = try Self.accounts(environment["GATEWAY_SERVICE_ACCOUNTS"] ?? "")
        if let text = environment["GATEWAY_KEY_ENCRYPTION_KEY"], !text.isEmpty {
            guard let key = Self.keyBytes(text) else {
                throw ConfigurationError(variable: "GATEWAY_KEY_ENCRYPTION_KEY", value: "(hidden)", expected: "32 bytes, base64 or 64 hex digits")
            }
            keyEncryptionKey = key
        }
        keyRotationDays = try Self.integer("GATEWAY_KEY_ROTATION_DAYS", environment, default: 0, in: 0...3650)
        refreshLifetime = .seconds(86_400 * (try Self.integer("GATEWAY_REFRESH_TTL_DAYS", environment, default: 30, in: 1...365)))
        accessLifetime = .seconds(try Self.integer("GATEWAY_ACCESS_TTL_SECONDS", environment, default: 600, in: 1...86_400))
        refreshOverlap = .seconds(try Self.integer("GATEWAY_REFRESH_OVERLAP_SECONDS", environment, default: 10, in: 0...300))
        passwordMinimumLength = try Self.integer("GATEWAY_PASSWORD_MIN_LENGTH", environment, default: 12, in: 8...1024)
        hashConcurrency = try Self.integer("GATEWAY_ARGON2_CONCURRENCY", environment, default: 2, in: 1...64)
        throttle = LoginThrottle.Policy(
            lockAfter: try Self.integer("GATEWAY_LOGIN_LOCK_AFTER", environment, default: 10, in: 1...10_000),
            peerLockAfter: try Self.integer("GATEWAY_LOGIN_PEER_LOCK_AFTER", environment, default: 50, in: 1...1_000_000),
            lockDuration: .seconds(try Self.integer("GATEWAY_LOGIN_LOCK_SECONDS", environment, default: 900, in: 1...86_400)))
        if let text = environment["GATEWAY_PROJECT_ADDR"], !text.isEmpty {
            projectAddress = try ServiceConfiguration.address("GATEWAY_PROJECT_ADDR", in: environment, default: text)
        }
        alarmRetentionDays = try Self.integer("GATEWAY_ALARM_RETENTION_DAYS", environment, default: 30, in: 1...3650)
        for entry in (environment["GATEWAY_TRUSTED_PROXIES"] ?? "").split(separator: ",") {
            let address = entry.trimmingSpaces
            guard let parsed = CallOrigin.address(address) else {
                throw ConfigurationError(variable: "GATEWAY_TRUSTED_PROXIES", value: String(address), expected: "IP addresses separated by commas")
            }
            trustedProxies.insert(parsed)
        }
    }

    static func integer(_ variable: String, _ environment: [String: String], default value: Int, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let text = environment[variable] else { return value }
        return try ServiceConfiguration.integer(variable, text, in: range)
    }

    /// `name:secret,name:secret`; the message never repeats a secret.
    static func accounts(_ text: String) throws(ConfigurationError) -> [String: String] {
        var accounts: [String: String] = [:]
        for pair in text.split(separator: ",") {
            var trimmed = pair.drop { $0 == " " }
            while trimmed.last == " " { trimmed = trimmed.dropLast() }
            guard let colon = trimmed.firstIndex(of: ":") else {
                throw ConfigurationError(variable: "GATEWAY_SERVICE_ACCOUNTS", value: "(hidden)", expected: "name:secret pairs separated by commas")
            }
            let name = String(trimmed[..<colon])
            let secret = String(trimmed[trimmed.index(after: colon)...])
            guard isValidKey(name), secret.utf8.count >= 16 else {
                throw ConfigurationError(
                    variable: "GATEWAY_SERVICE_ACCOUNTS", value: "(hidden)",
                    expected: "name:secret pairs, each name a lowercase key and each secret at least 16 characters")
            }
            accounts[name] = secret
        }
        return accounts
    }

    /// 32 bytes from base64 or hex text.
    static func keyBytes(_ text: String) -> [UInt8]? {
        if text.utf8.count == 64, let bytes = Hex.bytes(text) { return bytes }
        if let bytes = Base64.decode(text), bytes.count == Crypto.secretBoxKeyBytes { return bytes }
        return nil
    }

}
