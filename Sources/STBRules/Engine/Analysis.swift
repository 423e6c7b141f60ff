// Static analysis of the rule set (check), impact of a rule change, module state machines.
import STBJSON
import STBJSONLogic

/// An option that cannot be on (included, and `true` for a boolean) without breaking an
/// error-severity rule.
public struct DeadOption: Sendable, Hashable {
    public enum Reason: String, Sendable, Hashable {
        /// Something in the option's requires closure forbids something else in it (possibly the option itself).
        case forbiddenInClosure
        /// The option's requires closure holds two members of one choice (which allows at most one).
        case choiceConflict
        /// The option's requires closure holds an option that is not in the catalog.
        case requiresUnknown
    }

    public var key: String
    public var reason: Reason
    public var ruleKey: String
    /// Requires chains from `key` to the options involved, then the rule's verdict.
    public var chain: [String]
    /// `hdr → 4k_output → hdmi_2_1; legacy_mode forbids hdmi_2_1 (rule r7)`.
    public var explanation: String
}

public struct UnknownReference: Sendable, Hashable {
    public var ruleKey: String
    public var optionKey: String
    /// `subject`, `requires`, `forbidden`, `choice`, `variable`.
    public var role: String

    public init(ruleKey: String, optionKey: String, role: String) {
        self.ruleKey = ruleKey
        self.optionKey = optionKey
        self.role = role
    }
}

public struct ContradictoryChoice: Sendable, Hashable {
    public enum Reason: String, Sendable, Hashable {
        /// A non-optional choice none of whose members can be on without an error (dead or unknown).
        case allMembersDead
        /// One member requires (transitively) another member of the same choice.
        case memberRequiresMember
    }

    public var ruleKey: String
    public var reason: Reason
    public var explanation: String
}

public struct CheckReport: Sendable {
    /// Requires-cycles, each once, rotated to start at its smallest key, closed: `[a, b, c, a]`.
    public var cycles: [[String]]
    public var deadOptions: [DeadOption]
    public var unknownReferences: [UnknownReference]
    public var contradictoryChoices: [ContradictoryChoice]
    /// Validation rules whose json-logic uses computed variable names (not checkable statically).
    public var dynamicValidations: [String]
    /// True when cycle enumeration stopped at its limit.
    public var cyclesTruncated: Bool

    /// `a → b → c → a`.
    public var cycleTexts: [String] { cycles.map { $0.joined(separator: " → ") } }
    public var isClean: Bool {
        cycles.isEmpty && deadOptions.isEmpty && unknownReferences.isEmpty && contradictoryChoices.isEmpty
    }
}

public enum FireResult: Sendable, Hashable {
    case moved(to: String)
    /// No transition for that event from that state; `available` lists the events that state has.
    case noTransition(available: [String])
    /// Every transition for the event has a condition that did not hold; the first one's text and the values it saw.
    case conditionFailed(condition: String, values: [SeenValue])
    /// The condition could not be evaluated.
    case conditionError(condition: String, message: String)
    case unknownModule
}

public struct SeenValue: Sendable, Hashable {
    public var variable: String
    /// nil = missing from the context.
    public var value: JSONValue?

    public init(variable: String, value: JSONValue?) {
        self.variable = variable
        self.value = value
    }
}

public struct AvailableEvent: Sendable, Hashable {
    public var event: String
    public var to: String

    public init(event: String, to: String) {
        self.event = event
        self.to = to
    }
}

extension RuleEngine {
    // MARK: - Check

    /// Static checks, over active error-severity rules (warnings never make an option dead):
    /// - cycles: elementary cycles of the requires graph (including self-requires), each once.
    /// Rules read options that are *on* (included, and `true` for a boolean), so a dead option
    /// is one that cannot be on without an error; it can still be included, a boolean at `false`.
    /// - deadOptions: an option whose transitive requires closure C (itself included) has
    ///   (a) a forbidden rule with subject in C and a target in C (covers "A requires B, B forbids A",
    ///   "A requires B and A forbids B", and the same through longer chains);
    ///   (b) two members of one choice rule in C (a choice, optional or not, allows at most one);
    ///   (c) an option that is not in the catalog in C.
    /// - unknownReferences: subjects (except choice groups and the global "*"), listed options and
    ///   json-logic variables that are not catalog options — all rules, active or not.
    /// - contradictoryChoices (active error-severity choices): (a) a non-optional choice whose members
    ///   are all dead or unknown (it can never be satisfied); (b) a member that transitively requires
    ///   another member of the same choice (that member is then also a dead option).
    public func check() -> CheckReport {
        let (cycles, truncated) = requiresCycles(limit: 1000)
        var report = CheckReport(
            cycles: cycles, deadOptions: [], unknownReferences: [], contradictoryChoices: [],
            dynamicValidations: [], cyclesTruncated: truncated)

        for entry in compiled where !entry.removed {
            let rule = entry.rule
            switch rule.kind {
            case .choice: break
            default:
                if rule.subject != Rule.globalSubject, indexOf[rule.subject] == nil {
                    report.unknownReferences.append(UnknownReference(ruleKey: rule.key, optionKey: rule.subject, role: "subject"))
                }
            }
            let role: String
            switch rule.kind {
            case .requires: role = "requires"
            case .forbidden: role = "forbidden"
            case .choice: role = "choice"
            case .validation(let logic):
                role = "variable"
                if logic.usesDynamicVariables { report.dynamicValidations.append(rule.key) }
            }
            for (key, index) in zip(entry.targetKeys, entry.targets) where index == nil {
                report.unknownReferences.append(UnknownReference(ruleKey: rule.key, optionKey: key, role: role))
            }
        }

        // Dead options.
        var dead = Array(repeating: false, count: keys.count)
        for option in keys.indices {
            if let found = deadReason(option) {
                dead[option] = true
                report.deadOptions.append(found)
            }
        }

        // Contradictory choices.
        for ruleIndex in activeRules {
            let entry = compiled[ruleIndex]
            guard case .choice(_, let optional) = entry.rule.kind, entry.rule.severity == .error else { continue }
            if !optional, entry.targets.allSatisfy({ $0.map { dead[$0] } ?? true }) {
                report.contradictoryChoices.append(ContradictoryChoice(
                    ruleKey: entry.rule.key, reason: .allMembersDead,
                    explanation: "choice \(entry.rule.subject) needs exactly one of "
                        + entry.targetKeys.joined(separator: ", ") + " but none can be on"))
            }
            let members = Set(entry.targets.compactMap { $0 })
            for case let member? in entry.targets {
                let (parent, _) = requiresReach(member)
                for other in members.sorted() where other != member && parent[other] != nil {
                    let path = chain(to: other, parent)
                    report.contradictoryChoices.append(ContradictoryChoice(
                        ruleKey: entry.rule.key, reason: .memberRequiresMember,
                        explanation: "choice \(entry.rule.subject): " + path.joined(separator: " → ")
                            + " (both members)"))
                }
            }
        }
        return report
    }

    /// Requires closure of `start` (error-severity active rules): parent links (start maps to itself)
    /// and the unknown options reached, with the option that required each.
    func requiresReach(_ start: Int) -> (parent: [Int: Int], unknown: [(from: Int, key: String, rule: Int)]) {
        var parent: [Int: Int] = [start: start]
        var unknown: [(from: Int, key: String, rule: Int)] = []
        var queue = [start]
        var head = 0
        while head < queue.count {
            let node = queue[head]
            head += 1
            for edge in requiresOut[node] where compiled[edge.rule].rule.severity == .error {
                guard let target = edge.target else { unknown.append((node, edge.key, edge.rule)); continue }
                if parent[target] == nil {
                    parent[target] = node
                    queue.append(target)
                }
            }
        }
        return (parent, unknown)
    }

    func chain(to node: Int, _ parent: [Int: Int]) -> [String] {
        var path = [keys[node]]
        var current = node
        while let previous = parent[current], previous != current {
            path.append(keys[previous])
            current = previous
        }
        return path.reversed()
    }

    func deadReason(_ option: Int) -> DeadOption? {
        let (parent, unknown) = requiresReach(option)
        let key = keys[option]
        if let first = unknown.first {
            let path = chain(to: first.from, parent) + [first.key]
            return DeadOption(
                key: key, reason: .requiresUnknown, ruleKey: compiled[first.rule].rule.key, chain: path,
                explanation: path.joined(separator: " → ") + " (unknown option)")
        }
        // Deterministic order: walk the closure in BFS-ish order by sorting indices.
        let members = parent.keys.sorted()
        for node in members {
            for ruleIndex in forbiddenBySubject[node] where compiled[ruleIndex].rule.severity == .error {
                let entry = compiled[ruleIndex]
                for (target, targetKey) in zip(entry.targets, entry.targetKeys) {
                    guard let target, parent[target] != nil else { continue }
                    let toSubject = chain(to: node, parent)
                    let toTarget = chain(to: target, parent)
                    let explanation = Self.pathText(toSubject, toTarget)
                        + "; \(keys[node]) forbids \(targetKey) (rule \(entry.rule.key))"
                    return DeadOption(
                        key: key, reason: .forbiddenInClosure, ruleKey: entry.rule.key,
                        chain: toSubject + ["forbids " + targetKey], explanation: explanation)
                }
            }
        }
        var seenChoice: [Int: Int] = [:]   // choice rule → first member found
        for node in members {
            for ruleIndex in choicesByMember[node] where compiled[ruleIndex].rule.severity == .error {
                if let first = seenChoice[ruleIndex], first != node {
                    let entry = compiled[ruleIndex]
                    let a = chain(to: first, parent)
                    let b = chain(to: node, parent)
                    return DeadOption(
                        key: key, reason: .choiceConflict, ruleKey: entry.rule.key,
                        chain: a + ["choice " + entry.rule.subject],
                        explanation: Self.pathText(a, b)
                            + "; choice \(entry.rule.subject) allows one of \(keys[first]), \(keys[node]) (rule \(entry.rule.key))")
                }
                seenChoice[ruleIndex] = node
            }
        }
        return nil
    }

    static func pathText(_ a: [String], _ b: [String]) -> String {
        if a == b || b.count == 1 { return a.joined(separator: " → ") }
        if a.count == 1 { return b.joined(separator: " → ") }
        return a.joined(separator: " → ") + " and " + b.joined(separator: " → ")
    }

    /// Elementary cycles of the requires graph (active error rules), each rotated to start at its
    /// smallest key (so each appears once), closed (`[a, b, a]`), sorted.
    func requiresCycles(limit: Int) -> ([[String]], Bool) {
        // Adjacency over option indices, ordered by key so that "smallest" = smallest key.
        let order = keys.indices.sorted { keys[$0] < keys[$1] }
        var rank = Array(repeating: 0, count: keys.count)
        for (position, index) in order.enumerated() { rank[index] = position }
        var adjacency = Array(repeating: [Int](), count: keys.count)
        for node in keys.indices {
            var targets = Set<Int>()
            for edge in requiresOut[node] where compiled[edge.rule].rule.severity == .error {
                if let target = edge.target { targets.insert(target) }
            }
            adjacency[node] = targets.sorted { rank[$0] < rank[$1] }
        }
        // Only nodes on some cycle matter: restrict to non-trivial SCCs.
        let component = stronglyConnectedComponents(adjacency)
        var componentSize: [Int: Int] = [:]
        for c in component { componentSize[c, default: 0] += 1 }

        var cycles: [[String]] = []
        var truncated = false
        var budget = 2_000_000
        for start in order {
            let size = componentSize[component[start]]!
            let selfLoop = adjacency[start].contains(start)
            if size == 1 && !selfLoop { continue }
            if selfLoop { cycles.append([keys[start], keys[start]]) }
            if size == 1 { continue }
            // DFS for simple paths start → … → start through nodes of the same SCC ranked above start.
            var path = [start]
            var onPath = Set([start])
            var stack: [(node: Int, next: Int)] = [(start, 0)]
            while let top = stack.last {
                budget -= 1
                if budget <= 0 || cycles.count >= limit { truncated = true; break }
                let successors = adjacency[top.node]
                if top.next >= successors.count {
                    stack.removeLast()
                    onPath.remove(path.removeLast())
                    continue
                }
                stack[stack.count - 1].next += 1
                let next = successors[top.next]
                if next == start {
                    if path.count > 1 { cycles.append((path + [start]).map { keys[$0] }) }
                    continue
                }
                guard component[next] == component[start], rank[next] > rank[start], !onPath.contains(next) else { continue }
                path.append(next)
                onPath.insert(next)
                stack.append((next, 0))
            }
            if truncated { break }
        }
        cycles.sort { $0.lexicographicallyPrecedes($1) }
        return (cycles, truncated)
    }

    /// Tarjan, iterative: component id per node.
    func stronglyConnectedComponents(_ adjacency: [[Int]]) -> [Int] {
        let count = adjacency.count
        var index = Array(repeating: -1, count: count)
        var low = Array(repeating: 0, count: count)
        var onStack = Array(repeating: false, count: count)
        var component = Array(repeating: -1, count: count)
        var stack: [Int] = []
        var counter = 0
        var components = 0
        for root in 0..<count where index[root] == -1 {
            var work: [(node: Int, next: Int)] = [(root, 0)]
            index[root] = counter; low[root] = counter; counter += 1
            stack.append(root); onStack[root] = true
            while let top = work.last {
                let node = top.node
                if top.next < adjacency[node].count {
                    work[work.count - 1].next += 1
                    let next = adjacency[node][top.next]
                    if index[next] == -1 {
                        index[next] = counter; low[next] = counter; counter += 1
                        stack.append(next); onStack[next] = true
                        work.append((next, 0))
                    } else if onStack[next] {
                        low[node] = min(low[node], index[next])
                    }
                } else {
                    work.removeLast()
                    if let parent = work.last { low[parent.node] = min(low[parent.node], low[node]) }
                    if low[node] == index[node] {
                        while true {
                            let member = stack.removeLast()
                            onStack[member] = false
                            component[member] = components
                            if member == node { break }
                        }
                        components += 1
                    }
                }
            }
        }
        return component
    }

    // MARK: - Impact

    /// Selections (by name) that are valid now and would have error violations after `change`.
    public func impact(of change: RuleChange, selections: [String: Selection]) -> [String: [Violation]] {
        let changed = applying(change)
        var result: [String: [Violation]] = [:]
        for (name, selection) in selections where evaluate(selection).valid {
            let errors = changed.evaluate(selection).errors
            if !errors.isEmpty { result[name] = errors }
        }
        return result
    }

    // MARK: - State machines

    /// Context lookup for transition conditions: an exact key first, then a dotted path through objects/arrays.
    static func contextLookup(_ context: JSONValue, _ name: String) -> JSONValue? {
        if let exact = context[name] { return exact }
        if name.isEmpty { return context }
        var current = context
        for part in name.split(separator: ".", omittingEmptySubsequences: false) {
            switch current {
            case .object(let members):
                guard let next = members[String(part)] else { return nil }
                current = next
            case .array(let items):
                guard let position = Int(part), items.indices.contains(position) else { return nil }
                current = items[position]
            default: return nil
            }
        }
        return current
    }

    enum ConditionOutcome { case holds, fails, error(String) }

    static func test(_ transition: TransitionInfo, _ context: JSONValue) -> ConditionOutcome {
        guard let condition = transition.condition else { return .holds }
        do {
            let result = try condition.evaluate(data: context)
            return JSONLogic.isTruthy(result) ? .holds : .fails
        } catch {
            return .error(error.path.isEmpty ? error.message : "\(error.path): \(error.message)")
        }
    }

    /// Fires `event` in `state`: the first transition for it whose condition holds.
    public func fire(module: String, state: String, event: String, context: JSONValue) -> FireResult {
        guard let info = catalog.modules[module] else { return .unknownModule }
        let candidates = info.transitions.filter { $0.from == state && $0.event == event }
        guard !candidates.isEmpty else {
            var events: [String] = []
            for transition in info.transitions where transition.from == state && !events.contains(transition.event) {
                events.append(transition.event)
            }
            return .noTransition(available: events.sorted())
        }
        var firstFailure: FireResult?
        for transition in candidates {
            let conditionText = transition.conditionText ?? transition.condition?.expression.canonicalText ?? "true"
            switch Self.test(transition, context) {
            case .holds: return .moved(to: transition.to)
            case .fails:
                if firstFailure == nil {
                    let seen = (transition.condition?.variables ?? []).sorted().map {
                        SeenValue(variable: $0, value: Self.contextLookup(context, $0))
                    }
                    firstFailure = .conditionFailed(condition: conditionText, values: seen)
                }
            case .error(let message):
                if firstFailure == nil { firstFailure = .conditionError(condition: conditionText, message: message) }
            }
        }
        return firstFailure!
    }

    /// Events that would move the module out of `state` now (condition holds), in catalog order, first target per event.
    public func availableEvents(module: String, state: String, context: JSONValue) -> [AvailableEvent] {
        guard let info = catalog.modules[module] else { return [] }
        var result: [AvailableEvent] = []
        for transition in info.transitions where transition.from == state && !result.contains(where: { $0.event == transition.event }) {
            if case .holds = Self.test(transition, context) {
                result.append(AvailableEvent(event: transition.event, to: transition.to))
            }
        }
        return result
    }
}
