// Option keys to option slots, looked up by a key's UTF-8 bytes as they lie in a request:
// no String is made for a key the catalog has. Built once per catalog copy.
//
// Self-contained (the standard library only), so that the fuzz harness compiles it with
// the request scanner alone.

/// An open-addressing table from option keys (UTF-8) to their slots.
// @unchecked Sendable: the buffers are written in init only and freed in deinit.
final class OptionKeyTable: @unchecked Sendable {
    /// Every key's bytes, one after another; `starts[slot]..<starts[slot + 1]` is slot's key.
    private let text: UnsafeMutableRawBufferPointer
    private let starts: UnsafeMutableBufferPointer<Int32>
    /// A power of two of buckets, at least twice the key count: each the high half of its
    /// key's hash and `slot + 1` (0: empty), so that a probe reads one word.
    private let buckets: UnsafeMutableBufferPointer<UInt64>
    private let mask: Int
    /// Whether each slot is the one `slot(of:)` gives for its key (not left out, not
    /// shadowed by a later duplicate).
    private let owns: UnsafeMutableBufferPointer<Bool>
    /// Each slot's place among the keys in String order (`<`), so that a list of slots is
    /// put in key order comparing integers.
    let ranks: [Int32]

    /// The table for `keys`, whose positions are the slots. A key listed twice has its
    /// last slot (as a dictionary filled in order would). A key holding a NUL is left out:
    /// no request may name it (the decoder refuses such a string).
    init(_ keys: [String]) {
        ranks = Self.ranks(keys)
        let length = keys.reduce(0) { $0 + $1.utf8.count }
        text = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, length), alignment: 8)
        starts = UnsafeMutableBufferPointer<Int32>.allocate(capacity: keys.count + 1)
        var offset = 0
        starts[0] = 0
        for (slot, key) in keys.enumerated() {
            for byte in key.utf8 {
                text[offset] = byte
                offset += 1
            }
            starts[slot + 1] = Int32(offset)
        }
        var capacity = 16
        while capacity < keys.count * 2 { capacity <<= 1 }
        buckets = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: capacity)
        buckets.initialize(repeating: 0)
        mask = capacity - 1
        owns = UnsafeMutableBufferPointer<Bool>.allocate(capacity: max(1, keys.count))
        owns.initialize(repeating: false)
        for slot in keys.indices {
            let key = self.key(slot)
            if key.contains(0) { continue }
            let hash = Self.hash(key)
            var bucket = Int(truncatingIfNeeded: hash) & mask
            while buckets[bucket] != 0 {
                let entry = buckets[bucket]
                if entry >> 32 == hash >> 32, Self.equal(key, self.key(Int(entry & 0xFFFF_FFFF) - 1)) { break }
                bucket = (bucket + 1) & mask
            }
            buckets[bucket] = (hash & 0xFFFF_FFFF_0000_0000) | UInt64(slot + 1)
        }
        for slot in keys.indices { owns[slot] = self.slot(of: self.key(slot)) == slot }
    }

    /// Each key's place in String order; a catalog listed in key order costs one pass.
    private static func ranks(_ keys: [String]) -> [Int32] {
        var ascending = true
        for position in keys.indices.dropFirst() where !(keys[position - 1] < keys[position]) {
            ascending = false
            break
        }
        if ascending { return keys.indices.map { Int32($0) } }
        var ranks = [Int32](repeating: 0, count: keys.count)
        for (rank, slot) in keys.indices.sorted(by: { keys[$0] < keys[$1] }).enumerated() { ranks[slot] = Int32(rank) }
        return ranks
    }

    deinit {
        text.deallocate()
        starts.deallocate()
        buckets.deallocate()
        owns.deallocate()
    }

    private func key(_ slot: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: text[Int(starts[slot])..<Int(starts[slot + 1])])
    }

    /// The slot of the key spelled by `key`'s bytes, nil when the table has no such key.
    func slot(of key: UnsafeRawBufferPointer) -> Int? {
        let hash = Self.hash(key)
        let high = hash >> 32
        var bucket = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = buckets[bucket]
            if entry == 0 { return nil }
            if entry >> 32 == high {
                let slot = Int(entry & 0xFFFF_FFFF) - 1
                if Self.equal(key, self.key(slot)) { return slot }
            }
            bucket = (bucket + 1) & mask
        }
    }

    /// `slot(of:)`, trying `expected` first: a request that lists options in catalog order
    /// (each key the one after the last) costs one comparison of bytes that lie next to the
    /// last key's, not a hash and a probe into the buckets.
    @inline(__always)
    func slot(of key: UnsafeRawBufferPointer, expected: Int) -> Int? {
        if expected >= 0, expected < starts.count - 1, owns[expected], Self.equal(key, self.key(expected)) { return expected }
        return slot(of: key)
    }

    /// The slot of `key`, nil when the table has no such key.
    func slot(of key: String) -> Int? {
        var key = key
        return key.withUTF8 { slot(of: UnsafeRawBufferPointer($0)) }
    }

    /// A 64-bit hash of bytes, eight at a time (keys are short: one to three words).
    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(bytes.count)
        var offset = 0
        let count = bytes.count
        while offset + 8 <= count {
            state = mix(state ^ bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            offset += 8
        }
        if offset < count {
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while offset < count {
                tail |= UInt64(bytes[offset]) << shift
                shift += 8
                offset += 1
            }
            state = mix(state ^ tail)
        }
        return mix(state)
    }

    @inline(__always)
    private static func mix(_ value: UInt64) -> UInt64 {
        let product = value.multipliedFullWidth(by: 0xBF58_476D_1CE4_E5B9)
        return product.high ^ product.low
    }

    @inline(__always)
    private static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        var offset = 0
        let count = a.count
        while offset + 8 <= count {
            if a.loadUnaligned(fromByteOffset: offset, as: UInt64.self) != b.loadUnaligned(fromByteOffset: offset, as: UInt64.self) {
                return false
            }
            offset += 8
        }
        while offset < count {
            if a[offset] != b[offset] { return false }
            offset += 1
        }
        return true
    }
}
