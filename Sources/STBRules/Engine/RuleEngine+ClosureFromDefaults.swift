// The requires closure of a selection from the defaults' walk. The walk is breadth-first
// from every option that is on; its first level follows the edges from an option that is
// on to one that is not. The defaults' walk keeps those edges (`closureFrontier`); a
// selection changes them only at the options whose on-ness it changes: one turned on adds
// its own edges and drops the edges into it, one turned off drops its own edges and adds
// the edges into it from options that are on. The first level is then walked in the
// same order as the full walk, and the levels after it (options not on, usually few) as
// there. The result equals `closureAndConflicts(state)`.
import Synchronization

extension RuleEngine {
    /// `closureAndConflicts(state, reusing: defaults)` for a state whose differences from the
    /// defaults are at `changed` (ascending option slots), with the conflicts whose inputs
    /// are unchanged taken from the defaults.
    func closureAndConflicts(_ state: State, changed: [Int]) -> ClosureOutcome {
        let start = index.requiresStart
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

        return closureScratch.withScratch(count: keys.count) { scratch in
            let result = closureFromFirstLevel(state, extra: extra, parentOf: &scratch.parentOf, sameChain: &scratch.sameChain)
            // Leave the scratch as it was given: only the options added were written.
            for added in result.order {
                scratch.parentOf[added] = -1
                scratch.sameChain[added] = false
            }
            return result.outcome
        }
    }

    /// The walk of `closureAndConflicts(_:changed:)` after its first-level `extra` edges
    /// are known, in `parentOf` (all -1) and `sameChain` (all false), which it leaves set
    /// at the options added (`order`).
    private func closureFromFirstLevel(
        _ state: State, extra: [Int32], parentOf: inout [Int32], sameChain: inout [Bool]
    ) -> (outcome: ClosureOutcome, order: [Int]) {
        let flat = index.requiresFlat
        let start = index.requiresStart
        let from = index.requiresFrom
        func follows(_ edge: Int32) -> Bool {
            guard state.on[Int(from[Int(edge)])] else { return false }
            let target = flat[Int(edge)]
            return target < 0 || !state.on[Int(target)]
        }
        let defaultParent = defaults.closureParentAndPosition
        var order: [Int] = []
        var conflicts: [ClosureConflict] = []
        var unknownSeen = Set<String>()
        /// Follows the edge at `edge` from `node`: as the full walk does.
        func follow(_ edge: Int, from node: Int, same: Bool) {
            let edgeTarget = flat[edge]
            guard edgeTarget >= 0 else {
                noteUnknownTarget(of: node, edge - Int(start[node]), parentOf, &unknownSeen, &conflicts)
                return
            }
            let target = Int(edgeTarget)
            if state.on[target] || parentOf[target] >= 0 { return }
            parentOf[target] = Int32(node)
            sameChain[target] = same && defaultParent[target].x == Int32(node)
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
            follow(Int(edge), from: node, same: defaultParent[node].x < 0)
        }
        // The levels after it, from the options added.
        var head = 0
        while head < order.count {
            let node = order[head]
            head += 1
            for edge in Int(start[node])..<Int(start[node + 1]) { follow(edge, from: node, same: sameChain[node]) }
        }
        let outcome = closureOutcome(
            state, order: order, parentOf: parentOf, sameChain: sameChain, reusing: defaults, reuseConflicts: true,
            conflicts: conflicts)
        return (outcome, order)
    }
}

/// Catalog-sized work arrays of the closure walk, reused between evaluations instead of
/// made per call: a walk takes a set, gives it back as it found it, and a set in use is
/// no other walk's.
final class ClosureScratchPool: Sendable {
    struct Scratch {
        /// -1 at every option between walks.
        var parentOf: [Int32]
        /// False at every option between walks.
        var sameChain: [Bool]
    }

    private let free = Mutex<[Scratch]>([])
    /// Sets kept for reuse; more walks at once than this make their own.
    private static let kept = 8

    /// `body` with a set for `count` options; it must leave the set as it was given.
    func withScratch<Result>(count: Int, _ body: (inout Scratch) -> Result) -> Result {
        var scratch = free.withLock { $0.popLast() }
            ?? Scratch(parentOf: [Int32](repeating: -1, count: count), sameChain: [Bool](repeating: false, count: count))
        let result = body(&scratch)
        free.withLock { if $0.count < Self.kept { $0.append(scratch) } }
        return result
    }
}
