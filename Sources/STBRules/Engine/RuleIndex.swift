// The engine's indexes over compiled rules, by option slot. Built from the compiled rules
// alone (their targets are already resolved to slots), so a rule change patches them
// without compiling or hashing anything again: the per-slot lists are chunked
// (`SlotLists`), so a change copies only the chunks of the slots its rule reads, and the
// flat requires edges move only past the changed subject's.

/// Active rules by the option slots they read, and the edges the closure walks.
struct RuleIndex: Sendable {
    /// Indices into the compiled rules of active rules, ascending.
    var activeRules: [Int] = []
    /// Requires edges of active rules: option index → (target index or nil, target key, rule
    /// index), by rule index.
    var requiresOut: SlotLists<(target: Int?, key: String, rule: Int)>
    /// Active forbidden rules by subject option index; and by forbidden target index.
    var forbiddenBySubject: SlotLists<Int>
    var forbiddenByTarget: SlotLists<Int>
    /// Active choice rules by member option index.
    var choicesByMember: SlotLists<Int>
    /// Active rules whose outcome reads each option, ascending, without duplicates.
    var touching: SlotLists<Int>
    /// Active rules that read options they do not name (json-logic with computed variable
    /// names): rechecked for every selection.
    var everywhere: [Int] = []
    /// `requiresOut`'s targets (-1: not in the catalog), flattened: option `o`'s are
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
    /// A superset after changes (an option keeps it when its last edge goes), which only
    /// makes the closure recomputed more often.
    var requiresNode: [Bool]
    /// Options with requires edges out of them, ascending (after changes, also some whose
    /// last edge went: the walk finds no edges there).
    var requiresSubjects: [Int] = []
    /// Options in `forbiddenBySubject`, `forbiddenByTarget` or `choicesByMember`: a closure
    /// entry elsewhere brings no conflict, which one flat read tells. A superset after
    /// changes (an option keeps it when its last such rule goes).
    var conflictNode: [Bool]

    init(_ compiled: [RuleEngine.Compiled], optionCount: Int) {
        requiresOut = SlotLists(count: optionCount)
        forbiddenBySubject = SlotLists(count: optionCount)
        forbiddenByTarget = SlotLists(count: optionCount)
        choicesByMember = SlotLists(count: optionCount)
        touching = SlotLists(count: optionCount)
        requiresNode = Array(repeating: false, count: optionCount)
        conflictNode = Array(repeating: false, count: optionCount)
        var hasEdges = Array(repeating: false, count: optionCount)
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
                        hasEdges[subject] = true
                        requiresNode[subject] = true
                        if let target { requiresNode[target] = true }
                    }
                }
            case .forbidden:
                if case .option(let subject) = entry.scope {
                    forbiddenBySubject[subject].append(ruleIndex)
                    conflictNode[subject] = true
                    for case let target? in entry.targets where forbiddenByTarget[target].last != ruleIndex {
                        forbiddenByTarget[target].append(ruleIndex)
                        conflictNode[target] = true
                    }
                }
            case .choice:
                for case let member? in entry.targets where choicesByMember[member].last != ruleIndex {
                    choicesByMember[member].append(ruleIndex)
                    conflictNode[member] = true
                }
            case .validation: break
            }
        }
        requiresSubjects = hasEdges.indices.filter { hasEdges[$0] }
        requiresStart.reserveCapacity(optionCount + 1)
        requiresStart.append(0)
        var next = 0
        for option in 0..<optionCount {
            if next < requiresSubjects.count, requiresSubjects[next] == option {
                next += 1
                for edge in requiresOut[option] {
                    requiresFlat.append(Int32(edge.target ?? -1))
                    requiresFrom.append(Int32(option))
                }
            }
            requiresStart.append(Int32(requiresFlat.count))
        }
        indexEdgesInto()
    }

    /// Rebuilds `requiresFlat` and `requiresFrom` at `subject` from `requiresOut[subject]`,
    /// moving the later options' edges, then the edges into each option.
    mutating func reflattenRequires(of subject: Int) {
        let lower = Int(requiresStart[subject])
        let upper = Int(requiresStart[subject + 1])
        let edges = requiresOut[subject]
        requiresFlat.replaceSubrange(lower..<upper, with: edges.map { Int32($0.target ?? -1) })
        requiresFrom.replaceSubrange(lower..<upper, with: repeatElement(Int32(subject), count: edges.count))
        let shift = Int32(edges.count - (upper - lower))
        if shift != 0 {
            requiresStart.withUnsafeMutableBufferPointer { start in
                for option in (subject + 1)..<start.count { start[option] &+= shift }
            }
        }
        indexEdgesInto()
    }

    /// `requiresInto` and `requiresIntoStart` from `requiresFlat` (a counting sort: plain
    /// integers, no array per option).
    private mutating func indexEdgesInto() {
        let optionCount = requiresStart.count - 1
        var incoming = [Int32](repeating: 0, count: optionCount + 1)
        for target in requiresFlat where target >= 0 { incoming[Int(target) + 1] += 1 }
        for option in 0..<optionCount { incoming[option + 1] += incoming[option] }
        var into = [Int32](repeating: 0, count: Int(incoming[optionCount]))
        var next = incoming
        for (edge, target) in requiresFlat.enumerated() where target >= 0 {
            into[Int(next[Int(target)])] = Int32(edge)
            next[Int(target)] += 1
        }
        requiresInto = into
        requiresIntoStart = incoming
    }
}

extension RuleIndex {
    /// Whether `old` and `new` (at the same position) are in the same lists: both inactive,
    /// or active with the same kind, subject slot, targets and slots read (a change of
    /// severity, message, or a validation's logic over the same options).
    static func sameLists(_ old: RuleEngine.Compiled, _ new: RuleEngine.Compiled) -> Bool {
        guard old.rule.active == new.rule.active else { return false }
        guard new.rule.active else { return true }
        guard old.dynamic == new.dynamic, old.slots == new.slots, old.targets == new.targets, old.targetKeys == new.targetKeys,
              old.scopeSlot == new.scopeSlot
        else { return false }
        switch (old.rule.kind, new.rule.kind) {
        case (.requires, .requires), (.forbidden, .forbidden), (.choice, .choice), (.validation, .validation): return true
        default: return false
        }
    }

    /// Takes rule `ruleIndex` out of every list. Options keep `requiresNode`, `conflictNode`
    /// and their place in `requiresSubjects` (supersets).
    mutating func remove(_ entry: RuleEngine.Compiled, at ruleIndex: Int) {
        guard entry.rule.active else { return }
        Self.remove(ruleIndex, from: &activeRules)
        if entry.dynamic { Self.remove(ruleIndex, from: &everywhere) }
        for slot in entry.slots { Self.remove(ruleIndex, from: &touching[slot]) }
        switch entry.rule.kind {
        case .requires:
            if case .option(let subject) = entry.scope {
                requiresOut[subject].removeAll { $0.rule == ruleIndex }
                reflattenRequires(of: subject)
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
                reflattenRequires(of: subject)
                if !edges.isEmpty {
                    requiresNode[subject] = true
                    Self.insert(subject, into: &requiresSubjects)
                }
                for case let target? in entry.targets { requiresNode[target] = true }
            }
        case .forbidden:
            if case .option(let subject) = entry.scope {
                Self.insert(ruleIndex, into: &forbiddenBySubject[subject])
                conflictNode[subject] = true
                for case let target? in entry.targets {
                    Self.insert(ruleIndex, into: &forbiddenByTarget[target])
                    conflictNode[target] = true
                }
            }
        case .choice:
            for case let member? in entry.targets {
                Self.insert(ruleIndex, into: &choicesByMember[member])
                conflictNode[member] = true
            }
        case .validation: break
        }
    }

    /// From an ascending list, once.
    private static func remove(_ value: Int, from list: inout [Int]) {
        let at = position(of: value, in: list)
        if at < list.count, list[at] == value { list.remove(at: at) }
    }

    /// Into an ascending list, once.
    private static func insert(_ value: Int, into list: inout [Int]) {
        let at = position(of: value, in: list)
        if at < list.count, list[at] == value { return }
        list.insert(value, at: at)
    }

    /// The first position in an ascending list whose value is not below `value`.
    static func position(of value: Int, in list: [Int]) -> Int {
        var low = 0
        var high = list.count
        while low < high {
            let middle = (low + high) / 2
            if list[middle] < value { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
