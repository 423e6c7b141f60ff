import Glibc
import Logging
import STBAPI
import STBAuth
import STBMessages
import STBPostgres
import STBRPC
import STBService

/// The gateway's `stb.gateway.v1.Auth`: accounts, sign-in, token rotation and the keys
/// every service verifies access tokens with. Sessions (Login, Refresh, Logout,
/// ServiceLogin, ChangePassword) are in `GatewayService+Sessions.swift`, administration in
/// `GatewayService+Users.swift`.
///
/// Access tokens are EdDSA JWTs (`STBAuth.AccessToken`) living `accessLifetime`; refresh
/// tokens are 32 random bytes (base64url), stored as their SHA-256, each working once.
public struct GatewayService: Stb_Gateway_V1_AuthService {
    let pool: PostgresPool
    /// The signing keys.
    public let keys: KeyRing
    let hasher: PasswordHasher
    /// Failed sign-ins per username and peer.
    public let throttle: LoginThrottle
    let configuration: GatewayConfiguration
    let logger: Logger

    /// The one message for every failed sign-in: an unknown user, a wrong password and a
    /// disabled account read the same.
    static let signInFailed = "invalid username or password"

    public init(pool: PostgresPool, keys: KeyRing, configuration: GatewayConfiguration, logger: Logger) {
        self.pool = pool
        self.keys = keys
        self.hasher = PasswordHasher(concurrency: configuration.hashConcurrency)
        self.throttle = LoginThrottle(policy: configuration.throttle)
        self.configuration = configuration
        self.logger = logger
    }

    /// Work done once before serving: the hash unknown-user logins verify against, so
    /// that the first such login takes no longer than a wrong password.
    public func prepare() async throws {
        try await hasher.dummyHash()
    }

    public func getKeys(_ request: Stb_Gateway_V1_GetKeysRequest, context: ServerContext) async throws -> Stb_Gateway_V1_GetKeysResponse {
        keys.published.response
    }

    public func whoAmI(_ request: Stb_Gateway_V1_WhoAmIRequest, context: ServerContext) async throws -> Stb_Gateway_V1_User {
        let caller = try authenticated(context)
        if let service = caller.subject.serviceAccountName {
            var user = Stb_Gateway_V1_User()
            user.id = caller.subject
            user.username = service
            user.role = .service
            user.enabled = configuration.serviceAccounts[service] != nil
            return user
        }
        guard let account = try await pool.withConnection({ try await Account.find(caller.subject, on: $0) }), account.id == caller.subject else {
            throw RPCError(code: .unauthenticated, message: "the account no longer exists")
        }
        return account.message
    }

    // MARK: - Shared

    /// The caller's verified identity, or UNAUTHENTICATED.
    func authenticated(_ context: ServerContext) throws(RPCError) -> CallerIdentity {
        guard let identity = context.identity, !identity.role.isEmpty else {
            throw RPCError(code: .unauthenticated, message: "an access token is required")
        }
        return identity
    }

    /// The caller's account when it is an enabled admin now (the token's role may be
    /// older than a change); PERMISSION_DENIED otherwise.
    func administrator(_ context: ServerContext, on connection: PostgresConnection) async throws -> Account {
        let caller = try authenticated(context)
        guard caller.role == Role.admin.claim, let account = try await Account.find(caller.subject, on: connection),
            account.id == caller.subject, account.enabled, account.role == .admin
        else {
            throw RPCError(code: .permissionDenied, message: "only an admin may manage users")
        }
        return account
    }

    /// Seconds since 1970.
    static func nowSeconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec)
    }

    /// A signed access token for `subject`, and when it expires (ms).
    func accessToken(subject: String, name: String, role: Role) -> (token: String, expiresAtMs: Int64) {
        let now = Self.nowSeconds()
        let expires = now + configuration.accessLifetime.components.seconds
        let claims = AccessClaims(
            issuer: TokenAudience.issuer, audience: TokenAudience.services, subject: subject, name: name, role: role,
            issuedAt: now, notBefore: now, expiresAt: expires, tokenID: Crypto.randomToken(bytes: 16))
        return (AccessToken.sign(claims, with: keys.signingKey), expires * 1000)
    }

    /// Problems with a new password (empty when it is acceptable).
    func passwordProblems(_ password: String, at field: String) -> [String] {
        let length = password.count
        if length < configuration.passwordMinimumLength {
            return ["\(field): must be at least \(configuration.passwordMinimumLength) characters"]
        }
        if password.utf8.count > 1024 { return ["\(field): must be at most 1024 bytes"] }
        if password.utf8.contains(0) { return ["\(field): must not contain NUL"] }
        return []
    }
}

extension String {
    /// The service account a `service:<name>` subject names.
    var serviceAccountName: String? {
        hasPrefix("service:") ? String(dropFirst("service:".count)) : nil
    }
}
