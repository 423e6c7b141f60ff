// The rules engine: compiles rules against a catalog once, then evaluates selections.
// Pure: no I/O, immutable after init, safe to share between tasks.
import STBJSON
import STBJSONLogic
import STBOptionValues

/// One option a violated rule references, with what the rule saw.
public struct Reference: Sendable, Hashable {
    public var optionKey: String
    public var included: Bool
    /// The effective value when included; nil when excluded or unknown.
    public var value: JSONValue?
    /// False when the option is not in the catalog.
    public var known: Bool

    public init(optionKey: String, included: Bool, value: JSONValue?, known: Bool = true) {
        self.optionKey = optionKey
        self.included = included
        self.value = value
        self.known = known
    }

    /// Kconfig-style: `hdr [=y]`, `hdr [=n]`, `max_bitrate [=20000]`, `codec [="hevc"]`, `ghost [=?]` (unknown).
    /// A boolean reads `y` only when it is on (included and true): included at `false` is `n`.
    public var kconfigText: String {
        var text: [UInt8] = []
        appendKconfigText(to: &text)
        return String(decoding: text, as: UTF8.self)
    }

    /// Appends `kconfigText`'s UTF-8 to `text`: bytes, not String appends (each of which
    /// costs a few hundred instructions), as a violation's explanation lists many.
    func appendKconfigText(to text: inout [UInt8]) {
        text.append(contentsOf: optionKey.utf8)
        text.append(contentsOf: " [=".utf8)
        if !known {
            text.append(UInt8(ascii: "?"))
        } else if !included {
            text.append(UInt8(ascii: "n"))
        } else {
            switch value {
            case nil, .bool(true)?, .null?: text.append(UInt8(ascii: "y"))
            case .bool(false)?: text.append(UInt8(ascii: "n"))
            // An integer, or a string with nothing to escape, as `canonicalText` spells it,
            // without a string made for it and a string's scalars appended one at a time.
            case .integer(let number)?: text.append(contentsOf: String(number).utf8)
            case .string(let string)? where !string.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }):
                text.append(UInt8(ascii: "\""))
                text.append(contentsOf: string.utf8)
                text.append(UInt8(ascii: "\""))
            case let value?: text.append(contentsOf: value.canonicalText.utf8)
            }
        }
        text.append(UInt8(ascii: "]"))
    }

    static func valueText(included: Bool, value: JSONValue?, known: Bool) -> String {
        if !known { return "?" }
        if !included { return "n" }
        switch value {
        case nil, .bool(true)?, .null?: return "y"
        case .bool(false)?: return "n"
        case let value?: return value.canonicalText
        }
    }
}

public struct Violation: Sendable, Hashable {
    public var ruleKey: String
    /// `requires`, `forbidden`, `validation`, `choice`.
    public var kind: String
    public var subject: String
    public var severity: RuleSeverity
    /// The rule's own message.
    public var message: String
    /// Every option the rule references (subject first for subject rules), with its current state.
    public var references: [Reference]
    /// One line, Kconfig style: `hdr requires 4k_output [=n], hdmi_2_1 [=y]`.
    public var explanation: String
    /// For a value outside its option's constraints (kind `constraint`): the meta member
    /// it breaks (`min`, `max`, `step`, `max_length`, `pattern`, `values`; `type` for a
    /// value of the wrong type, which the service refuses before evaluating).
    public var constraint: String?

    public init(
        ruleKey: String, kind: String, subject: String, severity: RuleSeverity, message: String,
        references: [Reference], explanation: String, constraint: String? = nil
    ) {
        self.ruleKey = ruleKey
        self.kind = kind
        self.subject = subject
        self.severity = severity
        self.message = message
        self.references = references
        self.explanation = explanation
        self.constraint = constraint
    }

    /// The violation of an option's own constraint: rule key `option:<key>/<constraint>`,
    /// which no rule can have (rule keys hold no ':' or '/').
    static func constraint(_ problem: OptionValueProblem, option key: String, value: JSONValue, included: Bool) -> Violation {
        let constraint = problem.constraint ?? "type"
        return Violation(
            ruleKey: "option:\(key)/\(constraint)", kind: "constraint", subject: key, severity: .error,
            message: "\(key): \(problem.message)",
            references: [Reference(optionKey: key, included: included, value: value)],
            explanation: "\(key) [=\(value.canonicalText)]: \(problem.message)", constraint: constraint)
    }
}

/// An option the selection would have to add to satisfy `requires`, with the chain that needs it
/// (`chain.first` is an included option, `chain.last` is `optionKey`).
public struct ClosureEntry: Sendable, Hashable {
    public var optionKey: String
    public var chain: [String]

    public init(optionKey: String, chain: [String]) {
        self.optionKey = optionKey
        self.chain = chain
    }
}

/// A rule that adding the closure would violate.
public struct ClosureConflict: Sendable, Hashable {
    public var ruleKey: String
    public var kind: String
    /// The requires chain that brings in the offending option, then the rule's side.
    public var chain: [String]
    /// `hdr → 4k_output → hdmi_2_1 forbidden by legacy_mode`.
    public var explanation: String

    public init(ruleKey: String, kind: String, chain: [String], explanation: String) {
        self.ruleKey = ruleKey
        self.kind = kind
        self.chain = chain
        self.explanation = explanation
    }
}

public struct Evaluation: Sendable {
    /// No error-severity violation.
    public var valid: Bool
    /// The violations, in rule order (the options' own constraints first).
    public var violations: [Violation] {
        get {
            if fromDefaults.isEmpty { return ownViolations }
            return fromDefaults.map { $0 >= 0 ? defaultViolations[Int($0)] : ownViolations[Int(~$0)] }
        }
        set {
            ownViolations = newValue
            defaultViolations = []
            fromDefaults = []
        }
    }
    /// Options not yet on that `requires` rules (transitively, from subjects that are on) need
    /// turned on: included, and for a boolean also set to `true`.
    public var closure: [ClosureEntry]
    /// Forbidden/choice rules that adding the closure would violate; unknown options the closure needs.
    public var conflicts: [ClosureConflict]
    /// Keys the selection lists that are not in the catalog (ignored).
    public var unknownSelections: [String]

    public var errors: [Violation] { violations.filter { $0.severity == .error } }

    /// The violations this evaluation checked and the defaults do not have as they are
    /// (all of them when `fromDefaults` is empty).
    var ownViolations: [Violation]
    /// The defaults' violations (shared with the engine, not copied per evaluation).
    var defaultViolations: [Violation] = []
    /// For each violation in order: its position in `defaultViolations` when it is that
    /// one (its rule reads what it reads in the defaults), else `~k` for
    /// `ownViolations[k]`; empty when not tracked (then the violations are
    /// `ownViolations`). Lets a reply reuse what it encoded for the defaults.
    var fromDefaults: [Int32] = []
    /// The closure and its conflicts are the defaults' own.
    var closureFromDefaults = false

    init(
        valid: Bool, violations: [Violation], closure: [ClosureEntry], conflicts: [ClosureConflict], unknownSelections: [String]
    ) {
        self.valid = valid
        self.ownViolations = violations
        self.closure = closure
        self.conflicts = conflicts
        self.unknownSelections = unknownSelections
    }

    /// An evaluation whose violations are `fromDefaults` over `defaultViolations` and `own`.
    init(
        valid: Bool, own: [Violation], defaultViolations: [Violation], fromDefaults: [Int32], closure: [ClosureEntry],
        conflicts: [ClosureConflict], unknownSelections: [String], closureFromDefaults: Bool
    ) {
        self.valid = valid
        self.ownViolations = own
        self.defaultViolations = defaultViolations
        self.fromDefaults = fromDefaults
        self.closure = closure
        self.conflicts = conflicts
        self.unknownSelections = unknownSelections
        self.closureFromDefaults = closureFromDefaults
    }

    /// How many violations there are.
    var violationCount: Int { fromDefaults.isEmpty ? ownViolations.count : fromDefaults.count }
}

public final class RuleEngine: Sendable {
    enum Scope: Sendable {
        case option(Int)   // fires when that option is on
        case never         // subject is not in the catalog: never included, never fires
        case always        // choice rules, global validations
    }

    /// A class so that walking the rule list costs one retain per rule, not a struct copy.
    final class Compiled: Sendable {
        let rule: Rule
        let scope: Scope
        /// Listed options (requires/forbidden/choice targets, validation variables), index or nil if unknown.
        let targets: [Int?]
        let targetKeys: [String]
        /// Every option slot the rule's outcome and references read: the subject, the listed
        /// options, and for json-logic the option a dotted variable starts with.
        let slots: [Int]
        /// The rule reads options it does not name (json-logic with computed variable names).
        let dynamic: Bool
        /// The place of a removed rule, kept so that the rules after it keep their indices
        /// (inactive: in no index, never checked; left out of `rules`).
        let removed: Bool
        /// A validation's json-logic over option slots, when it is in the subset that form
        /// covers (`SlotLogic`).
        let slotLogic: SlotLogic?

        init(rule: Rule, indexOf: [String: Int]) {
            self.rule = rule
            removed = false
            switch rule.kind {
            case .choice: scope = .always
            case .validation where rule.subject == Rule.globalSubject: scope = .always
            default: scope = indexOf[rule.subject].map(Scope.option) ?? .never
            }
            targetKeys = rule.listedOptions
            targets = targetKeys.map { indexOf[$0] }
            var slots: [Int] = []
            slots.reserveCapacity(targets.count + 1)
            for case let target? in targets { slots.append(target) }
            if case .option(let subject) = scope { slots.append(subject) }
            var dynamic = false
            if case .validation(let logic) = rule.kind {
                dynamic = logic.usesDynamicVariables
                // json-logic reads `a.b` as the option `a.b`, else as the path `b` inside `a`.
                for name in targetKeys {
                    // The first "." as json-logic splits the name (by Character); for an
                    // ASCII name by its bytes, without walking grapheme clusters.
                    let dot = name.utf8.allSatisfy { $0 < 0x80 } ? name.utf8.firstIndex(of: UInt8(ascii: ".")) : name.firstIndex(of: ".")
                    if let dot, let first = indexOf[String(name[..<dot])] { slots.append(first) }
                }
            }
            slots.sort()
            var unique: [Int] = []
            unique.reserveCapacity(slots.count)
            for slot in slots where unique.last != slot { unique.append(slot) }
            self.slots = unique
            self.dynamic = dynamic
            if case .validation(let logic) = rule.kind { slotLogic = SlotLogic(logic.expression, indexOf: indexOf) } else { slotLogic = nil }
        }

        /// The place `entry` leaves when it is removed.
        init(removing entry: Compiled) {
            var rule = entry.rule
            rule.active = false
            self.rule = rule
            scope = entry.scope
            targets = entry.targets
            targetKeys = entry.targetKeys
            slots = entry.slots
            dynamic = entry.dynamic
            slotLogic = entry.slotLogic
            removed = true
        }

        /// The subject's option slot when the rule fires on one; -1 when it never fires
        /// (subject not in the catalog), -2 when it always applies.
        var scopeSlot: Int {
            switch scope {
            case .option(let slot): slot
            case .never: -1
            case .always: -2
            }
        }
    }

    /// The rules, in the order given (and changed: an added rule comes last).
    public var rules: [Rule] { compiled.compactMap { $0.removed ? nil : $0.rule } }
    public let catalog: CatalogModel

    let keys: [String]
    let indexOf: [String: Int]
    /// `indexOf` by a key's UTF-8 bytes, for requests read from the wire.
    let keyTable: OptionKeyTable
    let defaultIncluded: [Bool]
    let defaultValues: [JSONValue]
    /// Each option's type and constraints, by option index.
    let constraints: [OptionConstraints]
    /// Each option's type alone, by option index: what a request's values are read as,
    /// without loading each option's whole constraints.
    let valueTypes: [OptionValueType]
    /// Which options are booleans, and which the defaults turn on (`RuleEngine.isOn`), by
    /// option index.
    let isBoolean: [Bool]
    let defaultOn: [Bool]
    /// Whether an option is on when included at its default value (false only for a
    /// boolean whose default is not `true`), by option index.
    let onAtDefaultValue: [Bool]
    /// The compiled rules, with the places of rules removed by `applying` (`Compiled.removed`).
    let compiled: [Compiled]
    /// How many of `compiled` are removed rules' places.
    let removedCount: Int
    /// Each compiled rule's key's `hashValue`, so a change finds its rule comparing
    /// integers, not every key.
    let keyHashes: [Int]
    let index: RuleIndex
    /// The evaluation of the catalog defaults, which incremental evaluation starts from.
    let defaults: DefaultEvaluation
    /// Work arrays of the closure walk, reused between evaluations.
    let closureScratch = ClosureScratchPool()
    /// Per-option arrays selections are resolved into, reused between evaluations.
    let selectionScratch = SelectionScratchPool()

    /// Indices into `compiled` of active rules, ascending.
    var activeRules: [Int] { index.activeRules }
    /// Requires edges of active rules: option index → (target index or nil, target key, rule index).
    var requiresOut: SlotLists<(target: Int?, key: String, rule: Int)> { index.requiresOut }
    /// Active forbidden rules by subject option index; and by forbidden target index.
    var forbiddenBySubject: SlotLists<Int> { index.forbiddenBySubject }
    var forbiddenByTarget: SlotLists<Int> { index.forbiddenByTarget }
    /// Active choice rules by member option index.
    var choicesByMember: SlotLists<Int> { index.choicesByMember }

    /// Rule keys by every option they reference (subject or listed), all rules.
    public var rulesByOption: [String: [String]] {
        var byOption: [String: [String]] = [:]
        for rule in rules {
            var referenced = rule.listedOptions
            if case .choice = rule.kind {} else if rule.subject != Rule.globalSubject { referenced.append(rule.subject) }
            for key in Set(referenced) { byOption[key, default: []].append(rule.key) }
        }
        return byOption
    }

    public convenience init(rules: [Rule], catalog: CatalogModel) {
        let keys = catalog.optionKeys
        var indexOf: [String: Int] = [:]
        indexOf.reserveCapacity(keys.count)
        for (index, key) in keys.enumerated() { indexOf[key] = index }
        var defaultIncluded: [Bool] = []
        var defaultValues: [JSONValue] = []
        var constraints: [OptionConstraints] = []
        defaultIncluded.reserveCapacity(keys.count)
        defaultValues.reserveCapacity(keys.count)
        constraints.reserveCapacity(keys.count)
        for key in keys {
            // Every key of `optionKeys` has its option.
            guard let option = catalog.options[key] else { preconditionFailure("catalog option \(key) missing") }
            defaultIncluded.append(option.includedByDefault)
            defaultValues.append(option.defaultValue)
            constraints.append(option.constraints)
        }
        let compiled = rules.map { Compiled(rule: $0, indexOf: indexOf) }
        let isBoolean = constraints.map { $0.type == .boolean }
        let defaultOn = keys.indices.map {
            Self.isOn(included: defaultIncluded[$0], value: defaultValues[$0], boolean: isBoolean[$0])
        }
        let onAtDefaultValue = keys.indices.map { Self.isOn(included: true, value: defaultValues[$0], boolean: isBoolean[$0]) }
        let parts = Parts(
            catalog: catalog, keys: keys, indexOf: indexOf, keyTable: OptionKeyTable(keys), defaultIncluded: defaultIncluded,
            defaultValues: defaultValues, constraints: constraints, valueTypes: constraints.map(\.type), isBoolean: isBoolean, defaultOn: defaultOn,
            onAtDefaultValue: onAtDefaultValue, compiled: compiled, removedCount: 0, keyHashes: compiled.map(\.rule.key.hashValue),
            index: RuleIndex(compiled, optionCount: keys.count))
        let bare = RuleEngine(parts, defaults: DefaultEvaluation())
        self.init(parts, defaults: DefaultEvaluation(of: bare))
    }

    /// The engine after rule changes: shares the catalog side and the compiled forms in
    /// `compiled` that `previous` has, and checks only the other rules against the defaults.
    /// Removed rules' places in `compiled` are dropped.
    convenience init(_ previous: RuleEngine, compiled: [Compiled]) {
        let compiled = compiled.filter { !$0.removed }
        let parts = Parts(
            catalog: previous.catalog, keys: previous.keys, indexOf: previous.indexOf, keyTable: previous.keyTable,
            defaultIncluded: previous.defaultIncluded, defaultValues: previous.defaultValues,
            constraints: previous.constraints, valueTypes: previous.valueTypes, isBoolean: previous.isBoolean, defaultOn: previous.defaultOn,
            onAtDefaultValue: previous.onAtDefaultValue, compiled: compiled, removedCount: 0,
            keyHashes: compiled.map(\.rule.key.hashValue), index: RuleIndex(compiled, optionCount: previous.keys.count))
        let bare = RuleEngine(parts, defaults: DefaultEvaluation())
        self.init(parts, defaults: DefaultEvaluation(of: bare, reusing: previous.defaults, from: previous))
    }

    /// Everything but the default evaluation, which is computed with an engine built from them.
    struct Parts {
        var catalog: CatalogModel
        var keys: [String]
        var indexOf: [String: Int]
        var keyTable: OptionKeyTable
        var defaultIncluded: [Bool]
        var defaultValues: [JSONValue]
        var constraints: [OptionConstraints]
        var valueTypes: [OptionValueType]
        var isBoolean: [Bool]
        var defaultOn: [Bool]
        var onAtDefaultValue: [Bool]
        var compiled: [Compiled]
        var removedCount: Int
        var keyHashes: [Int]
        var index: RuleIndex
    }

    init(_ parts: Parts, defaults: DefaultEvaluation) {
        catalog = parts.catalog
        keys = parts.keys
        indexOf = parts.indexOf
        keyTable = parts.keyTable
        defaultIncluded = parts.defaultIncluded
        defaultValues = parts.defaultValues
        constraints = parts.constraints
        valueTypes = parts.valueTypes
        isBoolean = parts.isBoolean
        defaultOn = parts.defaultOn
        onAtDefaultValue = parts.onAtDefaultValue
        compiled = parts.compiled
        removedCount = parts.removedCount
        keyHashes = parts.keyHashes
        index = parts.index
        self.defaults = defaults
    }

    // MARK: - Selection state

    /// Whether an option is *on*, which is what rules trigger on and ask for: included, and
    /// for a boolean also `true` (as a Kconfig `bool` is on only at `y`). Options of other
    /// types are on when included.
    static func isOn(included: Bool, value: JSONValue?, boolean: Bool) -> Bool {
        guard included else { return false }
        guard boolean else { return true }
        if case .bool(true)? = value { return true }
        return false
    }

    /// A selection resolved against the catalog: inclusion and on-ness as flat arrays, values
    /// looked up on demand.
    struct State: SlotValues {
        var included: [Bool]
        /// `RuleEngine.isOn` of every option: what requires, forbidden, choice and the
        /// subject of a validation read.
        var on: [Bool]
        /// Where each option's given value is in `values` (-1: none); read only when
        /// `values` is not empty.
        var overrideAt: [Int32]
        /// The values the selection gives.
        var values: [JSONValue]
        let engine: RuleEngine

        /// A state without given values.
        init(included: [Bool], on: [Bool], engine: RuleEngine) {
            self.included = included
            self.on = on
            self.overrideAt = []
            self.values = []
            self.engine = engine
        }

        /// The state in a selection's work set, with the values it gives.
        init(_ scratch: SelectionScratchPool.Scratch, _ values: [JSONValue], engine: RuleEngine) {
            included = scratch.included
            on = scratch.on
            overrideAt = scratch.overrideAt
            self.values = values
            self.engine = engine
        }

        func isOn(_ index: Int?) -> Bool {
            guard let index else { return false }
            return on[index]
        }

        /// The value the selection gives the option, if any.
        func override(_ index: Int) -> JSONValue? {
            guard !values.isEmpty else { return nil }
            let at = overrideAt[index]
            return at >= 0 ? values[Int(at)] : nil
        }

        func value(_ index: Int) -> JSONValue {
            override(index) ?? engine.defaultValues[index]
        }

        /// What json-logic sees: effective value of included options (a boolean included at
        /// `false` reads `false`), nil for excluded or unknown ones.
        func lookup(_ key: String) -> JSONValue? {
            guard let index = engine.indexOf[key], included[index] else { return nil }
            return value(index)
        }

        /// `lookup` for a rule's json-logic: a variable the rule lists is found among its
        /// resolved targets (a few string comparisons), others by hashing the key.
        func lookup(_ key: String, listed entry: Compiled) -> JSONValue? {
            if let position = entry.targetKeys.firstIndex(of: key) {
                guard let index = entry.targets[position], included[index] else { return nil }
                return value(index)
            }
            return lookup(key)
        }

        /// What a rule's `SlotLogic` reads: the effective value of an included option.
        func includedValue(_ slot: Int) -> JSONValue? {
            included[slot] ? value(slot) : nil
        }

        func reference(_ key: String, _ index: Int?) -> Reference {
            guard let index else { return Reference(optionKey: key, included: false, value: nil, known: false) }
            let isIncluded = included[index]
            return Reference(optionKey: key, included: isIncluded, value: isIncluded ? value(index) : nil)
        }
    }

    /// The selection by option slot (keys resolved once; those the catalog does not have
    /// kept as unknown), to resolve with `withResolved`.
    func slotSelection(of selection: Selection) -> SlotSelection {
        var slots = SlotSelection(self)
        for (key, choice) in selection.choices {
            if let index = slot(ofKey: key) { slots.choose(index, choice) } else { slots.addUnknown(key) }
        }
        return slots
    }

    /// The slot of `key`, as `slot(of:)` finds it: first by its bytes in `keyTable`, whose
    /// hash costs a fraction of a String's in `indexOf` (a whole selection's keys are looked
    /// up per evaluation). A key those bytes miss is looked up in `indexOf` when it could
    /// still be a catalog key there: one holding a NUL (which the byte table leaves out) or
    /// a non-ASCII byte (another Unicode spelling of a key is the same String).
    func slot(ofKey key: String) -> Int? {
        if let slot = keyTable.slot(of: key) { return slot }
        return key.utf8.contains(where: { $0 == 0 || $0 >= 0x80 }) ? indexOf[key] : nil
    }

    /// `slotSelection(of:)` for choices already resolved to option slots: a later choice
    /// for a slot replaces an earlier one (as keys in a `Selection` do).
    func slotSelection(slots choices: [(slot: Int, choice: Selection.Choice)], unknown: [String]) -> SlotSelection {
        var selection = SlotSelection(self)
        for (slot, choice) in choices { selection.choose(slot, choice) }
        for key in unknown { selection.addUnknown(key) }
        return selection
    }

    // MARK: - Evaluate

    /// Checks every active rule against the selection. `evaluate` gives the same result
    /// from the default evaluation; this is its reference.
    public func evaluateFully(_ selection: Selection) -> Evaluation {
        withResolved(slotSelection(of: selection)) { state, unknown, changed in
            var violations = constraintViolations(state, changed)
            for ruleIndex in activeRules {
                if let violation = check(compiled[ruleIndex], state) { violations.append(violation) }
            }
            let (closure, conflicts) = closureAndConflicts(state)
            return Evaluation(
                valid: !violations.contains { $0.severity == .error },
                violations: violations, closure: closure, conflicts: conflicts, unknownSelections: unknown)
        }
    }

    /// Values the selection gives that their options' constraints do not allow, in catalog
    /// order. Every value given is checked, also of an option the selection leaves out;
    /// `changed` (ascending) holds every option given a value.
    func constraintViolations(_ state: State, _ changed: [Int]) -> [Violation] {
        guard !state.values.isEmpty else { return [] }
        var violations: [Violation] = []
        for index in changed {
            guard let value = state.override(index) else { continue }
            if plainlyAllowed(value, index) { continue }
            let constraints = constraints[index]
            let problems: [OptionValueProblem]
            do {
                problems = constraints.violations(of: try constraints.type.value(fromJSON: value))
            } catch {
                problems = [error]
            }
            for problem in problems {
                violations.append(.constraint(problem, option: keys[index], value: value, included: state.included[index]))
            }
        }
        return violations
    }

    /// A boolean for a boolean option, or an integer inside an integer option's bounds
    /// (without a step): what most values given are, told without converting the value or
    /// copying the constraints.
    @inline(__always)
    func plainlyAllowed(_ value: JSONValue, _ index: Int) -> Bool {
        switch value {
        case .bool: return isBoolean[index]
        case .integer(let number):
            return constraints.withUnsafeBufferPointer { all in
                guard all[index].type == .integer, all[index].step == nil else { return false }
                if let low = all[index].minimum, number < low { return false }
                if let high = all[index].maximum, number > high { return false }
                return true
            }
        default: return false
        }
    }

    /// The violation `entry` produces for `state`, if any.
    func check(_ entry: Compiled, _ state: State) -> Violation? {
        let rule = entry.rule
        switch entry.scope {
        case .never: return nil
        case .option(let subject): if !state.on[subject] { return nil }
        case .always: break
        }
        switch rule.kind {
        case .requires:
            guard entry.targets.contains(where: { !state.isOn($0) }) else { return nil }
            let refs = references(entry, state)
            var text = rule.subject
            text += " requires "
            appendList(refs.dropFirst(), to: &text)
            return violation(entry, refs, text)
        case .forbidden:
            guard entry.targets.contains(where: { state.isOn($0) }) else { return nil }
            let refs = references(entry, state)
            var text = rule.subject
            text += " forbids "
            appendList(refs.dropFirst(), to: &text)
            return violation(entry, refs, text)
        case .validation(let logic):
            let outcome: String?
            // Read in place (no copy of the compiled form), with the state as the reader.
            if let logic = entry.slotLogic, let passes = logic.passes(state) {
                // The same answer as `logic.evaluate`, read by slot.
                outcome = passes ? nil : "validation failed"
            } else {
                do {
                    let result = try logic.evaluate { state.lookup($0, listed: entry) }
                    outcome = JSONLogic.isTruthy(result) ? nil : "validation failed"
                } catch {
                    outcome = "validation error at \(error.path.isEmpty ? "logic" : error.path): \(error.message)"
                }
            }
            guard let outcome else { return nil }
            let refs = references(entry, state)
            var text = "\(rule.subject) \(outcome)"
            if !rule.message.isEmpty { text += " (\(rule.message))" }
            let shown = rule.subject == Rule.globalSubject ? refs[...] : refs.dropFirst()
            if !shown.isEmpty {
                text += ": "
                appendList(shown, to: &text)
            }
            return violation(entry, refs, text)
        case .choice(_, let optional):
            let count = entry.targets.reduce(0) { $0 + (state.isOn($1) ? 1 : 0) }
            if count == 1 || (optional && count == 0) { return nil }
            let refs = references(entry, state)
            var text = "choice "
            text += rule.subject
            text += optional ? " needs at most one of " : " needs exactly one of "
            appendList(refs[...], to: &text)
            text += " (\(count) on)"
            return violation(entry, refs, text)
        }
    }

    func references(_ entry: Compiled, _ state: State) -> [Reference] {
        var refs: [Reference] = []
        refs.reserveCapacity(entry.targets.count + 1)
        let hasSubject: Bool
        switch entry.rule.kind {
        case .choice: hasSubject = false
        default: hasSubject = entry.rule.subject != Rule.globalSubject
        }
        // The subject's slot is the scope's (a rule with a subject fires on it, or never).
        let subjectSlot = entry.scopeSlot
        if hasSubject { refs.append(state.reference(entry.rule.subject, subjectSlot >= 0 ? subjectSlot : nil)) }
        for (key, index) in zip(entry.targetKeys, entry.targets) {
            // A target that is the subject is listed once (keys are unique: same slot, same key).
            if hasSubject && (subjectSlot >= 0 ? index == subjectSlot : key == entry.rule.subject) { continue }
            refs.append(state.reference(key, index))
        }
        return refs
    }

    func violation(_ entry: Compiled, _ refs: [Reference], _ explanation: String) -> Violation {
        Violation(
            ruleKey: entry.rule.key, kind: entry.rule.kind.name, subject: entry.rule.subject,
            severity: entry.rule.severity, message: entry.rule.message, references: refs, explanation: explanation)
    }

    /// The requires chain from an option that is on to `node`, by the closure walk's parents.
    func chain(to node: Int, _ parentOf: [Int32]) -> [String] {
        var path = [keys[node]]
        var current = node
        while parentOf[current] >= 0 {
            current = Int(parentOf[current])
            path.append(keys[current])
        }
        return path.reversed()
    }

    /// The references' `kconfigText`, comma separated, appended to `text`.
    func appendList(_ refs: ArraySlice<Reference>, to text: inout String) {
        // Built as bytes and appended once (see `Reference.appendKconfigText`).
        var bytes: [UInt8] = []
        bytes.reserveCapacity(refs.count * 24)
        var first = true
        for ref in refs {
            if !first { bytes.append(contentsOf: ", ".utf8) }
            first = false
            ref.appendKconfigText(to: &bytes)
        }
        text += String(decoding: bytes, as: UTF8.self)
    }

    // MARK: - Closure

    /// The closure and its conflicts; with `reusing`, entries whose chain is the same as in
    /// that walk (same parent, recursively) are taken from it instead of built again.
    func closureAndConflicts(_ state: State, reusing defaults: DefaultEvaluation? = nil) -> ([ClosureEntry], [ClosureConflict]) {
        let walk = closureWalk(state, reusing: defaults)
        return (walk.outcome.closure, walk.outcome.conflicts)
    }

    /// `closureAndConflicts` (with the conflicts' keys), with the walk's parents by option
    /// index (-1: not added) and the options in the order the walk added them (the
    /// closure's order).
    func closureWalk(
        _ state: State, reusing defaults: DefaultEvaluation? = nil
    ) -> (outcome: ClosureOutcome, parentOf: [Int32], order: [Int]) {
        // BFS over requires edges from subjects that are on; parent links give each added
        // option's chain. An added option is one to turn on. Parents by option index in a
        // flat array (-1: not added): the walk visits every edge, a hash per edge shows.
        let count = keys.count
        var parentOf = [Int32](repeating: -1, count: count)
        // Whether a node's chain equals the one the defaults' walk gave it (then its closure
        // entry is the defaults' own).
        var sameChain = defaults == nil ? [] : [Bool](repeating: false, count: count)
        let defaultParent = defaults?.closureParent ?? []
        var order: [Int] = []
        var queue: [Int] = []
        var conflicts: [ClosureConflict] = []
        var unknownSeen = Set<String>()
        queue.reserveCapacity(index.requiresSubjects.count)
        for subject in index.requiresSubjects where state.on[subject] {
            queue.append(subject)
            if defaults != nil { sameChain[subject] = defaultParent[subject] < 0 }
        }
        let flat = index.requiresFlat
        let start = index.requiresStart
        var head = 0
        while head < queue.count {
            let node = queue[head]
            head += 1
            let first = Int(start[node])
            for position in 0..<(Int(start[node + 1]) - first) {
                let edgeTarget = flat[first + position]
                guard edgeTarget >= 0 else {
                    noteUnknownTarget(of: node, position, parentOf, &unknownSeen, &conflicts)
                    continue
                }
                let target = Int(edgeTarget)
                if state.on[target] || parentOf[target] >= 0 { continue }
                parentOf[target] = Int32(node)
                if defaults != nil { sameChain[target] = sameChain[node] && defaultParent[target] == Int32(node) }
                order.append(target)
                queue.append(target)
            }
        }
        // Conflicts are not taken from `defaults` here: a rule change walks again with the
        // previous engine's defaults, whose conflicts a changed rule may have made.
        let outcome = closureOutcome(
            state, order: order, parentOf: parentOf, sameChain: sameChain, reusing: defaults, reuseConflicts: false,
            conflicts: conflicts)
        return (outcome, parentOf, order)
    }

    /// A closure walk met the `position`th requires edge of `node`, whose target the
    /// catalog does not have: a conflict naming the chain to it, once per (node, target).
    func noteUnknownTarget(
        of node: Int, _ position: Int, _ parentOf: [Int32], _ unknownSeen: inout Set<String>, _ conflicts: inout [ClosureConflict]
    ) {
        let edge = index.requiresOut[node][position]
        guard unknownSeen.insert(keys[node] + "\u{0}" + edge.key).inserted else { return }
        let chain = chain(to: node, parentOf) + [edge.key]
        conflicts.append(ClosureConflict(
            ruleKey: compiled[edge.rule].rule.key, kind: "requires", chain: chain,
            explanation: chain.joined(separator: " → ") + " (unknown option)"))
    }
}
