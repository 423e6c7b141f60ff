/// The claims of an access token (a JWT signed by the gateway).
public struct AccessClaims: Sendable, Hashable {
    /// `iss`: who issued the token.
    public var issuer: String
    /// `aud`: who the token is for.
    public var audience: String
    /// `sub`: the user's id (or `service:<name>` for a service account).
    public var subject: String
    /// `name`: the username, for audit rows and logs.
    public var name: String
    /// `role`.
    public var role: Role
    /// `iat`, `nbf`, `exp`: seconds since 1970.
    public var issuedAt: Int64
    public var notBefore: Int64
    public var expiresAt: Int64
    /// `jti`: unique per token.
    public var tokenID: String

    public init(
        issuer: String, audience: String, subject: String, name: String, role: Role,
        issuedAt: Int64, notBefore: Int64, expiresAt: Int64, tokenID: String
    ) {
        self.issuer = issuer
        self.audience = audience
        self.subject = subject
        self.name = name
        self.role = role
        self.issuedAt = issuedAt
        self.notBefore = notBefore
        self.expiresAt = expiresAt
        self.tokenID = tokenID
    }
}

/// The issuer and audience every access token carries.
public enum TokenAudience {
    /// `iss` of tokens signed by the gateway.
    public static let issuer = "stb-gateway"
    /// `aud` of tokens for the platform's services.
    public static let services = "stb"
}
