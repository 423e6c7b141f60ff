internal import CSodium

/// libsodium, initialised once before first use.
enum Sodium {
    /// `sodium_init` is idempotent and thread-safe; a lazy global runs it once.
    private static let ready: Bool = sodium_init() >= 0

    static func ensureReady() {
        precondition(ready, "libsodium could not initialise")
    }
}

/// An Ed25519 public key that verifies access tokens, named by its `kid`.
public struct VerificationKey: Sendable, Hashable {
    public static let byteCount = 32

    /// The key id tokens name in their header.
    public let id: String
    /// The 32-byte public key.
    public let publicKey: [UInt8]

    /// Nil unless `publicKey` is 32 bytes.
    public init?(id: String, publicKey: [UInt8]) {
        guard publicKey.count == Self.byteCount, !id.isEmpty else { return nil }
        self.id = id
        self.publicKey = publicKey
    }

    /// Whether `signature` is this key's Ed25519 signature of `message`.
    public func isValidSignature(_ signature: [UInt8], of message: [UInt8]) -> Bool {
        guard signature.count == Int(crypto_sign_BYTES) else { return false }
        Sodium.ensureReady()
        return crypto_sign_verify_detached(signature, message, UInt64(message.count), publicKey) == 0
    }
}

/// An Ed25519 key pair that signs access tokens. The secret half never leaves the
/// gateway; `description` does not show it.
public struct SigningKey: Sendable, CustomStringConvertible {
    /// The key id, written into each token's header.
    public let id: String
    /// libsodium's 64-byte secret key (seed and public key).
    public let secretKey: [UInt8]
    /// The public half.
    public let verificationKey: VerificationKey

    /// A new random key pair.
    public static func generate(id: String) -> SigningKey {
        Sodium.ensureReady()
        var publicKey = [UInt8](repeating: 0, count: Int(crypto_sign_PUBLICKEYBYTES))
        var secretKey = [UInt8](repeating: 0, count: Int(crypto_sign_SECRETKEYBYTES))
        crypto_sign_keypair(&publicKey, &secretKey)
        return SigningKey(id: id, secretKey: secretKey, publicKey: publicKey)!
    }

    /// The key pair derived from a 32-byte seed (deterministic: tests, benchmarks); nil
    /// when the seed is not 32 bytes.
    public init?(id: String, seed: [UInt8]) {
        guard seed.count == Int(crypto_sign_SEEDBYTES) else { return nil }
        Sodium.ensureReady()
        var publicKey = [UInt8](repeating: 0, count: Int(crypto_sign_PUBLICKEYBYTES))
        var secretKey = [UInt8](repeating: 0, count: Int(crypto_sign_SECRETKEYBYTES))
        guard crypto_sign_seed_keypair(&publicKey, &secretKey, seed) == 0 else { return nil }
        self.init(id: id, secretKey: secretKey, publicKey: publicKey)
    }

    /// A stored key pair; nil when the sizes are wrong or the halves do not match.
    public init?(id: String, secretKey: [UInt8]) {
        guard secretKey.count == Int(crypto_sign_SECRETKEYBYTES) else { return nil }
        Sodium.ensureReady()
        var publicKey = [UInt8](repeating: 0, count: Int(crypto_sign_PUBLICKEYBYTES))
        guard crypto_sign_ed25519_sk_to_pk(&publicKey, secretKey) == 0 else { return nil }
        self.init(id: id, secretKey: secretKey, publicKey: publicKey)
    }

    private init?(id: String, secretKey: [UInt8], publicKey: [UInt8]) {
        guard let verificationKey = VerificationKey(id: id, publicKey: publicKey) else { return nil }
        self.id = id
        self.secretKey = secretKey
        self.verificationKey = verificationKey
    }

    /// The detached Ed25519 signature of `message`.
    public func signature(of message: [UInt8]) -> [UInt8] {
        Sodium.ensureReady()
        var signature = [UInt8](repeating: 0, count: Int(crypto_sign_BYTES))
        crypto_sign_detached(&signature, nil, message, UInt64(message.count), secretKey)
        return signature
    }

    public var description: String { "SigningKey(\(id))" }
}
