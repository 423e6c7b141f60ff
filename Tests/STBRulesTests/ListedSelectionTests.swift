import STBJSON
import STBJSONLogic
import STBTestSupport
import Testing

@testable import STBRules

// `RuleEngine.evaluateListed` (what Evaluate uses: the differences found by a pass over the
// per-option arrays, put in key order by rank) against `evaluateWithDifferences` and
// `evaluateFully`, on random catalogs, rule sets and selections that list every option
// (some more than once), and on catalogs whose keys are not in key order.

@Suite struct ListedSelectionTests {
    @Test func listedEqualsDifferencesAndFull() {
        var rng = SplitMix(seed: 0x1157_2026_0017)
        var compared = 0
        var withDifferences = 0
        for round in 0..<150 {
            var catalog = randomCatalog(&rng)
            // Keys out of key order now and then (the ranks then come from a sort).
            if round % 2 == 1 {
                catalog = CatalogModel(options: catalog.optionKeys.reversed().compactMap { catalog.options[$0] })
            }
            let keys = catalog.optionKeys
            let rules = (0..<(4 + Int(rng.next() % 30))).map { randomRule($0, keys, &rng) }
            let engine = RuleEngine(rules: rules, catalog: catalog)
            for _ in 0..<20 {
                // Every option listed at its default, then the random choices over them.
                let random = randomSelection(keys, catalog, &rng)
                var slots: [(slot: Int, choice: Selection.Choice)] = []
                for (slot, key) in keys.enumerated() {
                    slots.append((slot, Selection.Choice(included: catalog.options[key]?.includedByDefault)))
                }
                var choices: [String: Selection.Choice] = [:]
                for key in keys { choices[key] = Selection.Choice(included: catalog.options[key]?.includedByDefault) }
                for (key, choice) in random.choices.sorted(by: { $0.key < $1.key }) {
                    guard let slot = engine.slot(of: key) else { continue }
                    slots.append((slot, choice))
                    choices[key] = choice
                }
                var selection = engine.slotSelection()
                for (slot, choice) in slots { selection.choose(slot, choice) }
                selection.addUnknown("ghost")
                let listed = engine.evaluateListed(selection)
                let reference = engine.evaluateWithDifferences(slots: slots, unknown: ["ghost"])
                let context = "round \(round) \(random)"
                #expect(listed.differences.map(\.key) == reference.differences.map(\.key), "\(context)")
                #expect(listed.differences.map(\.choice) == reference.differences.map(\.choice), "\(context)")
                #expect(listed.evaluation.violations == reference.evaluation.violations, "\(context)")
                #expect(listed.evaluation.fromDefaults == reference.evaluation.fromDefaults, "\(context)")
                #expect(listed.evaluation.closure == reference.evaluation.closure, "\(context)")
                #expect(listed.evaluation.conflicts == reference.evaluation.conflicts, "\(context)")
                #expect(listed.evaluation.unknownSelections == ["ghost"], "\(context)")
                let full = engine.evaluateFully(Selection(choices: choices))
                #expect(listed.evaluation.violations == full.violations, "\(context)")
                #expect(listed.evaluation.valid == full.valid, "\(context)")
                #expect(listed.selectionHash == reference.selectionHash, "\(context)")
                compared += 1
                if !listed.differences.isEmpty { withDifferences += 1 }
            }
        }
        #expect(compared == 3_000)
        #expect(withDifferences > compared / 2)
    }

    @Test func ranksFollowKeyOrder() {
        let table = OptionKeyTable(["b", "a", "c", "ab"])
        #expect(table.ranks == [2, 0, 3, 1])
        #expect(OptionKeyTable(["a", "b", "c"]).ranks == [0, 1, 2])
    }
}
