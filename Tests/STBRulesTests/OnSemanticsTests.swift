import STBJSON
import STBJSONLogic
import Testing

import STBRules

// A boolean option is *on* when it is included and its effective value is true (a Kconfig
// `bool` at `y`); options of other types are on when included. Rules trigger on and ask for
// on-ness: an included boolean at false neither triggers a rule nor satisfies one. Every case
// is checked through the incremental path and against `evaluateFully`.

private func boolean(_ key: String, _ value: Bool, included: Bool = false) -> OptionInfo {
    OptionInfo(key: key, module: "m", type: .boolean, defaultValue: .bool(value), includedByDefault: included)
}

/// `hdr` and `uhd` default to true, `legacy` and `dolby` to false; `bitrate` is an integer;
/// nothing is included by default.
private let catalog = CatalogModel(options: [
    boolean("hdr", true), boolean("uhd", true), boolean("legacy", false), boolean("dolby", false),
    OptionInfo(key: "bitrate", module: "m", type: .integer, defaultValue: .integer(0), includedByDefault: false),
])

private func evaluate(_ rules: [Rule], _ selection: Selection) -> Evaluation {
    let engine = RuleEngine(rules: rules, catalog: catalog)
    let incremental = engine.evaluate(selection)
    let full = engine.evaluateFully(selection)
    #expect(incremental.violations == full.violations)
    #expect(incremental.closure == full.closure)
    #expect(incremental.conflicts == full.conflicts)
    return incremental
}

/// Included, with `value` as the override.
private func set(_ values: [String: Bool], include: [String] = []) -> Selection {
    Selection(include: Array(values.keys) + include, values: values.mapValues { .bool($0) })
}

@Suite("Rules trigger on options that are on")
struct OnSemanticsTests {
    @Test func requires() {
        let rules = [Rule(key: "r", subject: "hdr", kind: .requires(["legacy"]))]
        // The subject included at false does not trigger.
        #expect(evaluate(rules, set(["hdr": false])).violations.isEmpty)
        #expect(evaluate(rules, set(["hdr": false])).closure.isEmpty)
        // On, it triggers; the target included at its default, false, does not satisfy it.
        let included = evaluate(rules, Selection(include: ["hdr", "legacy"]))
        #expect(included.violations.map(\.explanation) == ["hdr requires legacy [=n]"])
        #expect(included.violations.first?.references == [
            Reference(optionKey: "hdr", included: true, value: .bool(true)),
            Reference(optionKey: "legacy", included: true, value: .bool(false)),
        ])
        // The closure lists it: it must be turned on.
        #expect(included.closure.map(\.optionKey) == ["legacy"])
        // Turned on, it satisfies.
        let on = evaluate(rules, set(["hdr": true, "legacy": true]))
        #expect(on.violations.isEmpty && on.closure.isEmpty)
    }

    @Test func forbidden() {
        let rules = [Rule(key: "f", subject: "hdr", kind: .forbidden(["uhd", "legacy"]))]
        // The subject included at false does not trigger.
        #expect(evaluate(rules, set(["hdr": false, "uhd": true])).violations.isEmpty)
        // A forbidden option included at false is not there.
        #expect(evaluate(rules, set(["hdr": true, "uhd": false], include: ["legacy"])).violations.isEmpty)
        let broken = evaluate(rules, set(["hdr": true, "uhd": false, "legacy": true]))
        #expect(broken.violations.map(\.explanation) == ["hdr forbids uhd [=n], legacy [=y]"])
    }

    @Test func choice() {
        let exactly = [Rule(key: "c", subject: "codec", kind: .choice(["hdr", "uhd", "dolby"], optional: false))]
        // Three included, one of them on: exactly one.
        #expect(evaluate(exactly, set(["hdr": true, "uhd": false], include: ["dolby"])).violations.isEmpty)
        // Included, none on: none.
        let none = evaluate(exactly, set(["hdr": false, "uhd": false], include: ["dolby"]))
        #expect(none.violations.map(\.explanation) == ["choice codec needs exactly one of hdr [=n], uhd [=n], dolby [=n] (0 on)"])
        let optional = [Rule(key: "c", subject: "codec", kind: .choice(["hdr", "uhd"], optional: true))]
        #expect(evaluate(optional, set(["hdr": false, "uhd": false])).violations.isEmpty)
        #expect(evaluate(optional, set(["hdr": true, "uhd": false])).violations.isEmpty)
        #expect(evaluate(optional, Selection(include: ["hdr", "uhd"])).violations.map(\.explanation)
            == ["choice codec needs at most one of hdr [=y], uhd [=y] (2 on)"])
    }

    @Test func validation() throws {
        let logic = try JSONLogic(try JSONValue.parse(#"{"==": [{"var": "legacy"}, true]}"#))
        let rules = [Rule(key: "v", subject: "hdr", kind: .validation(logic))]
        // The subject included at false: not checked.
        #expect(evaluate(rules, set(["hdr": false])).violations.isEmpty)
        // On: checked; json-logic reads an included boolean at false as false.
        let checked = evaluate(rules, set(["hdr": true, "legacy": false]))
        #expect(checked.violations.map(\.explanation) == ["hdr validation failed: legacy [=n]"])
        #expect(evaluate(rules, set(["hdr": true, "legacy": true])).violations.isEmpty)
    }

    @Test func otherTypesAreOnWhenIncluded() {
        let rules = [
            Rule(key: "r", subject: "bitrate", kind: .requires(["uhd"])),
            Rule(key: "f", subject: "hdr", kind: .forbidden(["bitrate"])),
        ]
        // An integer at 0 is on when included: it triggers `r` and breaks `f`.
        let result = evaluate(rules, Selection(include: ["bitrate", "hdr"]))
        #expect(result.violations.map(\.ruleKey) == ["r", "f"])
        #expect(evaluate(rules, Selection(include: ["hdr"])).violations.isEmpty)
    }

    @Test func closureConflictsReadOnness() {
        // Turning `legacy` on (it is included at false) would break `f`, whose subject is on;
        // `g`'s subject is included at false, so it is no conflict.
        let rules = [
            Rule(key: "r", subject: "hdr", kind: .requires(["legacy"])),
            Rule(key: "f", subject: "uhd", kind: .forbidden(["legacy"])),
            Rule(key: "g", subject: "dolby", kind: .forbidden(["legacy"])),
        ]
        let result = evaluate(rules, Selection(include: ["hdr", "uhd", "legacy", "dolby"]))
        #expect(result.closure.map(\.optionKey) == ["legacy"])
        #expect(result.conflicts.map(\.ruleKey) == ["f"])
    }

    @Test func defaultsAreReadForOnness() {
        // Included by default at false: off in the defaults' evaluation too.
        let catalog = CatalogModel(options: [boolean("pin", false, included: true), boolean("purchase_pin", true, included: true)])
        let engine = RuleEngine(rules: [Rule(key: "r", subject: "purchase_pin", kind: .requires(["pin"]))], catalog: catalog)
        #expect(engine.defaultEvaluation.violations.map(\.explanation) == ["purchase_pin requires pin [=n]"])
        #expect(engine.defaultEvaluation.closure.map(\.optionKey) == ["pin"])
        // A value alone (no inclusion flag) turns an included-by-default boolean on or off.
        #expect(engine.evaluate(Selection(values: ["pin": .bool(true)])).violations.isEmpty)
        #expect(engine.evaluate(Selection(values: ["purchase_pin": .bool(false)])).violations.isEmpty)
        #expect(engine.evaluate(Selection(values: ["purchase_pin": .bool(false)])).closure.isEmpty)
    }
}
