// The engine's indexes over compiled rules, by option slot. Built from the compiled rules
// alone (their targets are already resolved to slots), so a rule change rebuilds them
// without compiling or hashing anything again.

/// Active rules by the option slots they read, and the edges the closure walks.
struct RuleIndex: Sendable {
    /// Indices into the compiled rules of active rules, ascending.
    var activeRules: [Int] = []
    /// Requires edges of active rules: option index → (target index or nil, target key, rule index).
    var requiresOut: [[(target: Int?, key: String, rule: Int)]]
    /// Active forbidden rules by subject option index; and by forbidden target index.
    var forbiddenBySubject: [[Int]]
    var forbiddenByTarget: [[Int]]
    /// Active choice rules by member option index.
    var choicesByMember: [[Int]]
    /// Active rules whose outcome reads each option, ascending, without duplicates.
    var touching: [[Int]]
    /// Active rules that read options they do not name (json-logic with computed variable
    /// names): rechecked for every selection.
    var everywhere: [Int] = []
    /// Options with requires edges in or out of them: their inclusion shapes the closure.
    var requiresNode: [Bool]
    /// Options with requires edges out of them, ascending.
    var requiresSubjects: [Int] = []

    init(_ compiled: [RuleEngine.Compiled], optionCount: Int) {
        requiresOut = Array(repeating: [], count: optionCount)
        forbiddenBySubject = Array(repeating: [], count: optionCount)
        forbiddenByTarget = Array(repeating: [], count: optionCount)
        choicesByMember = Array(repeating: [], count: optionCount)
        touching = Array(repeating: [], count: optionCount)
        requiresNode = Array(repeating: false, count: optionCount)
        for (ruleIndex, entry) in compiled.enumerated() where entry.rule.active {
            activeRules.append(ruleIndex)
            if entry.dynamic { everywhere.append(ruleIndex) }
            for slot in entry.slots where touching[slot].last != ruleIndex {
                touching[slot].append(ruleIndex)
            }
            switch entry.rule.kind {
            case .requires:
                if case .option(let subject) = entry.scope {
                    for (target, key) in zip(entry.targets, entry.targetKeys) {
                        requiresOut[subject].append((target, key, ruleIndex))
                        requiresNode[subject] = true
                        if let target { requiresNode[target] = true }
                    }
                }
            case .forbidden:
                if case .option(let subject) = entry.scope {
                    forbiddenBySubject[subject].append(ruleIndex)
                    for case let target? in entry.targets { forbiddenByTarget[target].append(ruleIndex) }
                }
            case .choice:
                for case let member? in entry.targets { choicesByMember[member].append(ruleIndex) }
            case .validation: break
            }
        }
        requiresSubjects = requiresOut.indices.filter { !requiresOut[$0].isEmpty }
    }
}
