// What several test targets share.

/// A small deterministic generator (SplitMix64), so a failing case can be replayed.
public struct SplitMix {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Mostly the edges of Int64 and small numbers, sometimes anything.
    public mutating func extremeInt64() -> Int64 {
        let edges: [Int64] = [.min, .min + 1, .min / 2, -1_000_000, -2, -1, 0, 1, 2, 3, 7, 100, 1_000_000, .max / 2, .max - 1, .max]
        switch next() % 4 {
        case 0, 1: return edges[Int(next() % UInt64(edges.count))]
        case 2: return Int64(bitPattern: next()) >> Int64(next() % 64)
        default: return Int64(bitPattern: next())
        }
    }
}
