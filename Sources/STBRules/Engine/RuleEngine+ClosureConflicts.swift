// The closure's entries and the forbidden/choice rules that adding it breaks. A sparse
// selection's closure is mostly the defaults' own: an entry whose chain is the defaults'
// is taken from them, and so is a conflict whose inputs are the defaults' (same rule, same
// added option with the same chain, the options it names on or off as there), found by its
// key in integers; only the others are built as text. When every entry and conflict is the
// defaults', the defaults' arrays are returned as they are.

/// Which conflict an added option brings, in integers: the rule (index into the compiled
/// rules), how, and for `forbids` the forbidden option's position in the rule's targets.
struct ClosureConflictKey: Equatable, Sendable {
    enum Kind: UInt8, Sendable {
        /// The added option is the subject of a forbidden rule one of whose targets is on.
        case forbids
        /// The added option is forbidden by a subject that is on.
        case forbiddenBy
        /// The added option makes more than one member of a choice on.
        case choice
    }

    var rule: Int32
    var kind: Kind
    var target: Int32
}

/// A closure and its conflicts, with what lets a later walk reuse them.
struct ClosureOutcome {
    var closure: [ClosureEntry] = []
    /// The walk's own conflicts (requires edges to unknown options, `walkedCount` of them),
    /// then the added options' conflicts.
    var conflicts: [ClosureConflict] = []
    var walkedCount = 0
    /// The key of each added option's conflict: `conflicts[walkedCount + k]` has `conflictKeys[k]`.
    var conflictKeys: [ClosureConflictKey] = []
    /// The keys of the conflicts the option at closure position `p` brings are
    /// `conflictKeys[conflictStart[p]..<conflictStart[p + 1]]`.
    var conflictStart: [Int32] = [0]
    /// The closure and the conflicts are those of the defaults' evaluation it reused.
    var isDefaults = false
}

extension RuleEngine {
    /// The closure entries of the options a walk added (`order`, with the walk's
    /// `parentOf`; entries whose `sameChain` is set are taken from `defaults`), and the
    /// forbidden/choice rules adding them breaks, after the walk's `conflicts`. With
    /// `reuseConflicts`, `defaults` must be this engine's: its conflicts whose inputs are
    /// unchanged are taken over.
    func closureOutcome(
        _ state: State, order: [Int], parentOf: [Int32], sameChain: [Bool], reusing defaults: DefaultEvaluation?,
        reuseConflicts: Bool, conflicts walked: [ClosureConflict]
    ) -> ClosureOutcome {
        var outcome = ClosureOutcome()
        outcome.conflicts = walked
        outcome.walkedCount = walked.count
        outcome.conflictStart.reserveCapacity(order.count + 1)

        // The defaults' arrays, read once here rather than through the optional per option.
        let defaultClosure = defaults?.closure ?? []
        // Parent and position together: the walk just read the parent of each option added.
        let defaultPosition = defaults?.closureParentAndPosition ?? []
        let hasDefaults = defaults != nil
        var closureIsDefaults = false
        if reuseConflicts, hasDefaults, order.count == defaultClosure.count, order.allSatisfy({ sameChain[$0] }) {
            // The same options with the same chains, hence in the same order: the walk
            // follows an option's edges in the same order as the defaults' walk on the same
            // engine (not so after a rule change, which can reorder an option's edges).
            outcome.closure = defaultClosure
            closureIsDefaults = true
        } else {
            outcome.closure.reserveCapacity(order.count)
            for added in order {
                if hasDefaults, sameChain[added] {
                    outcome.closure.append(defaultClosure[Int(defaultPosition[added].y)])
                } else {
                    outcome.closure.append(ClosureEntry(optionKey: keys[added], chain: chain(to: added, parentOf)))
                }
            }
        }

        let reused = reuseConflicts ? defaults : nil
        // Whether every conflict so far is the defaults' at the same place.
        var conflictsAreDefaults = false
        if let reused, reused.walkedConflictCount == walked.count {
            conflictsAreDefaults = walked.isEmpty || reused.conflicts[..<walked.count].elementsEqual(walked)
        }
        let defaultParent = reused?.closureParent ?? []
        let defaultKeys = reused?.conflictKeys ?? []
        let defaultConflicts = reused?.conflicts ?? []
        let defaultWalked = reused?.walkedConflictCount ?? 0
        let defaultConflictStart = reused?.conflictStart ?? []
        let isReused = reused != nil
        let defaultOn = self.defaultOn
        let conflictNode = index.conflictNode

        // On after adding the closure: on now, or added (the walk set a parent).
        func on(_ index: Int?) -> Bool {
            guard let index else { return false }
            return state.on[index] || parentOf[index] >= 0
        }
        /// Whether the option in `slot` is on after adding the closure as it is for the defaults.
        func onAsInDefaults(_ slot: Int) -> Bool {
            on(slot) == (defaultOn[slot] || defaultParent[slot] >= 0)
        }
        /// Appends the conflict with `key`: the defaults' one in `candidates` when `reusable`, else `make()`.
        func add(_ key: ClosureConflictKey, _ candidates: Range<Int>, reusable: Bool, _ make: () -> ClosureConflict) {
            var found = -1
            if reusable, isReused {
                for position in candidates where defaultKeys[position] == key {
                    found = position
                    break
                }
                if found >= 0 {
                    outcome.conflicts.append(defaultConflicts[defaultWalked + found])
                }
            }
            if found < 0 { outcome.conflicts.append(make()) }
            if found != outcome.conflictKeys.count { conflictsAreDefaults = false }
            outcome.conflictKeys.append(key)
        }

        var seenRules = Set<Int>()
        let forbiddenBySubject = index.forbiddenBySubject
        let forbiddenByTarget = index.forbiddenByTarget
        let choicesByMember = index.choicesByMember
        for (position, added) in order.enumerated() {
            if position > 0 { outcome.conflictStart.append(Int32(outcome.conflictKeys.count)) }
            guard conflictNode[added] else { continue }
            let subjectRules = forbiddenBySubject[added]
            let targetRules = forbiddenByTarget[added]
            let choiceRules = choicesByMember[added]
            if subjectRules.isEmpty && targetRules.isEmpty && choiceRules.isEmpty { continue }
            // The defaults' conflicts at `added`, when its chain is theirs.
            var candidates = 0..<0
            if isReused, sameChain[added] {
                let at = Int(defaultPosition[added].y)
                candidates = Int(defaultConflictStart[at])..<Int(defaultConflictStart[at + 1])
            }
            // The chain is the closure entry's; its text only when a conflict needs it.
            let addedChain = outcome.closure[position].chain
            // `added` is the subject of a forbidden rule whose target is on.
            for ruleIndex in subjectRules {
                let entry = compiled[ruleIndex]
                for (targetPosition, (target, key)) in zip(entry.targets, entry.targetKeys).enumerated() where on(target) {
                    guard let target else { continue }
                    // The text names the chain that adds the target, if one does.
                    let sameTail = isReused && (parentOf[target] >= 0 ? sameChain[target] : defaultParent[target] < 0)
                    let conflictKey = ClosureConflictKey(rule: Int32(ruleIndex), kind: .forbids, target: Int32(targetPosition))
                    add(conflictKey, candidates, reusable: sameTail) {
                        let targetChain = parentOf[target] >= 0 ? chain(to: target, parentOf) : nil
                        let tail = targetChain.map { " (via " + $0.joined(separator: " → ") + ")" } ?? ""
                        return ClosureConflict(
                            ruleKey: entry.rule.key, kind: "forbidden", chain: addedChain + ["forbids " + key],
                            explanation: addedChain.joined(separator: " → ") + " forbids \(key)" + tail)
                    }
                }
            }
            // `added` is forbidden by an on subject (not itself added: that case is reported above).
            for ruleIndex in targetRules {
                let entry = compiled[ruleIndex]
                guard case .option(let subject) = entry.scope, state.on[subject] else { continue }
                add(ClosureConflictKey(rule: Int32(ruleIndex), kind: .forbiddenBy, target: 0), candidates, reusable: true) {
                    ClosureConflict(
                        ruleKey: entry.rule.key, kind: "forbidden", chain: addedChain + ["forbidden by " + entry.rule.subject],
                        explanation: addedChain.joined(separator: " → ") + " forbidden by \(entry.rule.subject)")
                }
            }
            for ruleIndex in choiceRules where !seenRules.contains(ruleIndex) {
                let entry = compiled[ruleIndex]
                var onCount = 0
                for target in entry.targets where on(target) { onCount += 1 }
                guard onCount > 1 else { continue }
                seenRules.insert(ruleIndex)
                // The text names the members that are on.
                let sameMembers = isReused && entry.targets.allSatisfy { $0.map(onAsInDefaults) ?? true }
                add(ClosureConflictKey(rule: Int32(ruleIndex), kind: .choice, target: 0), candidates, reusable: sameMembers) {
                    let members = zip(entry.targets, entry.targetKeys).filter { on($0.0) }
                    let others = members.map(\.1).filter { $0 != keys[added] }
                    return ClosureConflict(
                        ruleKey: entry.rule.key, kind: "choice", chain: addedChain + ["choice " + entry.rule.subject],
                        explanation: addedChain.joined(separator: " → ")
                            + " conflicts in choice \(entry.rule.subject) with " + others.joined(separator: ", "))
                }
            }
        }
        if !order.isEmpty { outcome.conflictStart.append(Int32(outcome.conflictKeys.count)) }

        if let reused, closureIsDefaults, conflictsAreDefaults, outcome.conflictKeys.count == defaultKeys.count {
            outcome.conflicts = reused.conflicts
            outcome.isDefaults = true
        }
        return outcome
    }
}
