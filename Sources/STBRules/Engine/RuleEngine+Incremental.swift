// Incremental evaluation: most selections differ from the catalog defaults in a few
// options. The engine evaluates the defaults once; a selection re-checks only the rules that
// read an option it changes (its inclusion, or its value, which for a boolean decides whether
// it is on), plus rules whose json-logic computes variable names, and recomputes the requires
// closure only when a change can reach it. The result is the one
// `evaluateFully` gives: same violations, same order, same references.
import STBJSON
import STBOptionValues

/// The evaluation of the catalog defaults, kept per rules and catalog revision.
struct DefaultEvaluation: Sendable {
    /// Violations of the defaults with the rule (index into the compiled rules) that gave
    /// each, ascending by rule.
    var violations: [(rule: Int, violation: Violation)] = []
    var closure: [ClosureEntry] = []
    var conflicts: [ClosureConflict] = []
    /// How many of `conflicts` the walk itself made (requires edges to unknown options);
    /// the keys of the others, and where each closure position's start
    /// (`ClosureOutcome`): a selection's walk takes over those whose inputs are unchanged.
    var walkedConflictCount = 0
    var conflictKeys: [ClosureConflictKey] = []
    var conflictStart: [Int32] = [0]
    /// Options whose inclusion the closure and its conflicts read: every option with a
    /// requires edge, and every option a forbidden or choice rule next to the default
    /// closure reads.
    var closureInputs: [Bool] = []
    /// The closure walk's parent of each option (-1: not added), and each added option's
    /// position in `closure`: a selection's walk reuses the entries whose chain is the same.
    var closureParent: [Int32] = []
    var closurePosition: [Int32] = []
    /// `closureParent` and `closurePosition` side by side (x, y): a selection's walk reads
    /// an added option's parent and then its position, from one cache line, not two arrays.
    var closureParentAndPosition: [SIMD2<Int32>] = []
    /// The requires edges (`RuleIndex.requiresFlat` positions, ascending) the walk follows
    /// first: from an option that is on to one that is not (or not in the catalog).
    var closureFrontier: [Int32] = []
    /// `violations` apart: the violations, the rule of each, and whether each is an error.
    var violationList: [Violation] = []
    var violationRules: [Int] = []
    var violationIsError: [Bool] = []
    /// The whole evaluation of the defaults.
    var evaluation = Evaluation(valid: true, violations: [], closure: [], conflicts: [], unknownSelections: [])

    init() {}

    /// Every active rule checked against the defaults.
    init(of engine: RuleEngine) {
        self.init(of: engine, reusing: nil)
    }

    /// Rules whose compiled form `previous` already checked keep its answer; the others are
    /// checked now. The closure is recomputed (one walk over the requires edges).
    init(of engine: RuleEngine, reusing previous: DefaultEvaluation?, from previousEngine: RuleEngine? = nil) {
        let state = engine.defaultState
        var known: [ObjectIdentifier: Violation?] = [:]
        if let previous, let previousEngine {
            var next = 0
            known.reserveCapacity(previousEngine.activeRules.count)
            for ruleIndex in previousEngine.activeRules {
                var violation: Violation?
                if next < previous.violations.count, previous.violations[next].rule == ruleIndex {
                    violation = previous.violations[next].violation
                    next += 1
                }
                known[ObjectIdentifier(previousEngine.compiled[ruleIndex])] = violation
            }
        }
        for ruleIndex in engine.activeRules {
            let entry = engine.compiled[ruleIndex]
            let violation: Violation?
            if let seen = known[ObjectIdentifier(entry)] { violation = seen } else { violation = engine.check(entry, state) }
            if let violation { violations.append((ruleIndex, violation)) }
        }
        computeClosure(engine, state)
        finish()
    }

    /// The closure and its conflicts (entries whose chain is unchanged taken from
    /// `previous`), and what goes with them: parents, positions, the first level and the
    /// options the closure reads.
    mutating func computeClosure(_ engine: RuleEngine, _ state: RuleEngine.State, reusing previous: DefaultEvaluation? = nil) {
        let walk = engine.closureWalk(state, reusing: previous)
        (closure, conflicts, closureParent) = (walk.outcome.closure, walk.outcome.conflicts, walk.parentOf)
        (walkedConflictCount, conflictKeys, conflictStart) = (walk.outcome.walkedCount, walk.outcome.conflictKeys, walk.outcome.conflictStart)
        closurePosition = [Int32](repeating: -1, count: closureParent.count)
        for (position, added) in walk.order.enumerated() { closurePosition[added] = Int32(position) }
        closureParentAndPosition = zip(closureParent, closurePosition).map { SIMD2($0, $1) }
        computeFrontier(engine, state)
        closureInputs = engine.index.requiresNode
        for added in walk.order {
            for ruleIndex in engine.forbiddenBySubject[added] + engine.forbiddenByTarget[added] + engine.choicesByMember[added] {
                for slot in engine.compiled[ruleIndex].slots { closureInputs[slot] = true }
            }
        }
    }

    mutating func finish() {
        violationList = violations.map(\.violation)
        violationRules = violations.map(\.rule)
        violationIsError = violationList.map { $0.severity == .error }
        evaluation = Evaluation(
            valid: !violationIsError.contains(true), own: [], defaultViolations: violationList,
            fromDefaults: violationList.indices.map { Int32($0) }, closure: closure, conflicts: conflicts,
            unknownSelections: [], closureFromDefaults: true)
    }
}

extension RuleEngine {
    /// Whether a selection satisfies the rules and the options' constraints, and why not.
    /// Starts from the evaluation of the defaults and re-checks what the selection's
    /// differences from the defaults touch; the answer equals `evaluateFully(selection)`.
    public func evaluate(_ selection: Selection) -> Evaluation {
        withResolved(slotSelection(of: selection)) { state, unknown, changed in
            evaluate(state, unknown: unknown, changed: changed)
        }
    }

    /// The evaluation of the catalog defaults (no choices).
    public var defaultEvaluation: Evaluation { defaults.evaluation }

    func evaluate(_ state: State, unknown: [String], changed: [Int]) -> Evaluation {
        if changed.isEmpty {
            var evaluation = defaults.evaluation
            evaluation.unknownSelections = unknown
            return evaluation
        }
        // How many rules the changes touch, counted with repeats.
        var touchedCount = index.everywhere.count
        var closureTouched = false
        for slot in changed {
            touchedCount += index.touching[slot].count
            if defaults.closureInputs[slot] { closureTouched = true }
        }
        // The violations are the defaults' (by position, not copied) merged with the ones
        // checked now that differ from them.
        var own = constraintViolations(state, changed)
        var errors = 0
        for violation in own where violation.severity == .error { errors += 1 }
        let baseRules = defaults.violationRules
        let baseList = defaults.violationList
        let baseIsError = defaults.violationIsError
        var fromDefaults: [Int32] = []
        fromDefaults.reserveCapacity(own.count + baseRules.count + touchedCount)
        for position in own.indices { fromDefaults.append(~Int32(position)) }
        /// The defaults' violation at `next`, as it is.
        func take(_ next: Int) {
            fromDefaults.append(Int32(next))
            if baseIsError[next] { errors += 1 }
        }
        /// A violation checked now (a rule that reads as in the defaults is not checked: it
        /// keeps theirs). Not compared with the defaults' violation: `==` on its strings
        /// would equate other spellings of the same text.
        func append(_ violation: Violation) {
            if violation.severity == .error { errors += 1 }
            fromDefaults.append(~Int32(own.count))
            own.append(violation)
        }
        /// One rule's outcome, `next` being the position of its violation in the defaults'
        /// if they have one: none when it holds; the defaults' when its options read as
        /// there; else checked now.
        func settle(_ ruleIndex: Int, _ next: Int) {
            let entry = compiled[ruleIndex]
            if holds(entry, state) == true {
                // No violation, whatever the defaults had.
            } else if readsAsDefaults(entry, state) {
                // The defaults' outcome: their violation by position, not built again.
                if next < baseRules.count, baseRules[next] == ruleIndex { take(next) }
            } else if let violation = check(entry, state) {
                append(violation)
            }
        }
        if touchedCount >= activeRules.count / 2 {
            // A selection that touches most rules is checked rule by rule, without the merge.
            var next = 0
            for ruleIndex in activeRules {
                while next < baseRules.count, baseRules[next] < ruleIndex { next += 1 }
                settle(ruleIndex, next)
            }
        } else {
            // The touched rules ascending, each once: a bit per rule index, read a word at
            // a time (sorting the touched list cost a tenth of a sparse evaluation).
            var touched = [UInt64](repeating: 0, count: (compiled.count + 63) >> 6)
            for ruleIndex in index.everywhere { touched[ruleIndex >> 6] |= 1 << UInt64(ruleIndex & 63) }
            for slot in changed {
                for ruleIndex in index.touching[slot] { touched[ruleIndex >> 6] |= 1 << UInt64(ruleIndex & 63) }
            }
            var next = 0
            for (word, bits) in touched.enumerated() where bits != 0 {
                var remaining = bits
                while remaining != 0 {
                    let ruleIndex = word << 6 | remaining.trailingZeroBitCount
                    remaining &= remaining &- 1
                    while next < baseRules.count, baseRules[next] < ruleIndex {
                        take(next)
                        next += 1
                    }
                    settle(ruleIndex, next)
                    if next < baseRules.count, baseRules[next] == ruleIndex { next += 1 }
                }
            }
            while next < baseRules.count {
                take(next)
                next += 1
            }
        }
        var closure = defaults.closure
        var conflicts = defaults.conflicts
        var closureFromDefaults = true
        if closureTouched {
            let outcome = closureAndConflicts(state, changed: changed)
            (closure, conflicts, closureFromDefaults) = (outcome.closure, outcome.conflicts, outcome.isDefaults)
        }
        return Evaluation(
            valid: errors == 0, own: own, defaultViolations: baseList, fromDefaults: fromDefaults, closure: closure,
            conflicts: conflicts, unknownSelections: unknown, closureFromDefaults: closureFromDefaults)
    }
}

extension RuleEngine {
    /// Whether `entry` reads in `state` what it reads in the defaults: every option it
    /// reads has its default inclusion and on-ness, and an included one its default value
    /// (the same bytes). Its outcome, references and text are then the defaults'. A rule
    /// that computes variable names reads options it does not list: never.
    func readsAsDefaults(_ entry: Compiled, _ state: State) -> Bool {
        if entry.dynamic { return false }
        for slot in entry.slots {
            let isIncluded = state.included[slot]
            guard isIncluded == defaultIncluded[slot], state.on[slot] == defaultOn[slot] else { return false }
            if isIncluded, let value = state.override(slot), !Self.identical(value, defaultValues[slot]) { return false }
        }
        return true
    }

    /// Whether `entry` has no violation in `state`, told from on-ness alone without
    /// building one; nil for a validation (its json-logic tells). As `check` decides.
    func holds(_ entry: Compiled, _ state: State) -> Bool? {
        switch entry.scope {
        case .never: return true
        case .option(let subject): if !state.on[subject] { return true }
        case .always: break
        }
        switch entry.rule.kind {
        case .requires: return !entry.targets.contains { !state.isOn($0) }
        case .forbidden: return !entry.targets.contains { state.isOn($0) }
        case .choice(_, let optional):
            var count = 0
            for target in entry.targets where state.isOn(target) { count += 1 }
            return count == 1 || (optional && count == 0)
        case .validation: return nil
        }
    }

    /// Whether two option values read and print the same: equal booleans or integers, or
    /// strings of the same bytes (`==` on strings also equates other spellings of the same
    /// text). Other values are not compared (a default is a boolean, integer or string).
    static func identical(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.bool(let x), .bool(let y)): x == y
        case (.integer(let x), .integer(let y)): x == y
        case (.string(let x), .string(let y)): x.utf8.elementsEqual(y.utf8)
        default: false
        }
    }
}

/// An evaluation with the selection's canonical form.
public struct EvaluatedSelection: Sendable {
    public var evaluation: Evaluation
    /// The options the selection changes from the catalog defaults (inclusion differs, or a
    /// value is given), in key order, each with its effective inclusion and the value given.
    public var differences: [(key: String, choice: Selection.Choice)]
    /// No differences: the evaluation is the defaults' (`RuleEngine.defaultEvaluation`, with
    /// the unknown keys the selection lists).
    public var isDefault: Bool { differences.isEmpty }
}

extension RuleEngine {
    /// `evaluate(selection)` and the selection's differences from the catalog defaults.
    public func evaluateWithDifferences(_ selection: Selection) -> EvaluatedSelection {
        evaluateWithDifferences(slotSelection(of: selection))
    }

    /// `evaluateWithDifferences` for choices resolved to option slots (`slot(of:)`), in the
    /// order given: a later choice for a slot replaces an earlier one. `unknown` are keys
    /// the catalog does not have, reported as the selection's unknown keys.
    public func evaluateWithDifferences(slots choices: [(slot: Int, choice: Selection.Choice)], unknown: [String] = []) -> EvaluatedSelection {
        evaluateWithDifferences(slotSelection(slots: choices, unknown: unknown))
    }

    /// The option slot of `key` in this engine's catalog, for `evaluateWithDifferences(slots:)`.
    public func slot(of key: String) -> Int? { indexOf[key] }

    /// The type of the option in `slot`.
    public func valueType(ofSlot slot: Int) -> OptionValueType { constraints[slot].type }

    /// The evaluation of a resolved selection, with its differences from the defaults.
    func evaluateWithDifferences(_ state: State, unknown: [String], changed: [Int]) -> EvaluatedSelection {
        var differences: [(key: String, choice: Selection.Choice)] = []
        differences.reserveCapacity(changed.count)
        for slot in changed {
            differences.append((keys[slot], Selection.Choice(included: state.included[slot], value: state.override(slot))))
        }
        differences.sort { $0.key < $1.key }
        return EvaluatedSelection(evaluation: evaluate(state, unknown: unknown, changed: changed), differences: differences)
    }
}
