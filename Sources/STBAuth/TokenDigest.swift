internal import CSodium

/// A 256-bit BLAKE2b digest of a token's bytes: what a verified-token cache is keyed by,
/// so the cache holds no tokens and two tokens never share an entry by accident.
public struct TokenDigest: Sendable, Hashable {
    let words: (UInt64, UInt64, UInt64, UInt64)

    /// The digest of `token`'s UTF-8 bytes.
    public init(of token: String) {
        Sodium.ensureReady()
        var bytes = [UInt8](repeating: 0, count: 32)
        var token = token
        token.withUTF8 { text in
            // BLAKE2b with a 32-byte output and no key cannot fail.
            _ = crypto_generichash(&bytes, 32, text.baseAddress, UInt64(text.count), nil, 0)
        }
        func word(_ start: Int) -> UInt64 {
            bytes[start..<start + 8].reduce(0) { $0 << 8 | UInt64($1) }
        }
        words = (word(0), word(8), word(16), word(24))
    }

    public static func == (lhs: TokenDigest, rhs: TokenDigest) -> Bool {
        lhs.words == rhs.words
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
    }
}
