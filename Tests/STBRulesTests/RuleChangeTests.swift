import STBJSON
import STBTestSupport
import Testing

import STBRules

// An engine updated one rule at a time (`RuleEngine.applying`) against one built from
// scratch with the rules it ends with: on random catalogs and rule sets (cycles, choices,
// json-logic, unknown options, inactive rules, duplicate keys), after long runs of random
// adds, removals, replacements and severity-only edits.

/// A random change to `rules`: mostly of rules that exist, now and then of a key that does
/// not (a removal that removes nothing, a replacement that appends) or one that is there twice.
private func randomChange(_ rules: [Rule], _ keys: [String], _ number: Int, _ rng: inout SplitMix) -> RuleChange {
    func existing() -> Rule? { rules.isEmpty ? nil : rules[Int(rng.next() % UInt64(rules.count))] }
    switch rng.next() % 10 {
    case 0, 1:
        return .add(randomRule(number, keys, &rng))
    case 2:
        // A key already there: the rule list holds it twice.
        var rule = randomRule(number, keys, &rng)
        if let other = existing() { rule.key = other.key }
        return .add(rule)
    case 3, 4:
        return .remove(existing()?.key ?? "none")
    case 5:
        return .remove("r\(number)")
    case 6:
        // Only what the closure does not read: severity and message.
        guard var rule = existing() else { return .add(randomRule(number, keys, &rng)) }
        rule.severity = rule.severity == .error ? .warning : .error
        rule.message += " edited"
        return .replace(rule)
    case 7:
        // Active or not, nothing else changed.
        guard var rule = existing() else { return .add(randomRule(number, keys, &rng)) }
        rule.active.toggle()
        return .replace(rule)
    default:
        var rule = randomRule(number, keys, &rng)
        if let other = existing(), rng.next() % 8 != 0 { rule.key = other.key }
        return .replace(rule)
    }
}

private func expectEqual(_ updated: Evaluation, _ scratch: Evaluation, _ context: @autoclosure () -> String) {
    #expect(updated.violations == scratch.violations, "violations: \(context())")
    #expect(updated.valid == scratch.valid, "valid: \(context())")
    #expect(updated.closure == scratch.closure, "closure: \(context())")
    #expect(updated.conflicts == scratch.conflicts, "conflicts: \(context())")
    #expect(updated.unknownSelections == scratch.unknownSelections, "unknown: \(context())")
}

@Suite struct RuleChangeTests {
    /// 100 random rule sets, each changed 40 times one rule at a time; after every change the
    /// defaults' evaluation and 5 random selections against an engine built from scratch, and
    /// at the end 40 more selections and the static analysis.
    @Test func updatedEqualsRebuilt() {
        var rng = SplitMix(seed: 0xC4A1_2026_0017)
        var compared = 0
        var defaultsWithClosure = 0
        var closureChanged = 0
        for round in 0..<100 {
            let catalog = randomCatalog(&rng)
            let keys = catalog.optionKeys
            var rules = (0..<(4 + Int(rng.next() % 30))).map { randomRule($0, keys, &rng) }
            var engine = RuleEngine(rules: rules, catalog: catalog)
            for step in 0..<40 {
                let change = randomChange(rules, keys, 1000 + step, &rng)
                let before = engine.defaultEvaluation.closure
                engine = engine.applying(change)
                rules = change.apply(to: rules)
                let scratch = RuleEngine(rules: rules, catalog: catalog)
                let context = "round \(round) step \(step) \(change)"
                #expect(engine.rules.map(\.key) == rules.map(\.key), "\(context)")
                expectEqual(engine.defaultEvaluation, scratch.defaultEvaluation, "defaults \(context)")
                if !scratch.defaultEvaluation.closure.isEmpty { defaultsWithClosure += 1 }
                if scratch.defaultEvaluation.closure != before { closureChanged += 1 }
                let selections = step == 39 ? 40 : 5
                for _ in 0..<selections {
                    let selection = randomSelection(keys, catalog, &rng)
                    let updated = engine.evaluate(selection)
                    expectEqual(updated, scratch.evaluate(selection), "\(context) \(selection)")
                    expectEqual(updated, scratch.evaluateFully(selection), "\(context) fully \(selection)")
                    compared += 1
                }
            }
            let scratch = RuleEngine(rules: rules, catalog: catalog)
            let (updated, rebuilt) = (engine.check(), scratch.check())
            #expect(updated.cycles == rebuilt.cycles, "round \(round)")
            #expect(updated.deadOptions == rebuilt.deadOptions, "round \(round)")
            #expect(updated.unknownReferences == rebuilt.unknownReferences, "round \(round)")
            #expect(updated.contradictoryChoices == rebuilt.contradictoryChoices, "round \(round)")
            #expect(updated.dynamicValidations == rebuilt.dynamicValidations, "round \(round)")
            #expect(engine.rulesByOption == scratch.rulesByOption, "round \(round)")
        }
        // The random runs reach what they are meant to.
        #expect(compared == 100 * (39 * 5 + 40))
        #expect(defaultsWithClosure > 100 * 40 / 4)
        #expect(closureChanged > 100 * 40 / 20)
    }
}
