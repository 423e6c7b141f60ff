import STBJSON
import STBJSONLogic
import STBTestSupport
import Testing

import STBRules

// A selection by slot holds only the choices given (a table by slot, laid over the defaults
// in a work set the engine lends per evaluation), and a rule the selection touches whose
// options read as in the defaults keeps the defaults' violation. Both against checking
// every rule on a dictionary selection.

@Suite struct SparseSelectionTests {
    /// 400 options, rules between them; selections of up to 300 choices given by slot in
    /// random order, with slots given again (the later choice replaces the earlier) and
    /// base choices under them (`chooseIfUnset`): more choices than the slot table starts
    /// with, so it grows and its probes collide.
    @Test func manyChoicesBySlotEqualTheSelectionEvaluatedFully() {
        var rng = SplitMix(seed: 0x5A_2026_1207)
        var options: [OptionInfo] = []
        for index in 0..<400 {
            let key = "o\(index)"
            if index % 3 == 0 {
                let value = JSONValue.integer(Int64(index % 7))
                options.append(OptionInfo(key: key, module: "m", type: .integer, defaultValue: value, includedByDefault: index % 2 == 0))
            } else {
                let value = JSONValue.bool(index % 5 != 0)
                options.append(OptionInfo(key: key, module: "m", type: .boolean, defaultValue: value, includedByDefault: index % 4 != 0))
            }
        }
        let catalog = CatalogModel(options: options)
        let keys = catalog.optionKeys
        let rules = (0..<300).map { randomRule($0, keys, &rng) }
        let engine = RuleEngine(rules: rules, catalog: catalog)
        var compared = 0
        for round in 0..<40 {
            var slots = engine.slotSelection()
            var expected: [String: Selection.Choice] = [:]
            let count = 1 + Int(rng.next() % 300)
            for _ in 0..<count {
                let slot = Int(rng.next() % 400)
                let choice: Selection.Choice
                switch rng.next() % 4 {
                case 0: choice = Selection.Choice(included: rng.next() % 2 == 0)
                case 1: choice = Selection.Choice(included: true, value: slot % 3 == 0 ? .integer(Int64(rng.next() % 9)) : .bool(rng.next() % 2 == 0))
                case 2: choice = Selection.Choice(value: slot % 3 == 0 ? .integer(Int64(slot % 7)) : .bool(slot % 5 != 0))  // the default value, given
                default: choice = Selection.Choice(included: options[slot].includedByDefault)
                }
                slots.choose(slot, choice)
                expected[keys[slot]] = choice
            }
            // A base's choices: only for slots the request did not give.
            for _ in 0..<Int(rng.next() % 50) {
                let slot = Int(rng.next() % 400)
                let choice = Selection.Choice(included: rng.next() % 2 == 0)
                slots.chooseIfUnset(slot, choice)
                if expected[keys[slot]] == nil { expected[keys[slot]] = choice }
            }
            #expect(slots.chosenCount == expected.count, "round \(round)")
            let selection = Selection(choices: expected)
            let full = engine.evaluateFully(selection)
            for _ in 0..<2 {
                // Twice: the lent work set came back as the defaults.
                let evaluated = engine.evaluateWithDifferences(slots)
                #expect(evaluated.evaluation.violations == full.violations, "round \(round)")
                #expect(evaluated.evaluation.valid == full.valid, "round \(round)")
                #expect(evaluated.evaluation.closure == full.closure, "round \(round)")
                #expect(evaluated.evaluation.conflicts == full.conflicts, "round \(round)")
                let keysByDictionary = engine.evaluateWithDifferences(selection).differences.map { $0.key }
                #expect(evaluated.differences.map { $0.key } == keysByDictionary, "round \(round)")
            }
            compared += 1
        }
        #expect(compared == 40)
    }

    /// A value given equal to the default reads as the defaults (the rule keeps the
    /// defaults' violation), but the same text spelt with other code points does not: the
    /// violation names the value as given.
    @Test func aValueReadsAsTheDefaultOnlyWithTheSameBytes() throws {
        let catalog = CatalogModel(options: [
            OptionInfo(key: "name", module: "m", type: .string, defaultValue: .string("caf\u{E9}"), includedByDefault: true),
            OptionInfo(key: "level", module: "m", type: .integer, defaultValue: .integer(3), includedByDefault: true),
        ])
        let logic = try JSONLogic(try JSONValue.parse(#"{"==": [{"var": "level"}, 4]}"#))
        let rules = [
            Rule(key: "named", subject: "name", kind: .requires(["ghost"])),
            Rule(key: "leveled", subject: "level", kind: .validation(logic)),
        ]
        let engine = RuleEngine(rules: rules, catalog: catalog)
        let cases: [[String: Selection.Choice]] = [
            ["name": .init(value: .string("caf\u{E9}")), "level": .init(included: true, value: .integer(3))],
            ["name": .init(value: .string("cafe\u{301}"))],
            ["level": .init(value: .integer(5))],
        ]
        for choices in cases {
            let selection = Selection(choices: choices)
            let incremental = engine.evaluate(selection)
            let full = engine.evaluateFully(selection)
            #expect(incremental.violations == full.violations, "\(choices)")
            // `==` on strings equates the two spellings: compare the texts' bytes.
            #expect(Self.texts(incremental) == Self.texts(full), "\(choices)")
        }
        let respelt = engine.evaluate(Selection(choices: ["name": .init(value: .string("cafe\u{301}"))]))
        #expect(Self.texts(respelt).contains(Array("\"cafe\u{301}\"".utf8)))
    }

    /// Every violation's explanation and its references' values, as bytes.
    static func texts(_ evaluation: Evaluation) -> [[UInt8]] {
        evaluation.violations.flatMap { violation in
            [Array(violation.explanation.utf8)] + violation.references.map { Array(($0.value?.canonicalText ?? "-").utf8) }
        }
    }
}

@Suite struct SelectionKeyTests {
    /// A selection's keys are found by their bytes; a catalog key holding a NUL (which the
    /// byte table leaves out) is still the catalog's option, not an unknown key.
    @Test func aKeyWithANulIsTheCatalogsOption() throws {
        let odd = "tv\u{0}hdr"
        let catalog = CatalogModel(options: [
            OptionInfo(key: "tv", module: "m", type: .boolean, defaultValue: .bool(true), includedByDefault: false),
            OptionInfo(key: odd, module: "m", type: .boolean, defaultValue: .bool(true), includedByDefault: false),
        ])
        let rules = [Rule(key: "r", subject: odd, kind: .requires(["tv"]))]
        let engine = RuleEngine(rules: rules, catalog: catalog)
        let selection = Selection(choices: [odd: .init(included: true), "ghost": .init(included: true)])
        for evaluation in [engine.evaluate(selection), engine.evaluateFully(selection)] {
            #expect(evaluation.unknownSelections == ["ghost"])
            #expect(evaluation.violations.map(\.ruleKey) == ["r"])
            #expect(evaluation.closure.map(\.optionKey) == ["tv"])
        }
    }

    /// A key given in another Unicode spelling of a catalog key (the same String, other
    /// bytes) is that option, as `slot(of:)` and the rules' subjects find it.
    @Test func anotherSpellingOfAKeyIsTheCatalogsOption() throws {
        let catalog = CatalogModel(options: [
            OptionInfo(key: "tv", module: "m", type: .boolean, defaultValue: .bool(true), includedByDefault: false),
            OptionInfo(key: "caf\u{E9}", module: "m", type: .boolean, defaultValue: .bool(true), includedByDefault: false),
        ])
        let engine = RuleEngine(rules: [Rule(key: "r", subject: "caf\u{E9}", kind: .requires(["tv"]))], catalog: catalog)
        let selection = Selection(choices: ["cafe\u{301}": .init(included: true)])
        #expect(engine.slot(of: "cafe\u{301}") == engine.slot(of: "caf\u{E9}"))
        for evaluation in [engine.evaluate(selection), engine.evaluateFully(selection)] {
            #expect(evaluation.unknownSelections.isEmpty)
            #expect(evaluation.violations.map(\.ruleKey) == ["r"])
        }
    }
}
