import STBJSON
import STBJSONLogic
import STBTestSupport
import Testing

import STBRules

// Incremental evaluation (from the defaults' evaluation, re-checking what a selection's
// differences touch) against checking every rule, on random catalogs, rule sets (cycles,
// choices, json-logic with constant, dotted and computed variable names, unknown options,
// inactive rules) and selections; and engines changed one rule at a time against engines
// built from scratch.

/// A random catalog of boolean (default true or false) and integer options; some keys hold a
/// dot, so that a json-logic variable `o3.x` reads both the option `o3.x` and the option `o3`.
func randomCatalog(_ rng: inout SplitMix) -> CatalogModel {
    let count = 6 + Int(rng.next() % 20)
    var options: [OptionInfo] = []
    for index in 0..<count {
        let on = rng.next() % 2 == 0
        let key = rng.next() % 8 == 0 && index > 0 ? "o\(index - 1).x" : "o\(index)"
        if rng.next() % 3 == 0 {
            options.append(OptionInfo(key: key, module: "m", type: .integer, defaultValue: .integer(Int64(rng.next() % 10)), includedByDefault: on))
        } else {
            options.append(OptionInfo(key: key, module: "m", type: .boolean, defaultValue: .bool(rng.next() % 3 != 0), includedByDefault: on))
        }
    }
    return CatalogModel(options: options)
}

private func pick(_ keys: [String], _ rng: inout SplitMix) -> String {
    // Now and then a key the catalog does not have.
    rng.next() % 25 == 0 ? "ghost\(rng.next() % 3)" : keys[Int(rng.next() % UInt64(keys.count))]
}

private func picks(_ keys: [String], _ rng: inout SplitMix, most: Int) -> [String] {
    var chosen: [String] = []
    for _ in 0..<(1 + Int(rng.next() % UInt64(most))) {
        let key = pick(keys, &rng)
        if !chosen.contains(key) { chosen.append(key) }
    }
    return chosen
}

private func randomLogic(_ keys: [String], _ rng: inout SplitMix) -> JSONLogic {
    let a = pick(keys, &rng)
    let b = pick(keys, &rng)
    let n = rng.next() % 10
    let text: String
    switch rng.next() % 8 {
    case 0: text = #"{">": [{"var": "\#(a)"}, \#(n)]}"#
    case 1: text = #"{"==": [{"var": "\#(a)"}, {"var": "\#(b)"}]}"#
    case 2: text = #"{"!": {"var": "\#(a)"}}"#
    case 3: text = #"{"missing": ["\#(a)", "\#(b)"]}"#
    case 4: text = #"{"<=": [{"var": ["\#(a)", 3]}, \#(n)]}"#
    case 5: text = #"{"var": "\#(a).x"}"#
    case 6: text = #"{"var": {"cat": ["o", \#(n)]}}"#           // computed: reads any option
    default: text = #"{"+": [{"var": "\#(a)"}, "x"]}"#          // NaN or a number
    }
    // The templates are valid json-logic.
    return try! JSONLogic(try! JSONValue.parse(text))
}

func randomRule(_ number: Int, _ keys: [String], _ rng: inout SplitMix) -> Rule {
    let key = "r\(number)"
    let severity: RuleSeverity = rng.next() % 4 == 0 ? .warning : .error
    let active = rng.next() % 10 != 0
    let kind: Rule.Kind
    var subject = pick(keys, &rng)
    switch rng.next() % 4 {
    case 0: kind = .requires(picks(keys, &rng, most: 3))
    case 1: kind = .forbidden(picks(keys, &rng, most: 2))
    case 2:
        kind = .choice(picks(keys, &rng, most: 4), optional: rng.next() % 2 == 0)
        subject = "group\(number)"
    default:
        kind = .validation(randomLogic(keys, &rng))
        if rng.next() % 5 == 0 { subject = Rule.globalSubject }
    }
    return Rule(key: key, subject: subject, kind: kind, severity: severity, message: rng.next() % 2 == 0 ? "" : "m\(number)", active: active)
}

func randomSelection(_ keys: [String], _ catalog: CatalogModel, _ rng: inout SplitMix) -> Selection {
    var choices: [String: Selection.Choice] = [:]
    for _ in 0..<Int(rng.next() % 6) {
        let key = pick(keys, &rng)
        var choice = choices[key] ?? Selection.Choice()
        switch rng.next() % 5 {
        case 0: choice.included = true
        case 1: choice.included = false
        case 2:
            if rng.next() % 5 == 0 {
                // Not an option's type (a `type` violation), but json-logic reads `key.x` inside it.
                choice.value = .object(["x": .integer(Int64(rng.next() % 12))])
            } else if catalog.options[key]?.type == .integer {
                choice.value = .integer(Int64(rng.next() % 12))
            } else {
                // A boolean's value turns it on or off; an integer is neither.
                choice.value = rng.next() % 4 != 0 ? .bool(rng.next() % 2 == 0) : .integer(1)
            }
        case 3:
            // Included and set: on or off by the value.
            choice.included = true
            choice.value = catalog.options[key]?.type == .integer ? .integer(Int64(rng.next() % 12)) : .bool(rng.next() % 2 == 0)
        default: choice.included = catalog.options[key]?.includedByDefault  // the default, listed
        }
        choices[key] = choice
    }
    return Selection(choices: choices)
}

private func expectSame(_ incremental: Evaluation, _ full: Evaluation, _ context: @autoclosure () -> String) {
    #expect(incremental.violations == full.violations, "violations: \(context())")
    #expect(incremental.valid == full.valid, "valid: \(context())")
    #expect(incremental.closure == full.closure, "closure: \(context())")
    #expect(incremental.conflicts == full.conflicts, "conflicts: \(context())")
    #expect(incremental.unknownSelections == full.unknownSelections, "unknown: \(context())")
}

@Suite struct IncrementalEvaluationTests {
    /// 200 random rule sets, each changed three times one rule at a time; 20 random selections
    /// per engine: 16,000 comparisons.
    @Test func incrementalEqualsFull() {
        var rng = SplitMix(seed: 0x5EED_2026_0017)
        var slotRNG = SplitMix(seed: 0x5107_2026_0017)
        var compared = 0
        var withViolations = 0
        var withClosure = 0
        var withBooleanValues = 0
        for round in 0..<200 {
            let catalog = randomCatalog(&rng)
            let keys = catalog.optionKeys
            var rules = (0..<(4 + Int(rng.next() % 30))).map { randomRule($0, keys, &rng) }
            var engine = RuleEngine(rules: rules, catalog: catalog)
            for step in 0..<4 {
                if step > 0 {
                    var change: RuleChange
                    switch rng.next() % 3 {
                    case 0: change = .add(randomRule(100 + step, keys, &rng))
                    case 1: change = .remove(rules.isEmpty ? "none" : rules[Int(rng.next() % UInt64(rules.count))].key)
                    default:
                        let target = rules.isEmpty ? 0 : Int(rng.next() % UInt64(rules.count))
                        var replacement = randomRule(target, keys, &rng)
                        if !rules.isEmpty { replacement.key = rules[target].key }
                        change = .replace(replacement)
                    }
                    // Now and then only a rule's severity and message change (the closure stays).
                    if slotRNG.next() % 4 == 0, !rules.isEmpty {
                        var edited = rules[Int(slotRNG.next() % UInt64(rules.count))]
                        edited.severity = edited.severity == .error ? .warning : .error
                        edited.message += " edited"
                        change = .replace(edited)
                    }
                    engine = engine.applying(change)
                    rules = change.apply(to: rules)
                }
                let scratch = RuleEngine(rules: rules, catalog: catalog)
                #expect(engine.rules.map(\.key) == rules.map(\.key))
                for _ in 0..<20 {
                    let selection = randomSelection(keys, catalog, &rng)
                    let incremental = engine.evaluate(selection)
                    expectSame(incremental, engine.evaluateFully(selection), "round \(round) step \(step) \(selection)")
                    expectSame(incremental, scratch.evaluateFully(selection), "round \(round) step \(step) scratch \(selection)")
                    // The same selection as option slots (the service's path), with now and
                    // then an earlier choice for a slot that the later one replaces.
                    var slots: [(slot: Int, choice: Selection.Choice)] = []
                    var unknownKeys: [String] = []
                    for (key, choice) in selection.choices.sorted(by: { $0.key < $1.key }) {
                        guard let slot = engine.slot(of: key) else { unknownKeys.append(key); continue }
                        if slotRNG.next() % 3 == 0 {
                            slots.append((slot, Selection.Choice(included: slotRNG.next() % 2 == 0, value: .integer(7))))
                        }
                        slots.append((slot, choice))
                    }
                    let bySlots = engine.evaluateWithDifferences(slots: slots, unknown: unknownKeys)
                    expectSame(bySlots.evaluation, incremental, "round \(round) step \(step) slots \(selection)")
                    // Again on the same engine: the closure walk's reused work arrays were left clean.
                    expectSame(engine.evaluate(selection), incremental, "round \(round) step \(step) again \(selection)")
                    let byKeys = engine.evaluateWithDifferences(selection)
                    #expect(bySlots.differences.map(\.key) == byKeys.differences.map(\.key))
                    #expect(bySlots.differences.map(\.choice) == byKeys.differences.map(\.choice))
                    compared += 1
                    if !incremental.violations.isEmpty { withViolations += 1 }
                    if !incremental.closure.isEmpty { withClosure += 1 }
                    if selection.choices.contains(where: { if case .bool? = $0.value.value { true } else { false } }) {
                        withBooleanValues += 1
                    }
                }
            }
        }
        // The random cases reach what they are meant to.
        #expect(compared == 16_000)
        #expect(withViolations > compared / 2)
        #expect(withClosure > compared / 10)
        #expect(withBooleanValues > compared / 4)
    }

    @Test func defaultsAreEvaluatedOnce() {
        let catalog = CatalogModel(options: [
            OptionInfo(key: "a", module: "m", type: .boolean, defaultValue: .bool(true), includedByDefault: true),
            OptionInfo(key: "b", module: "m", type: .boolean, defaultValue: .bool(true), includedByDefault: false),
        ])
        let engine = RuleEngine(rules: [Rule(key: "r", subject: "a", kind: .requires(["b"]))], catalog: catalog)
        #expect(engine.defaultEvaluation.violations.map(\.ruleKey) == ["r"])
        #expect(engine.defaultEvaluation.closure.map(\.optionKey) == ["b"])
        #expect(engine.evaluate(Selection(include: ["b"])).violations.isEmpty)
        #expect(engine.evaluate(Selection(exclude: ["a"])).closure.isEmpty)
        #expect(engine.evaluate(Selection(include: ["ghost"])).unknownSelections == ["ghost"])
    }

    /// The canonical form: options that differ from the defaults in key order, `key 0 1|0
    /// [1 value] \n`; its SHA-256 checked against hashlib's.
    @Test func selectionHashIsTheCanonicalFormsSHA256() {
        let catalog = CatalogModel(options: [
            OptionInfo(key: "hdr", module: "m", type: .boolean, defaultValue: .bool(true), includedByDefault: true),
            OptionInfo(key: "max_bitrate", module: "m", type: .integer, defaultValue: .integer(20000), includedByDefault: false),
        ] + (0..<20).map { OptionInfo(key: "opt\($0 < 10 ? "0" : "")\($0)", module: "m", type: .boolean, defaultValue: .bool(true), includedByDefault: false) })
        let engine = RuleEngine(rules: [], catalog: catalog)
        func hex(_ selection: Selection) -> String {
            engine.evaluateWithDifferences(selection).selectionHash.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        }
        #expect(hex(Selection(choices: [:])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        // Listing an option as its default changes nothing.
        #expect(hex(Selection(include: ["hdr"], exclude: ["max_bitrate"])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex(Selection(choices: ["max_bitrate": .init(included: true, value: .integer(60000)), "hdr": .init(included: false)]))
            == "94a84f2a7af2d2c8c0b1df6b7576138da18cc8bae316b487f3f68b809c0ade74")
        // 160 bytes: three blocks.
        #expect(hex(Selection(include: (0..<20).map { "opt\($0 < 10 ? "0" : "")\($0)" }))
            == "2c38374970a4cd349331d272813b30b9a5dfabe97175293f26501412aa7bb801")
    }
}

/// The closure from the defaults' first-level edges: a selection that turns on an option in
/// the defaults' closure, and one that turns off an option others require, get the closure
/// the full walk gives (the random comparison above covers the rest).
@Suite struct ClosureFromDefaultsTests {
    static func boolean(_ key: String, on: Bool) -> OptionInfo {
        OptionInfo(key: key, module: "m", type: .boolean, defaultValue: .bool(on), includedByDefault: true)
    }

    @Test func changedOnNessReshapesTheFirstLevel() {
        // Defaults: a, d and e on, b and c off; a requires b, b requires c, d requires b, c, e.
        let catalog = CatalogModel(options: [
            Self.boolean("a", on: true), Self.boolean("b", on: false), Self.boolean("c", on: false), Self.boolean("d", on: true),
            Self.boolean("e", on: true),
        ])
        let rules = [
            Rule(key: "ab", subject: "a", kind: .requires(["b"])),
            Rule(key: "bc", subject: "b", kind: .requires(["c"])),
            Rule(key: "dbc", subject: "d", kind: .requires(["b", "c"])),
            Rule(key: "de", subject: "d", kind: .requires(["e"])),
        ]
        let engine = RuleEngine(rules: rules, catalog: catalog)
        #expect(engine.defaultEvaluation.closure.map(\.chain) == [["a", "b"], ["d", "c"]])
        let cases: [([String: Selection.Choice], [[String]])] = [
            // b turned on: its edge to c joins the first level, before d's.
            (["b": Selection.Choice(included: true, value: .bool(true))], [["b", "c"]]),
            // a turned off: d's edge to b follows.
            (["a": Selection.Choice(included: true, value: .bool(false))], [["d", "b"], ["d", "c"]]),
            // c turned on, a off: only d's edge to b is left.
            (["c": Selection.Choice(included: true, value: .bool(true)), "a": Selection.Choice(included: false)], [["d", "b"]]),
            // e, on by default, turned off: d's edge to e joins the first level.
            (["e": Selection.Choice(included: false)], [["a", "b"], ["d", "c"], ["d", "e"]]),
        ]
        for (choices, chains) in cases {
            let selection = Selection(choices: choices)
            let incremental = engine.evaluate(selection)
            #expect(incremental.closure.map(\.chain) == chains, "\(choices)")
            #expect(incremental.closure == engine.evaluateFully(selection).closure, "\(choices)")
            #expect(incremental.conflicts == engine.evaluateFully(selection).conflicts, "\(choices)")
        }
    }
}
