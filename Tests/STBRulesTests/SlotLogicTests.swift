import STBJSON
import STBJSONLogic
import STBTestSupport
import Testing

@testable import STBRules

// A validation's json-logic read by option slot (`SlotLogic`) against `JSONLogic.evaluate`
// on the same data: random expressions inside and just outside the covered subset, random
// values of every JSON type (and absent options). Where the slot form answers, it is the
// evaluator's truthiness, and the evaluator did not fail.

private let keys = ["a", "b", "c", "d"]
private let indexOf: [String: Int] = ["a": 0, "b": 1, "c": 2, "d": 3]

private func randomOperand(_ rng: inout SplitMix, depth: Int) -> String {
    switch rng.next() % 12 {
    case 0, 1, 2: return #"{"var": "\#(keys[Int(rng.next() % 4)])"}"#
    case 3: return #"{"var": ["\#(keys[Int(rng.next() % 4)])", \#(rng.next() % 5)]}"#
    case 4: return #"{"var": "ghost"}"#
    case 5: return "\(Int(rng.next() % 7) - 2)"
    case 6: return ["null", "true", "false", "1.5", "0"][Int(rng.next() % 5)]
    case 7: return ["\"v1\"", "\"\"", "\"2\"", "\"x\""][Int(rng.next() % 4)]
    case 8: return #"["v1", 2, "x"]"#
    default: return depth > 0 ? randomExpression(&rng, depth: depth - 1) : "\(rng.next() % 4)"
    }
}

private func randomExpression(_ rng: inout SplitMix, depth: Int) -> String {
    let a = randomOperand(&rng, depth: depth)
    let b = randomOperand(&rng, depth: depth)
    let c = randomOperand(&rng, depth: depth)
    switch rng.next() % 16 {
    case 0: return #"{"<": [\#(a), \#(b)]}"#
    case 1: return #"{"<=": [\#(a), \#(b), \#(c)]}"#
    case 2: return #"{">": [\#(a), \#(b)]}"#
    case 3: return #"{">=": [\#(a), \#(b)]}"#
    case 4: return #"{"==": [\#(a), \#(b)]}"#
    case 5: return #"{"!=": [\#(a), \#(b)]}"#
    case 6: return #"{"===": [\#(a), \#(b)]}"#
    case 7: return #"{"!==": [\#(a), \#(b)]}"#
    case 8: return #"{"in": [\#(a), ["v0", "v1", 2, null, true]]}"#
    case 9: return #"{"in": [\#(a), \#(b)]}"#
    case 10: return #"{"and": [\#(a), \#(b)]}"#
    case 11: return #"{"or": [\#(a), \#(b), \#(c)]}"#
    case 12: return #"{"!": \#(a)}"#
    case 13: return #"{"!!": [\#(a)]}"#
    case 14: return #"{"if": [\#(a), \#(b), \#(c)]}"#
    default: return #"{"+": [\#(a), 1]}"#  // outside the subset
    }
}

private func randomValue(_ rng: inout SplitMix) -> JSONValue? {
    switch rng.next() % 10 {
    case 0: return nil
    case 1: return .null
    case 2: return .bool(rng.next() % 2 == 0)
    case 3, 4: return .integer(Int64(rng.next() % 7) - 2)
    case 5: return .double(Double(rng.next() % 5) / 2)
    case 6: return .string(["v1", "", "2", "x", "v0"][Int(rng.next() % 5)])
    case 7: return .array([.integer(1), .string("v1")])
    case 8: return .object(["x": .integer(1)])
    default: return .integer(Int64(rng.next() % 3))
    }
}

@Suite struct SlotLogicTests {
    @Test func slotFormAnswersAsJSONLogic() {
        var rng = SplitMix(seed: 0x5107_1061_C001)
        var answered = 0
        var compared = 0
        for _ in 0..<3_000 {
            let text = randomExpression(&rng, depth: 2)
            // Some random shapes are not json-logic (`!` of a three-element array).
            guard let logic = try? JSONLogic(try JSONValue.parse(text)) else { continue }
            guard let slotLogic = SlotLogic(logic.expression, indexOf: indexOf) else { continue }
            for _ in 0..<8 {
                let values = keys.map { _ in randomValue(&rng) }
                compared += 1
                guard let passes = slotLogic.passes({ values[$0] }) else { continue }
                answered += 1
                let data = Dictionary(uniqueKeysWithValues: zip(keys, values).compactMap { key, value in value.map { (key, $0) } })
                do {
                    let result = try logic.evaluate { data[$0] }
                    #expect(passes == JSONLogic.isTruthy(result), "\(text) with \(values)")
                } catch {
                    Issue.record("\(text) with \(values): the slot form answered \(passes), json-logic failed: \(error)")
                }
            }
        }
        // Most random expressions are in the subset, and most of those answer here.
        #expect(answered > compared / 2, "answered \(answered) of \(compared)")
    }

    @Test func outsideTheSubsetIsLeftToJSONLogic() throws {
        for text in [
            #"{"+": [{"var": "a"}, 1]}"#, #"{"var": "a.x"}"#, #"{"var": {"cat": ["a"]}}"#, #"{"missing": ["a"]}"#,
            #"{"var": ["a", {"var": "b"}]}"#, #"{"map": [[1], {"var": ""}]}"#,
        ] {
            let logic = try JSONLogic(try JSONValue.parse(text))
            #expect(SlotLogic(logic.expression, indexOf: indexOf) == nil, "\(text)")
        }
    }

    /// The rule's outcome in an engine is the same with the slot form as with the evaluator:
    /// a string compared with a number (left to json-logic), numbers, enum membership.
    @Test func engineOutcomesMatchTheEvaluator() throws {
        let catalog = CatalogModel(options: [
            OptionInfo(key: "n", module: "m", type: .integer, defaultValue: .integer(5), includedByDefault: true),
            OptionInfo(key: "e", module: "m", type: .enum, defaultValue: .string("v1"), includedByDefault: true),
        ])
        let rules = try [
            Rule(key: "low", subject: "*", kind: .validation(JSONLogic(JSONValue.parse(#"{"<=": [{"var": "n"}, 3]}"#)))),
            Rule(key: "member", subject: "*", kind: .validation(JSONLogic(JSONValue.parse(#"{"in": [{"var": "e"}, ["v0", "v2"]]}"#)))),
            Rule(key: "mixed", subject: "*", kind: .validation(JSONLogic(JSONValue.parse(#"{"==": [{"var": "n"}, "5"]}"#)))),
        ]
        let engine = RuleEngine(rules: rules, catalog: catalog)
        // All three compile to the slot form; the third gives no answer there (a number
        // against a string) and is left to json-logic when checked.
        #expect(engine.compiled.map { $0.slotLogic != nil } == [true, true, true])
        let evaluation = engine.evaluateFully(Selection(choices: [:]))
        #expect(evaluation.violations.map(\.ruleKey) == ["low", "member"])
        let chosen = engine.evaluateFully(Selection(choices: ["n": .init(value: .integer(2)), "e": .init(value: .string("v2"))]))
        #expect(chosen.violations.map(\.ruleKey) == ["mixed"])
    }
}
