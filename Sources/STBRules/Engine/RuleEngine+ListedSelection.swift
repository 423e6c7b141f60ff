// A selection that lists most options (a device's whole configuration, say): its
// differences are put in key order by the keys' ranks rather than by comparing strings.
import STBJSON

extension RuleEngine {
    /// `evaluateWithDifferences(selection)`, the same answer, cheaper when the selection
    /// lists many options.
    public func evaluateListed(_ selection: SlotSelection) -> EvaluatedSelection {
        precondition(selection.engine === self, "a slot selection is evaluated by the engine that made it")
        // Few choices: sorting their keys as strings costs less than reading every rank.
        guard selection.chosenCount >= keys.count / 16 else { return evaluateWithDifferences(selection) }
        return withResolved(selection) { state, unknown, changed in
            let evaluation = evaluate(state, unknown: unknown, changed: changed)
            // Key order: by each key's rank among the catalog's keys.
            let ranks = keyTable.ranks
            var ordered = changed
            ordered.sort { ranks[$0] < ranks[$1] }
            var differences: [(key: String, choice: Selection.Choice)] = []
            differences.reserveCapacity(ordered.count)
            for slot in ordered {
                differences.append((keys[slot], Selection.Choice(included: state.included[slot], value: state.override(slot))))
            }
            return EvaluatedSelection(evaluation: evaluation, differences: differences)
        }
    }
}
