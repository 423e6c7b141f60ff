// The engine's indexes over compiled rules, by option slot. Built from the compiled rules
// alone (their targets are already resolved to slots), so a rule change rebuilds them
// without compiling or hashing anything again.

/// Active rules by the option slots they read, and the edges the closure walks.
struct RuleIndex: Sendable {
    /// Indices into the compiled rules of active rules, ascending.
    var activeRules: [Int] = []
    /// Requires edges of active rules: option index → (target index or nil, target key, rule index).
    var requiresOut: [[(target: Int?, key: String, rule: Int)]]
    /// `requiresOut`'s targets alone (-1: not in the catalog), which the closure walk reads
    /// without touching the keys.
    var requiresTargets: [[Int32]]
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
    /// `requiresTargets` flattened: option `o`'s targets are
    /// `requiresFlat[requiresStart[o]..<requiresStart[o + 1]]`, so the closure walk reads
    /// them without touching an array per option.
    var requiresFlat: [Int32] = []
    var requiresStart: [Int32] = []
    /// The option each `requiresFlat` edge leaves from.
    var requiresFrom: [Int32] = []
    /// Edges into each option, as `requiresFlat` positions ascending: option `o`'s are
    /// `requiresInto[requiresIntoStart[o]..<requiresIntoStart[o + 1]]`.
    var requiresInto: [Int32] = []
    var requiresIntoStart: [Int32] = []
    /// Options with requires edges in or out of them: their inclusion shapes the closure.
    var requiresNode: [Bool]
    /// Options with requires edges out of them, ascending.
    var requiresSubjects: [Int] = []

    init(_ compiled: [RuleEngine.Compiled], optionCount: Int) {
        requiresOut = Array(repeating: [], count: optionCount)
        requiresTargets = Array(repeating: [], count: optionCount)
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
                        requiresTargets[subject].append(Int32(target ?? -1))
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
        flattenRequires()
    }

    /// Rebuilds `requiresFlat`, `requiresStart`, `requiresFrom` and the edges into each
    /// option from `requiresTargets`.
    mutating func flattenRequires() {
        var flat: [Int32] = []
        var start: [Int32] = []
        var from: [Int32] = []
        start.reserveCapacity(requiresTargets.count + 1)
        start.append(0)
        var incoming = [Int32](repeating: 0, count: requiresTargets.count + 1)
        for (source, targets) in requiresTargets.enumerated() {
            flat.append(contentsOf: targets)
            from.append(contentsOf: repeatElement(Int32(source), count: targets.count))
            start.append(Int32(flat.count))
            for target in targets where target >= 0 { incoming[Int(target) + 1] += 1 }
        }
        for option in requiresTargets.indices { incoming[option + 1] += incoming[option] }
        var into = [Int32](repeating: 0, count: flat.count)
        var next = incoming
        for (edge, target) in flat.enumerated() where target >= 0 {
            into[Int(next[Int(target)])] = Int32(edge)
            next[Int(target)] += 1
        }
        into.removeLast(flat.count - Int(incoming[requiresTargets.count]))
        requiresFlat = flat
        requiresStart = start
        requiresFrom = from
        requiresInto = into
        requiresIntoStart = incoming
    }
}

extension RuleIndex {
    /// Takes rule `ruleIndex` out of every list. Options keep `requiresNode` (a superset
    /// only makes the closure recomputed more often).
    mutating func remove(_ entry: RuleEngine.Compiled, at ruleIndex: Int) {
        guard entry.rule.active else { return }
        Self.remove(ruleIndex, from: &activeRules)
        if entry.dynamic { Self.remove(ruleIndex, from: &everywhere) }
        for slot in entry.slots { Self.remove(ruleIndex, from: &touching[slot]) }
        switch entry.rule.kind {
        case .requires:
            if case .option(let subject) = entry.scope {
                requiresOut[subject].removeAll { $0.rule == ruleIndex }
                requiresTargets[subject] = requiresOut[subject].map { Int32($0.target ?? -1) }
                flattenRequires()
            }
        case .forbidden:
            if case .option(let subject) = entry.scope {
                Self.remove(ruleIndex, from: &forbiddenBySubject[subject])
                for case let target? in entry.targets { Self.remove(ruleIndex, from: &forbiddenByTarget[target]) }
            }
        case .choice:
            for case let member? in entry.targets { Self.remove(ruleIndex, from: &choicesByMember[member]) }
        case .validation: break
        }
    }

    /// Puts rule `ruleIndex` into every list it belongs to, in rule order.
    mutating func insert(_ entry: RuleEngine.Compiled, at ruleIndex: Int) {
        guard entry.rule.active else { return }
        Self.insert(ruleIndex, into: &activeRules)
        if entry.dynamic { Self.insert(ruleIndex, into: &everywhere) }
        for slot in entry.slots { Self.insert(ruleIndex, into: &touching[slot]) }
        switch entry.rule.kind {
        case .requires:
            if case .option(let subject) = entry.scope {
                let at = requiresOut[subject].firstIndex { $0.rule > ruleIndex } ?? requiresOut[subject].endIndex
                let edges = zip(entry.targets, entry.targetKeys).map { (target: $0.0, key: $0.1, rule: ruleIndex) }
                requiresOut[subject].insert(contentsOf: edges, at: at)
                requiresTargets[subject] = requiresOut[subject].map { Int32($0.target ?? -1) }
                flattenRequires()
                requiresNode[subject] = true
                for case let target? in entry.targets { requiresNode[target] = true }
                Self.insert(subject, into: &requiresSubjects)
            }
        case .forbidden:
            if case .option(let subject) = entry.scope {
                Self.insert(ruleIndex, into: &forbiddenBySubject[subject])
                for case let target? in entry.targets { Self.insert(ruleIndex, into: &forbiddenByTarget[target]) }
            }
        case .choice:
            for case let member? in entry.targets { Self.insert(ruleIndex, into: &choicesByMember[member]) }
        case .validation: break
        }
    }

    private static func remove(_ value: Int, from list: inout [Int]) {
        if let at = list.firstIndex(of: value) { list.remove(at: at) }
    }

    /// Into an ascending list, once.
    private static func insert(_ value: Int, into list: inout [Int]) {
        var low = 0
        var high = list.count
        while low < high {
            let middle = (low + high) / 2
            if list[middle] < value { low = middle + 1 } else { high = middle }
        }
        if low < list.count, list[low] == value { return }
        list.insert(value, at: low)
    }
}
