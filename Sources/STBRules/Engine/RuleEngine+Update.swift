// Rule changes: the engine after one rule is added, replaced or removed touches only what
// depends on that rule. The other rules keep their compiled form, their place (a removed
// rule leaves an inactive place behind, so no index is renumbered) and their answers for
// the defaults; the indexes change at the slots the rule reads; the defaults' closure is
// walked again only when the rule's edges or conflicts can reach it.

extension RuleEngine {
    /// Removed rules' places are dropped (the engine rebuilt from its compiled rules) once
    /// they are more than this share of `compiled` (and at least `compactionMinimum`).
    static let compactionShare = 4
    static let compactionMinimum = 64

    /// The engine with `change` applied (as `RuleChange.apply` changes the rule list): only
    /// the changed rule is compiled and checked against the defaults.
    public func applying(_ change: RuleChange) -> RuleEngine {
        switch change {
        case .add(let rule):
            return patched(at: compiled.count, with: Compiled(rule: rule, indexOf: indexOf))
        case .remove(let key):
            let found = positions(of: key)
            if found.isEmpty { return self }
            if found.count == 1 { return patched(at: found[0], with: Compiled(removing: compiled[found[0]])) }
            return RuleEngine(self, compiled: compiled.filter { $0.removed || $0.rule.key != key })
        case .replace(let rule):
            let found = positions(of: rule.key)
            if found.count <= 1 { return patched(at: found.first ?? compiled.count, with: Compiled(rule: rule, indexOf: indexOf)) }
            // The first rule with the key is replaced, later ones dropped.
            var kept: [Compiled] = []
            kept.reserveCapacity(compiled.count)
            for (position, entry) in compiled.enumerated() where !found.dropFirst().contains(position) {
                kept.append(position == found[0] ? Compiled(rule: rule, indexOf: indexOf) : entry)
            }
            return RuleEngine(self, compiled: kept)
        }
    }

    /// The positions in `compiled` of the rules (not removed) with `key`.
    func positions(of key: String) -> [Int] {
        let hash = key.hashValue
        var found: [Int] = []
        keyHashes.withUnsafeBufferPointer { hashes in
            for position in hashes.indices where hashes[position] == hash {
                let entry = compiled[position]
                if entry.rule.key == key && !entry.removed { found.append(position) }
            }
        }
        return found
    }

    /// The engine with `entry` at `position` (replacing the rule there, or appended at the
    /// end): the indexes and the defaults' evaluation are patched, no other rule is touched.
    func patched(at position: Int, with entry: Compiled) -> RuleEngine {
        var compiled = self.compiled
        var index = self.index
        var removedCount = self.removedCount
        var keyHashes = self.keyHashes
        let old: Compiled?
        if position == compiled.count {
            old = nil
            compiled.append(entry)
            keyHashes.append(entry.rule.key.hashValue)
        } else {
            old = compiled[position]
            compiled[position] = entry
        }
        if entry.removed { removedCount += 1 }
        if removedCount >= Self.compactionMinimum, removedCount * Self.compactionShare > compiled.count {
            return RuleEngine(self, compiled: compiled)
        }
        if let old, RuleIndex.sameLists(old, entry) {
            // Same slots, same edges: the indexes hold rule indices only, and stay.
        } else {
            if let old { index.remove(old, at: position) }
            index.insert(entry, at: position)
        }
        let parts = Parts(
            catalog: catalog, keys: keys, indexOf: indexOf, keyTable: keyTable, defaultIncluded: defaultIncluded,
            defaultValues: defaultValues, constraints: constraints, valueTypes: valueTypes, isBoolean: isBoolean, defaultOn: defaultOn,
            onAtDefaultValue: onAtDefaultValue, compiled: compiled, removedCount: removedCount, keyHashes: keyHashes, index: index)
        let bare = RuleEngine(parts, defaults: DefaultEvaluation())
        return RuleEngine(parts, defaults: DefaultEvaluation(of: bare, patching: defaults, at: position, old: old, new: entry))
    }

    /// The engine for `rules` on the same catalog: a rule whose key is not in `changedKeys`
    /// and that this engine has (under a unique key) keeps its compiled form and its answer
    /// for the defaults; the others are compiled and checked.
    public func replacingRules(_ rules: [Rule], changedKeys: Set<String>) -> RuleEngine {
        var byKey: [String: Compiled] = [:]
        byKey.reserveCapacity(compiled.count)
        var duplicated = Set<String>()
        for entry in compiled where !entry.removed && byKey.updateValue(entry, forKey: entry.rule.key) != nil {
            duplicated.insert(entry.rule.key)
        }
        let reused = rules.map { rule in
            if !changedKeys.contains(rule.key), !duplicated.contains(rule.key), let entry = byKey[rule.key] { return entry }
            return Compiled(rule: rule, indexOf: indexOf)
        }
        return RuleEngine(self, compiled: reused)
    }

    /// The catalog defaults as a resolved selection (no copy of the engine's arrays).
    var defaultState: State {
        State(included: defaultIncluded, on: defaultOn, engine: self)
    }
}

extension DefaultEvaluation {
    /// `previous` with the rule at `position` changed from `old` (nil: appended) to `new`
    /// (which may be a removed rule's place): only that rule is checked. The closure is
    /// walked again only when either rule can change it: a requires rule whose subject is on
    /// or in the closure, a forbidden or choice rule that reads an option in the closure.
    init(of engine: RuleEngine, patching previous: DefaultEvaluation, at position: Int, old: RuleEngine.Compiled?, new: RuleEngine.Compiled) {
        self = previous
        let state = engine.defaultState
        var at = 0
        var high = violations.count
        while at < high {
            let middle = (at + high) / 2
            if violations[middle].rule < position { at = middle + 1 } else { high = middle }
        }
        let violation = new.rule.active ? engine.check(new, state) : nil
        if at < violations.count, violations[at].rule == position {
            if let violation { violations[at].violation = violation } else { violations.remove(at: at) }
        } else if let violation {
            violations.insert((position, violation), at: at)
        }
        if Self.sameForClosure(old, new) {
            // Severity or message: the closure and its conflicts do not read them.
        } else if reachesClosure(old, engine) || reachesClosure(new, engine) {
            computeClosure(engine, state, reusing: previous)
        } else if Self.movesEdges(old) || Self.movesEdges(new) {
            // The defaults' walk does not follow the rule's edges, but edges after its
            // subject's moved in `requiresFlat`; its options now shape the closure.
            computeFrontier(engine, state)
            for slot in new.slots where new.rule.active { closureInputs[slot] = true }
        }
        finish()
    }

    /// The requires edges the defaults' walk follows first (`closureFrontier`).
    mutating func computeFrontier(_ engine: RuleEngine, _ state: RuleEngine.State) {
        let flat = engine.index.requiresFlat
        let from = engine.index.requiresFrom
        closureFrontier = flat.indices.compactMap { edge in
            let target = flat[edge]
            return state.on[Int(from[edge])] && (target < 0 || !state.on[Int(target)]) ? Int32(edge) : nil
        }
    }

    /// Whether the defaults' closure or its conflicts read `entry`: a requires rule whose
    /// subject is on or added by the closure (the walk follows its edges), a forbidden or
    /// choice rule that reads an option the closure adds.
    private func reachesClosure(_ entry: RuleEngine.Compiled?, _ engine: RuleEngine) -> Bool {
        guard let entry, entry.rule.active else { return false }
        switch entry.rule.kind {
        case .requires:
            guard case .option(let subject) = entry.scope else { return false }
            return engine.defaultOn[subject] || closureParent[subject] >= 0
        case .forbidden:
            guard case .option = entry.scope else { return false }
            return entry.slots.contains { closurePosition[$0] >= 0 }
        case .choice:
            return entry.slots.contains { closurePosition[$0] >= 0 }
        case .validation:
            return false
        }
    }

    /// Whether `entry` has requires edges in the index (its change moves `requiresFlat`).
    private static func movesEdges(_ entry: RuleEngine.Compiled?) -> Bool {
        guard let entry, entry.rule.active, case .requires = entry.rule.kind, case .option = entry.scope else { return false }
        return true
    }

    /// A change that leaves what the closure and its conflicts read alone (the key, kind,
    /// subject, listed options and activity; say the severity or message).
    private static func sameForClosure(_ old: RuleEngine.Compiled?, _ new: RuleEngine.Compiled) -> Bool {
        guard let old, old.rule.active == new.rule.active, old.rule.key == new.rule.key,
              old.rule.subject == new.rule.subject, old.targetKeys == new.targetKeys, old.targets == new.targets
        else { return false }
        switch (old.rule.kind, new.rule.kind) {
        case (.requires, .requires), (.forbidden, .forbidden), (.choice, .choice), (.validation, .validation): return true
        default: return false
        }
    }
}
