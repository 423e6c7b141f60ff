import STBAuth
import Synchronization

/// Tokens already verified, by the digest of their bytes, each until it expires: a caller
/// presenting the same token again is not verified again. Bounded: when full, expired
/// entries go first, then everything (a refill costs one verification per token).
final class VerifiedTokenCache: Sendable {
    let capacity: Int
    private let entries = Mutex<[TokenDigest: AccessClaims]>([:])

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// The claims of a token verified before, unless it has expired by `now` (seconds).
    func claims(for digest: TokenDigest, now: Int64) -> AccessClaims? {
        entries.withLock { entries in
            guard let claims = entries[digest] else { return nil }
            guard now <= claims.expiresAt else {
                entries[digest] = nil
                return nil
            }
            return claims
        }
    }

    func insert(_ claims: AccessClaims, for digest: TokenDigest, now: Int64) {
        entries.withLock { entries in
            if entries.count >= capacity {
                entries = entries.filter { now <= $0.value.expiresAt }
                if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            }
            entries[digest] = claims
        }
    }

    var count: Int { entries.withLock { $0.count } }
}
