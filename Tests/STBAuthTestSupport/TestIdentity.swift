import Glibc
import STBAuth

/// Access tokens for tests: a throwaway signing key, the key set a service under test
/// verifies with, and tokens for any role.
public enum TestIdentity {
    /// The key tests sign with (`kid` "test").
    public static let signingKey = SigningKey.generate(id: "test")

    /// A key the services do not know: tokens signed with it must be refused.
    public static let strangerKey = SigningKey.generate(id: "stranger")

    /// The keys a service under test verifies with.
    public static var keys: KeySet { KeySet([signingKey.verificationKey]) }

    /// A token for `name` (subject `user:<name>`, or `service:<name>` for `.service`)
    /// holding `role`, expiring `lifetime` seconds from now (negative: already expired).
    public static func token(
        _ role: Role = .engineer, name: String = "tester", lifetime: Int64 = 600, audience: String = TokenAudience.services,
        key: SigningKey = signingKey
    ) -> String {
        let now = Int64(time(nil))
        let subject = role == .service ? "service:\(name)" : "user:\(name)"
        return AccessToken.sign(
            AccessClaims(
                issuer: TokenAudience.issuer, audience: audience, subject: subject, name: name, role: role,
                issuedAt: min(now, now + lifetime) - 5, notBefore: min(now, now + lifetime) - 5, expiresAt: now + lifetime,
                tokenID: "\(name)-\(role.claim)-\(now)-\(lifetime)"),
            with: key)
    }
}
