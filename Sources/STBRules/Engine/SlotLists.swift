// A list per option slot, kept in chunks so that an engine changed by one rule shares
// almost all of them with the engine it came from.

/// A list for each option slot, stored in chunks of 64 slots: a copy that changes one slot's
/// list copies that slot's chunk (64 references), not one reference per option, so a rule
/// change in a catalog of 10,000 options costs the same as in one of 100.
struct SlotLists<Element: Sendable>: Sendable {
    private static var shift: Int { 6 }
    private static var mask: Int { 63 }

    private var chunks: [[[Element]]]
    /// The number of slots.
    let count: Int

    /// `count` empty lists.
    init(count: Int) {
        self.count = count
        let size = 1 << Self.shift
        chunks = stride(from: 0, to: count, by: size).map { Array(repeating: [], count: min(size, count - $0)) }
    }

    /// The slots, `0..<count`.
    var indices: Range<Int> { 0..<count }

    subscript(slot: Int) -> [Element] {
        _read { yield chunks[slot &>> Self.shift][slot & Self.mask] }
        _modify { yield &chunks[slot &>> Self.shift][slot & Self.mask] }
    }
}
