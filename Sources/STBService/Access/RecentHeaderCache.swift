import STBAuth
import Synchronization

/// The claims of the `authorization` headers most recently answered from the verified-token
/// cache, each by the header's exact bytes: a caller presenting the same header again is
/// found with a cheap hash and one comparison of the bytes, instead of a BLAKE2b digest of
/// the token. Direct-mapped: a header whose slot holds another goes through the digest
/// again and takes the slot. Only claims verified before enter, each until its token
/// expires. Holds the headers of recent calls, as those calls did; never logged or shown.
final class RecentHeaderCache: Sendable {
    private struct Entry {
        let header: String
        let claims: AccessClaims
    }

    private let slots: Mutex<[Entry?]>
    private let mask: Int

    /// `slotCount` rounded up to a power of two.
    init(slotCount: Int) {
        var count = 1
        while count < slotCount { count <<= 1 }
        slots = Mutex([Entry?](repeating: nil, count: count))
        mask = count - 1
    }

    /// The claims remembered for `header`, unless they have expired by `now` (seconds).
    func claims(forHeader header: String, now: Int64) -> AccessClaims? {
        let slot = Self.slot(of: header, mask: mask)
        return slots.withLock { slots -> AccessClaims? in
            guard let entry = slots[slot], Self.sameBytes(entry.header, header) else { return nil }
            guard now <= entry.claims.expiresAt else {
                slots[slot] = nil
                return nil
            }
            return entry.claims
        }
    }

    /// Remembers the verified `claims` of the token `header` carries.
    func remember(_ claims: AccessClaims, forHeader header: String) {
        let slot = Self.slot(of: header, mask: mask)
        slots.withLock { $0[slot] = Entry(header: header, claims: claims) }
    }

    /// The slot of `header`: Swift's hasher (seeded per process) over its bytes.
    private static func slot(of header: String, mask: Int) -> Int {
        var header = header
        return header.withUTF8 { bytes in
            var hasher = Hasher()
            hasher.combine(bytes: UnsafeRawBufferPointer(bytes))
            return hasher.finalize() & mask
        }
    }

    /// Byte equality: `==` on strings means canonical equivalence, and a header is bytes.
    /// Every byte is compared (no early exit), so the time taken says nothing of how much
    /// of a remembered token a caller's header matches.
    private static func sameBytes(_ lhs: String, _ rhs: String) -> Bool {
        var lhs = lhs, rhs = rhs
        return lhs.withUTF8 { left in
            rhs.withUTF8 { right in
                guard left.count == right.count else { return false }
                var difference: UInt8 = 0
                for index in 0..<left.count { difference |= left[index] ^ right[index] }
                return difference == 0
            }
        }
    }
}
