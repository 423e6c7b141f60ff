// A selection read choice by choice by option slot: what a request's decoder writes into,
// with no dictionary of keys in between. It holds only the choices given (a table of slots,
// not an array per option): evaluating it lays them over the catalog defaults in a
// per-option work set the engine lends (`SelectionScratchPool`) and takes them off again,
// so a selection of 100 choices costs 100, not the catalog's size.
import STBJSON
import Synchronization

extension RuleEngine {
    /// A selection being built from choices by option slot, starting from the catalog
    /// defaults. A later choice for a slot replaces an earlier one whole (as a later key
    /// does in a `Selection`): a choice without `included` leaves the default inclusion.
    public struct SlotSelection {
        let engine: RuleEngine
        /// Slots a choice was given for, in the order first given, and the choice last
        /// given for each.
        var chosen: [Int] = []
        var choices: [Selection.Choice] = []
        /// Open addressing by slot: a position in `chosen`, or -1. Empty until the first
        /// choice; kept at most half full. Once it would be as large as the catalog, it is
        /// indexed by slot itself (`direct`): a selection listing most options then costs
        /// one array write per choice, with no probing and no more growing.
        private var table: [Int32] = []
        private var direct = false
        /// Keys given that the catalog does not have (kept, and reported, not evaluated).
        var unknown: [String] = []

        init(_ engine: RuleEngine) {
            self.engine = engine
        }

        /// Gives `choice` for the option in `slot`, replacing any choice given for it before.
        public mutating func choose(_ slot: Int, _ choice: Selection.Choice) {
            let bucket = find(slot)
            if table[bucket] >= 0 {
                choices[Int(table[bucket])] = choice
                return
            }
            table[bucket] = Int32(chosen.count)
            chosen.append(slot)
            choices.append(choice)
            if chosen.count * 2 > table.count { grow() }
        }

        /// Gives `choice` for `slot` only when no choice was given for it yet.
        public mutating func chooseIfUnset(_ slot: Int, _ choice: Selection.Choice) {
            if table.isEmpty || table[find(slot)] < 0 { choose(slot, choice) }
        }

        /// How many options a choice was given for.
        public var chosenCount: Int { chosen.count }

        /// Records a key the catalog does not have.
        public mutating func addUnknown(_ key: String) {
            unknown.append(key)
        }

        /// The bucket of `slot` in `table`: its own, or the empty one it would take.
        private mutating func find(_ slot: Int) -> Int {
            if table.isEmpty { grow() }
            if direct { return slot }
            let mask = table.count - 1
            var bucket = Self.hash(slot) & mask
            while true {
                let position = table[bucket]
                if position < 0 || chosen[Int(position)] == slot { return bucket }
                bucket = (bucket + 1) & mask
            }
        }

        private mutating func grow() {
            if direct { return }
            let size = max(64, table.count * 2)
            let options = engine.keys.count
            if size >= options {
                direct = true
                table = [Int32](repeating: -1, count: options)
                for (position, slot) in chosen.enumerated() { table[slot] = Int32(position) }
                return
            }
            table = [Int32](repeating: -1, count: size)
            let mask = size - 1
            for (position, slot) in chosen.enumerated() {
                var bucket = Self.hash(slot) & mask
                while table[bucket] >= 0 { bucket = (bucket + 1) & mask }
                table[bucket] = Int32(position)
            }
        }

        /// Fibonacci hashing: the product's high bits, so slots a power of two apart (the
        /// first option of every module, say) do not share a bucket chain.
        private static func hash(_ slot: Int) -> Int {
            Int(truncatingIfNeeded: (UInt64(truncatingIfNeeded: slot) &* 0x9E37_79B9_7F4A_7C15) >> 40)
        }
    }

    /// An empty selection (the catalog defaults) to give choices to by slot.
    public func slotSelection() -> SlotSelection { SlotSelection(self) }

    /// `evaluateWithDifferences` of a selection built by slot.
    public func evaluateWithDifferences(_ selection: SlotSelection) -> EvaluatedSelection {
        precondition(selection.engine === self, "a slot selection is evaluated by the engine that made it")
        return withResolved(selection) { state, unknown, changed in
            evaluateWithDifferences(state, unknown: unknown, changed: changed)
        }
    }

    /// `body` with the selection resolved: the state rules read (the defaults with the
    /// choices laid over them, in a work set lent for the call), the unknown keys sorted,
    /// and the options that differ from the defaults (inclusion differs, or a value is
    /// given), ascending. The state must not outlive `body`.
    func withResolved<Result>(_ selection: SlotSelection, _ body: (State, [String], [Int]) -> Result) -> Result {
        let isBoolean = self.isBoolean
        let onAtDefaultValue = self.onAtDefaultValue
        let defaultIncluded = self.defaultIncluded
        var changed: [Int] = []
        changed.reserveCapacity(selection.chosen.count)
        var values: [JSONValue] = []
        return selectionScratch.withScratch(self) { scratch in
            for (slot, choice) in zip(selection.chosen, selection.choices) {
                let isIncluded = choice.included ?? defaultIncluded[slot]
                scratch.included[slot] = isIncluded
                if let value = choice.value {
                    scratch.overrideAt[slot] = Int32(values.count)
                    values.append(value)
                    if isIncluded && isBoolean[slot], case .bool(true) = value {
                        scratch.on[slot] = true
                    } else {
                        scratch.on[slot] = isIncluded && !isBoolean[slot]
                    }
                    changed.append(slot)
                } else {
                    scratch.on[slot] = isIncluded && onAtDefaultValue[slot]
                    if isIncluded != defaultIncluded[slot] { changed.append(slot) }
                }
            }
            changed.sort()
            let result = Self.run(body, State(scratch, values, engine: self), selection.unknown.sorted(), changed)
            // Give the set back as it was lent: only the chosen slots were written.
            for slot in selection.chosen {
                scratch.included[slot] = defaultIncluded[slot]
                scratch.on[slot] = defaultOn[slot]
                scratch.overrideAt[slot] = -1
            }
            return result
        }
    }

    /// `body(state, ...)`, with `state` (which holds the work set's arrays) released when
    /// this returns, so that the work set is again their only owner.
    private static func run<Result>(
        _ body: (State, [String], [Int]) -> Result, _ state: consuming State, _ unknown: [String], _ changed: [Int]
    ) -> Result {
        body(state, unknown, changed)
    }
}

/// Per-option arrays a selection is resolved into, equal to the catalog defaults between
/// evaluations, reused instead of made per call: an evaluation takes a set, gives it back
/// as it found it, and a set in use is no other evaluation's.
final class SelectionScratchPool: Sendable {
    struct Scratch {
        var included: [Bool]
        var on: [Bool]
        /// The position of an option's given value in the evaluation's values; -1 for none.
        var overrideAt: [Int32]
    }

    private let free = Mutex<[Scratch]>([])
    /// Sets kept for reuse; more evaluations at once than this make their own.
    private static let kept = 8

    /// `body` with a set for `engine`'s defaults; it must leave the set as it was given.
    func withScratch<Result>(_ engine: RuleEngine, _ body: (inout Scratch) -> Result) -> Result {
        var scratch = free.withLock { $0.popLast() }
            ?? Scratch(
                included: engine.defaultIncluded, on: engine.defaultOn,
                overrideAt: [Int32](repeating: -1, count: engine.defaultIncluded.count))
        let result = body(&scratch)
        free.withLock { if $0.count < Self.kept { $0.append(scratch) } }
        return result
    }
}
