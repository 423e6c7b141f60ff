import STBJSON
import STBJSONLogic
import STBMessages
import STBTestSupport
import Testing

@testable import STBRules

// Evaluate reads a request's choices from its bytes and leaves out a slot's first choice
// that is the defaults' own (no value; `included` absent or as the default). A later choice
// for the slot must still replace an earlier one, and a base selection's choice must not
// take the place of one left out. Against the request read as a dictionary of keys and
// every rule checked. A base selection held by one catalog copy's engines is laid by slot,
// by another's by key.

@Suite struct RequestChoicesTests {
    /// 300 options and rules between them; requests of up to 400 choices in random order,
    /// with slots given again, the defaults' own choices among them (before, between and
    /// after others for the same slot), and a base selection under some.
    @Test func choicesLeftOutAsTheDefaultsChangeNoAnswer() throws {
        var rng = SplitMix(seed: 0x5EED_2026_1207)
        var options: [OptionInfo] = []
        for index in 0..<300 {
            let key = "o\(index)"
            if index % 3 == 0 {
                options.append(OptionInfo(
                    key: key, module: "m", type: .integer, defaultValue: .integer(Int64(index % 7)), includedByDefault: index % 2 == 0))
            } else {
                options.append(OptionInfo(
                    key: key, module: "m", type: .boolean, defaultValue: .bool(index % 5 != 0), includedByDefault: index % 4 != 0))
            }
        }
        let catalog = CatalogModel(options: options)
        let keys = catalog.optionKeys
        let rules = (0..<250).map { randomRule($0, keys, &rng) }
        let engine = RuleEngine(rules: rules, catalog: catalog)
        let otherCopy = RuleEngine(rules: rules, catalog: catalog)
        var leftOut = 0
        var replacedByDefaults = 0
        for round in 0..<60 {
            var request = Stb_Rules_V1_EvaluateRequest()
            var expected: [String: Selection.Choice] = [:]
            for _ in 0..<(1 + Int(rng.next() % 400)) {
                let slot = Int(rng.next() % 300)
                var option = Stb_Rules_V1_OptionChoice()
                option.key = keys[slot]
                var choice = Selection.Choice()
                switch rng.next() % 5 {
                case 0:
                    option.included = !options[slot].includedByDefault
                    choice.included = option.included
                case 1:
                    let value: JSONValue = slot % 3 == 0 ? .integer(Int64(rng.next() % 9)) : .bool(rng.next() % 2 == 0)
                    option.included = true
                    option.valueJson = value.canonicalText
                    choice = Selection.Choice(included: true, value: value)
                case 2:
                    // The defaults' own, with `included` spelt out.
                    option.included = options[slot].includedByDefault
                    choice.included = option.included
                default:
                    // The defaults' own, with nothing but the key.
                    break
                }
                if option.valueJson == nil, (option.included ?? options[slot].includedByDefault) == options[slot].includedByDefault {
                    if expected[keys[slot]] != nil { replacedByDefaults += 1 } else { leftOut += 1 }
                }
                request.options.append(option)
                expected[keys[slot]] = choice
            }
            var base: [String: Selection.Choice] = [:]
            if round % 2 == 1 {
                for _ in 0..<Int(rng.next() % 80) {
                    let slot = Int(rng.next() % 300)
                    base[keys[slot]] = Selection.Choice(included: !options[slot].includedByDefault)
                }
                for (key, choice) in base where expected[key] == nil { expected[key] = choice }
            }
            var selection = engine.slotSelection()
            let (_, given) = try RulesService.readChoices(request.serializedBytes(), into: &selection, engine: engine)
            if round % 2 == 1 {
                // Held by this catalog copy's engines (laid by slot), or by another's (by key).
                let differences = engine.evaluateWithDifferences(Selection(choices: base)).differences
                let held = HeldSelection(differences: differences, engine: round % 4 == 1 ? engine : otherCopy)
                #expect((held.keyTable === engine.keyTable) == (round % 4 == 1))
                RulesService.lay(held, under: &selection, given: given, engine: engine)
            }
            let evaluated = engine.evaluateListed(selection)
            let reference = engine.evaluateFully(Selection(choices: expected))
            #expect(evaluated.evaluation.violations == reference.violations, "round \(round)")
            #expect(evaluated.evaluation.valid == reference.valid, "round \(round)")
            #expect(evaluated.evaluation.closure == reference.closure, "round \(round)")
            #expect(evaluated.evaluation.conflicts == reference.conflicts, "round \(round)")
            let differences = engine.evaluateWithDifferences(Selection(choices: expected)).differences
            #expect(Selection.hash(differences: evaluated.differences) == Selection.hash(differences: differences), "round \(round)")
        }
        // The cases this is about came up.
        #expect(leftOut > 1000)
        #expect(replacedByDefaults > 100)
    }
}
