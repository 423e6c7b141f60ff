// The requires closure of a selection from the defaults' walk. The walk is breadth-first
// from every option that is on; its first level follows the edges from an option that is
// on to one that is not. The defaults' walk keeps those edges (`closureFrontier`); a
// selection changes them only at the options whose on-ness it changes: one turned on adds
// its own edges and drops the edges into it, one turned off drops its own edges and adds
// the edges into it from options that are on. The first level is then walked in the
// same order as the full walk, and the levels after it (options not on, usually few) as
// there. The result equals `closureAndConflicts(state)`.

extension RuleEngine {
    /// `closureAndConflicts(state, reusing: defaults)` for a state whose differences from the
    /// defaults are at `changed` (ascending option slots).
    func closureAndConflicts(_ state: State, changed: [Int]) -> ([ClosureEntry], [ClosureConflict]) {
        let flat = index.requiresFlat
        let start = index.requiresStart
        let from = index.requiresFrom
        let into = index.requiresInto
        let intoStart = index.requiresIntoStart
        // First-level edges the defaults' walk does not follow, ascending.
        var extra: [Int32] = []
        for slot in changed where state.on[slot] != defaultOn[slot] {
            if state.on[slot] {
                extra.append(contentsOf: start[slot]..<start[slot + 1])
            } else {
                extra.append(contentsOf: into[Int(intoStart[slot])..<Int(intoStart[slot + 1])])
            }
        }
        extra.sort()
        func follows(_ edge: Int32) -> Bool {
            guard state.on[Int(from[Int(edge)])] else { return false }
            let target = flat[Int(edge)]
            return target < 0 || !state.on[Int(target)]
        }

        let defaultParent = defaults.closureParent
        var parentOf = [Int32](repeating: -1, count: keys.count)
        var sameChain = [Bool](repeating: false, count: keys.count)
        var order: [Int] = []
        var conflicts: [ClosureConflict] = []
        var unknownSeen = Set<String>()
        /// Follows the edge at `edge` from `node`: as the full walk does.
        func follow(_ edge: Int, from node: Int, same: Bool) {
            let edgeTarget = flat[edge]
            guard edgeTarget >= 0 else {
                let out = index.requiresOut[node][edge - Int(start[node])]
                if unknownSeen.insert(keys[node] + "\u{0}" + out.key).inserted {
                    let chain = chain(to: node, parentOf) + [out.key]
                    conflicts.append(ClosureConflict(
                        ruleKey: compiled[out.rule].rule.key, kind: "requires", chain: chain,
                        explanation: chain.joined(separator: " → ") + " (unknown option)"))
                }
                return
            }
            let target = Int(edgeTarget)
            if state.on[target] || parentOf[target] >= 0 { return }
            parentOf[target] = Int32(node)
            sameChain[target] = same && defaultParent[target] == Int32(node)
            order.append(target)
        }

        // The first level: the defaults' edges and the extra ones merged, each once.
        let frontier = defaults.closureFrontier
        var next = 0
        var nextExtra = 0
        while next < frontier.count || nextExtra < extra.count {
            let edge: Int32
            if nextExtra == extra.count || (next < frontier.count && frontier[next] < extra[nextExtra]) {
                edge = frontier[next]
                next += 1
            } else {
                edge = extra[nextExtra]
                if next < frontier.count, frontier[next] == edge { next += 1 }
                nextExtra += 1
                if nextExtra < extra.count, extra[nextExtra] == edge { continue }
            }
            guard follows(edge) else { continue }
            let node = Int(from[Int(edge)])
            follow(Int(edge), from: node, same: defaultParent[node] < 0)
        }
        // The levels after it, from the options added.
        var head = 0
        while head < order.count {
            let node = order[head]
            head += 1
            for edge in Int(start[node])..<Int(start[node + 1]) { follow(edge, from: node, same: sameChain[node]) }
        }
        return closureEntriesAndConflicts(state, order: order, parentOf: parentOf, sameChain: sameChain, reusing: defaults, conflicts: conflicts)
    }
}
