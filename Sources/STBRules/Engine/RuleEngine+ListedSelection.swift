// A selection that lists most options (a device's whole configuration, say): what differs
// from the defaults is found by a pass over the per-option arrays rather than one lookup
// per listed option, and the differences are put in key order by the keys' ranks rather
// than by comparing strings.
import STBJSON

extension RuleEngine {
    /// `evaluateWithDifferences(selection)`, the same answer, cheaper when the selection
    /// lists many options.
    public func evaluateListed(_ selection: SlotSelection) -> EvaluatedSelection {
        precondition(selection.engine === self, "a slot selection is evaluated by the engine that made it")
        let count = keys.count
        // Few choices: one look per choice costs less than a pass over every option.
        guard selection.chosenCount >= count / 16 else { return evaluateWithDifferences(selection) }
        var differs = [Bool](repeating: false, count: count)
        var changedCount = 0
        selection.included.withUnsafeBufferPointer { included in
            defaultIncluded.withUnsafeBufferPointer { defaults in
                for slot in 0..<count where included[slot] != defaults[slot] {
                    differs[slot] = true
                    changedCount += 1
                }
            }
        }
        for slot in selection.overrides.keys where !differs[slot] {
            differs[slot] = true
            changedCount += 1
        }
        var changed: [Int] = []
        changed.reserveCapacity(changedCount)
        differs.withUnsafeBufferPointer { differs in
            for slot in 0..<count where differs[slot] { changed.append(slot) }
        }
        let state = State(included: selection.included, on: selection.on, overrides: selection.overrides, engine: self)
        let evaluation = evaluate(state, unknown: selection.unknown.sorted(), changed: changed)
        // Key order: by each key's rank among the catalog's keys.
        let ranks = keyTable.ranks
        var ordered = changed
        ordered.sort { ranks[$0] < ranks[$1] }
        var differences: [(key: String, choice: Selection.Choice)] = []
        differences.reserveCapacity(ordered.count)
        for slot in ordered {
            differences.append((keys[slot], Selection.Choice(included: state.included[slot], value: state.overrides[slot])))
        }
        return EvaluatedSelection(evaluation: evaluation, differences: differences)
    }
}
