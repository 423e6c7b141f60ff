internal import CSodium

/// A 256-bit BLAKE2b digest of a token's bytes: what a verified-token cache is keyed by,
/// so the cache holds no tokens and two tokens never share an entry by accident.
public struct TokenDigest: Sendable, Hashable {
    let words: (UInt64, UInt64, UInt64, UInt64)

    /// The digest of `token`'s UTF-8 bytes.
    public init(of token: some StringProtocol) {
        Sodium.ensureReady()
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var text = Substring(token)
        withUnsafeMutableBytes(of: &words) { digest in
            // 32 bytes of a local tuple: the address is never nil.
            guard let output = digest.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
            text.withUTF8 { bytes in
                // BLAKE2b with a 32-byte output and no key cannot fail.
                _ = crypto_generichash(output, 32, bytes.baseAddress, UInt64(bytes.count), nil, 0)
            }
        }
        self.words = words
    }

    public static func == (lhs: TokenDigest, rhs: TokenDigest) -> Bool {
        lhs.words == rhs.words
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
    }
}
