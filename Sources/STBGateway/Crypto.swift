internal import CSodium
import STBAuth

/// The libsodium primitives the gateway uses beside STBAuth's signing: random bytes,
/// SHA-256, constant-time comparison and secretbox.
enum Crypto {
    /// `sodium_init` is idempotent and thread-safe; a lazy global runs it once.
    private static let ready: Bool = sodium_init() >= 0

    static func ensureReady() {
        precondition(ready, "libsodium could not initialise")
    }

    /// `count` bytes from the system's CSPRNG.
    static func randomBytes(_ count: Int) -> [UInt8] {
        ensureReady()
        var bytes = [UInt8](repeating: 0, count: count)
        randombytes_buf(&bytes, count)
        return bytes
    }

    static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        ensureReady()
        var digest = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_BYTES))
        crypto_hash_sha256(&digest, bytes, UInt64(bytes.count))
        return digest
    }

    /// Whether `a` and `b` are equal, in time that depends only on their lengths (each is
    /// hashed first, so unequal lengths take the same path).
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        let left = sha256(a)
        let right = sha256(b)
        return sodium_memcmp(left, right, left.count) == 0
    }

    /// Bytes of a secretbox key.
    static let secretBoxKeyBytes = Int(crypto_secretbox_KEYBYTES)

    /// The nonce, then `plaintext` sealed under `key` (crypto_secretbox_easy).
    static func seal(_ plaintext: [UInt8], key: [UInt8]) -> [UInt8] {
        ensureReady()
        precondition(key.count == secretBoxKeyBytes, "a secretbox key is \(secretBoxKeyBytes) bytes")
        let nonce = randomBytes(Int(crypto_secretbox_NONCEBYTES))
        var sealed = [UInt8](repeating: 0, count: plaintext.count + Int(crypto_secretbox_MACBYTES))
        // Fails only for a message longer than crypto_secretbox_MESSAGEBYTES_MAX.
        let rc = crypto_secretbox_easy(&sealed, plaintext, UInt64(plaintext.count), nonce, key)
        precondition(rc == 0, "crypto_secretbox_easy refused a short message")
        return nonce + sealed
    }

    /// What `seal` sealed, or nil when `box` was not sealed under `key` or was altered.
    static func open(_ box: [UInt8], key: [UInt8]) -> [UInt8]? {
        ensureReady()
        let nonceBytes = Int(crypto_secretbox_NONCEBYTES)
        let macBytes = Int(crypto_secretbox_MACBYTES)
        guard key.count == secretBoxKeyBytes, box.count >= nonceBytes + macBytes else { return nil }
        let nonce = Array(box[..<nonceBytes])
        let sealed = Array(box[nonceBytes...])
        var plaintext = [UInt8](repeating: 0, count: sealed.count - macBytes)
        guard crypto_secretbox_open_easy(&plaintext, sealed, UInt64(sealed.count), nonce, key) == 0 else { return nil }
        return plaintext
    }

    /// A random opaque token: `count` random bytes, base64url.
    static func randomToken(bytes count: Int = 32) -> String {
        Base64URL.encode(randomBytes(count))
    }
}
