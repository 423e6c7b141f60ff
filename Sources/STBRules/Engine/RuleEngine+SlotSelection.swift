// A selection read choice by choice straight into per-option arrays: what a request's
// decoder writes into, with no dictionary of keys and no list of choices in between.
import STBJSON

extension RuleEngine {
    /// A selection being built from choices by option slot, starting from the catalog
    /// defaults. A later choice for a slot replaces an earlier one whole (as a later key
    /// does in a `Selection`): a choice without `included` leaves the default inclusion.
    public struct SlotSelection {
        let engine: RuleEngine
        // The engine's arrays, read here without a retain per choice.
        private let defaultIncluded: [Bool]
        private let isBoolean: [Bool]
        private let onAtDefaultValue: [Bool]
        var included: [Bool]
        var on: [Bool]
        var overrides: [Int: JSONValue] = [:]
        /// Slots a choice was given for, in the order first given, and which those are.
        var chosen: [Int] = []
        var given: [Bool]
        /// Keys given that the catalog does not have (kept, and reported, not evaluated).
        var unknown: [String] = []

        init(_ engine: RuleEngine) {
            self.engine = engine
            defaultIncluded = engine.defaultIncluded
            isBoolean = engine.isBoolean
            onAtDefaultValue = engine.onAtDefaultValue
            included = engine.defaultIncluded
            on = engine.defaultOn
            given = [Bool](repeating: false, count: engine.keys.count)
        }

        /// Gives `choice` for the option in `slot`, replacing any choice given for it before.
        public mutating func choose(_ slot: Int, _ choice: Selection.Choice) {
            if given[slot] {
                included[slot] = defaultIncluded[slot]
                overrides[slot] = nil
            } else {
                given[slot] = true
                chosen.append(slot)
            }
            if let flag = choice.included { included[slot] = flag }
            // `RuleEngine.isOn` without copying the default value.
            let isIncluded = included[slot]
            if let value = choice.value {
                overrides[slot] = value
                if isIncluded && isBoolean[slot], case .bool(true) = value { on[slot] = true } else { on[slot] = isIncluded && !isBoolean[slot] }
            } else {
                on[slot] = isIncluded && onAtDefaultValue[slot]
            }
        }

        /// Gives `choice` for `slot` only when no choice was given for it yet (a base
        /// selection's choice under the request's own).
        public mutating func chooseIfUnset(_ slot: Int, _ choice: Selection.Choice) {
            if !given[slot] { choose(slot, choice) }
        }

        /// How many options a choice was given for.
        public var chosenCount: Int { chosen.count }

        /// Records a key the catalog does not have.
        public mutating func addUnknown(_ key: String) {
            unknown.append(key)
        }

        /// The resolved selection: the state rules read, the unknown keys sorted, and the
        /// options that differ from the defaults (inclusion differs, or a value is given),
        /// ascending.
        func resolved() -> (state: State, unknown: [String], changed: [Int]) {
            var changed: [Int] = []
            changed.reserveCapacity(chosen.count)
            for slot in chosen where included[slot] != defaultIncluded[slot] || overrides[slot] != nil {
                changed.append(slot)
            }
            changed.sort()
            return (State(included: included, on: on, overrides: overrides, engine: engine), unknown.sorted(), changed)
        }
    }

    /// An empty selection (the catalog defaults) to give choices to by slot.
    public func slotSelection() -> SlotSelection { SlotSelection(self) }

    /// `evaluateWithDifferences` of a selection built by slot.
    public func evaluateWithDifferences(_ selection: SlotSelection) -> EvaluatedSelection {
        precondition(selection.engine === self, "a slot selection is evaluated by the engine that made it")
        return evaluateWithDifferences(resolved: selection.resolved())
    }
}
