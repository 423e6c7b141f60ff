import Glibc
import STBAuth

/// The access tokens a benchmark's load generator presents to the server it measures:
/// both processes derive the same throwaway Ed25519 key from a fixed seed, so no key or
/// token passes between them. Never a deployment's key.
public enum BenchIdentity {
    /// The benchmark key (`kid` "bench").
    public static let signingKey: SigningKey = {
        guard let key = SigningKey(id: "bench", seed: Array("stb benchmark key, not a secret!".utf8)) else {
            fatalError("a 32-byte seed always derives a key")
        }
        return key
    }()

    /// The keys a benchmark server verifies with.
    public static var keys: KeySet { KeySet([signingKey.verificationKey]) }

    /// A token for `role`, valid for `seconds`.
    public static func token(role: Role, seconds: Int64 = 3600) -> String {
        let now = Int64(time(nil))
        return AccessToken.sign(
            AccessClaims(
                issuer: TokenAudience.issuer, audience: TokenAudience.services, subject: "bench-\(role.claim)",
                name: "bench-\(role.claim)", role: role, issuedAt: now, notBefore: now, expiresAt: now + seconds,
                tokenID: "bench-\(now)"),
            with: signingKey)
    }
}
