import STBJSON
import STBMessages
import STBOptionValues
import STBRPC
import STBServiceTestSupport
import STBRules
import Testing

/// A catalog whose options carry every kind of constraint.
let constrainedSeed = """
{"modules": [{"key": "ui", "name": "UI", "groups": [{"key": "display", "name": "Display", "options": [
  {"key": "brightness", "name": "Brightness", "type": "integer", "default": 50, "meta": {"min": 0, "max": 100, "step": 5}},
  {"key": "resolution", "name": "Resolution", "type": "enum", "default": "1080p", "included_by_default": true, "meta": {"values": ["720p", "1080p", "2160p"]}},
  {"key": "device_name", "name": "Device name", "type": "string", "default": "stb", "meta": {"max_length": 8, "pattern": "[a-z0-9-]+"}},
  {"key": "dark_mode", "name": "Dark mode", "type": "boolean", "default": false},
  {"key": "offset", "name": "Offset", "type": "integer", "default": 0}]}]}]}
"""

/// Evaluate and Impact check the selection itself against the catalog copy: unknown keys
/// and values of the wrong type are INVALID_ARGUMENT; values outside an option's
/// constraints are violations, like a rule's.
@Suite("Selections checked against the catalog's option types and constraints")
struct SelectionCheckTests {
    typealias Choice = (String, Bool?, String?)

    @Test("unknown options and values of the wrong type are INVALID_ARGUMENT naming the choice")
    func refused() async throws {
        let cases: [([Choice], String)] = [
            ([("nope", true, nil)], #"options[0].key: unknown option "nope""#),
            ([("dark_mode", true, nil), ("brightness", nil, "55"), ("nope", nil, "1")], #"options[2].key: unknown option "nope""#),
            ([("brightness", nil, #""abc""#)], "options[0].value_json: must be an integer, not a string"),
            ([("brightness", nil, "5.5")], "options[0].value_json: 5.5 is not an integer"),
            ([("offset", nil, "1e30")], "options[0].value_json:"),
            ([("offset", nil, "9223372036854775808")], "options[0].value_json:"),
            ([("brightness", nil, "null")], "options[0].value_json: must be an integer, not null"),
            ([("brightness", nil, "[50]")], "options[0].value_json: must be an integer"),
            ([("dark_mode", nil, "1")], "options[0].value_json: must be a boolean, not a number"),
            ([("dark_mode", nil, #""true""#)], "options[0].value_json: must be a boolean, not a string"),
            ([("resolution", nil, "1080")], "options[0].value_json: must be a string (one of the enum's values), not a number"),
            ([("device_name", nil, "{}")], "options[0].value_json: must be a string, not an object"),
            ([("brightness", nil, "abc")], "options[0].value_json:"),
            ([("", true, nil)], "options[0].key: required"),
        ]
        try await RulesHarness.with(seed: constrainedSeed) { harness in
            for (choices, expected) in cases {
                let error = await expectStatus(.invalidArgument) { _ = try await harness.evaluate(choices) }
                #expect(error?.message.contains(expected) == true, "\(choices): \(error?.message ?? "")")
            }
        }
    }

    @Test("values outside the constraints are error violations that name the option and its value")
    func violations() async throws {
        let cases: [([Choice], [String: String], Set<String>)] = [
            ([("brightness", true, "5000")], ["brightness": "5000"], ["option:brightness/max"]),
            ([("brightness", nil, "5000")], ["brightness": "5000"], ["option:brightness/max"]),
            ([("brightness", false, "5000")], ["brightness": "5000"], ["option:brightness/max"]),
            ([("brightness", true, "-5")], ["brightness": "-5"], ["option:brightness/min"]),
            ([("brightness", true, "7")], ["brightness": "7"], ["option:brightness/step"]),
            ([("brightness", true, "5001")], ["brightness": "5001"], ["option:brightness/max", "option:brightness/step"]),
            ([("resolution", nil, #""8k""#)], ["resolution": #""8k""#], ["option:resolution/values"]),
            ([("resolution", nil, #""1080P""#)], ["resolution": #""1080P""#], ["option:resolution/values"]),
            ([("device_name", true, #""UPPER""#)], ["device_name": #""UPPER""#], ["option:device_name/pattern"]),
            ([("device_name", true, #""much-too-long""#)], ["device_name": #""much-too-long""#], ["option:device_name/max_length"]),
            ([("brightness", true, "5000"), ("resolution", true, #""8k""#)], ["brightness": "5000", "resolution": #""8k""#],
             ["option:brightness/max", "option:resolution/values"]),
        ]
        try await RulesHarness.with(seed: constrainedSeed) { harness in
            for (choices, offending, ruleKeys) in cases {
                let result = try await harness.evaluate(choices)
                #expect(!result.valid, "\(choices)")
                #expect(Set(result.violations.map(\.ruleKey)) == ruleKeys, "\(choices): \(result.violations)")
                var seen: [String: String] = [:]
                for violation in result.violations {
                    #expect(violation.severity == .error && !violation.message.isEmpty && violation.type == .unspecified)
                    #expect(violation.ruleKey.hasSuffix("/" + violation.constraint))
                    #expect(violation.references.count == 1)
                    if let reference = violation.references.first {
                        #expect(violation.message.contains(reference.optionKey))
                        seen[reference.optionKey] = reference.valueJson
                    }
                }
                #expect(seen == offending, "\(choices): \(result.violations)")
            }
            let result = try await harness.evaluate([("brightness", true, "5000")])
            #expect(result.violations.first?.message == "brightness: 5000 is above the maximum 100")
            #expect(result.violations.first?.explanation == "brightness [=5000]: 5000 is above the maximum 100")
        }
    }

    @Test("values inside the constraints are valid, in any spelling of the same number")
    func accepted() async throws {
        let cases: [[Choice]] = [
            [("brightness", true, "55")], [("brightness", true, "55.0")], [("brightness", true, "0")], [("brightness", true, "100")],
            [("resolution", nil, #""2160p""#)], [("device_name", true, #""tv-1""#)],
            [("dark_mode", true, "true")], [("offset", true, "9223372036854775807")], [("offset", true, "-9223372036854775808")], [],
        ]
        try await RulesHarness.with(seed: constrainedSeed) { harness in
            for choices in cases {
                let result = try await harness.evaluate(choices)
                #expect(result.valid && result.violations.isEmpty, "\(choices): \(result.violations)")
            }
        }
    }

    @Test("Impact checks its selections the same way")
    func impact() async throws {
        try await RulesHarness.with(seed: constrainedSeed) { harness in
            var rule = Stb_Rules_V1_Rule()
            rule.key = "dark-needs-dim"
            rule.subject = "dark_mode"
            rule.type = .validation
            rule.payloadJson = #"{"logic": {"<=": [{"var": "brightness"}, 50]}}"#
            rule.severity = .error
            rule.active = true
            func selection(_ choices: [Choice]) -> Stb_Rules_V1_EvaluateRequest {
                var request = Stb_Rules_V1_EvaluateRequest()
                request.options = choices.map { key, included, value in
                    var choice = Stb_Rules_V1_OptionChoice()
                    choice.key = key
                    choice.included = included
                    choice.valueJson = value
                    return choice
                }
                return request
            }
            var request = Stb_Rules_V1_ImpactRequest()
            request.change = .add(rule)
            // dark_mode is a boolean, false by default: on when included at true.
            request.selections = ["bright": selection([("dark_mode", true, "true"), ("brightness", true, "80")]), "unknown": selection([("nope", true, nil)])]
            let error = await expectStatus(.invalidArgument) { _ = try await harness.rules.unary(Rules.impact, request: request) }
            #expect(error?.message.contains(#"selections["unknown"].options[0].key: unknown option "nope""#) == true, "\(error?.message ?? "")")

            request.selections["unknown"] = selection([("brightness", true, #""high""#)])
            let typed = await expectStatus(.invalidArgument) { _ = try await harness.rules.unary(Rules.impact, request: request) }
            #expect(typed?.message.contains(#"selections["unknown"].options[0].value_json: must be an integer"#) == true, "\(typed?.message ?? "")")

            // A selection already outside the constraints is not made invalid by the change: it is invalid now.
            request.selections["unknown"] = nil
            request.selections["outside"] = selection([("dark_mode", true, "true"), ("brightness", true, "5000")])
            let impact = try await harness.rules.unary(Rules.impact, request: request)
            #expect(Set(impact.newlyInvalid.keys) == ["bright"])
        }
    }

    @Test("ListRules: page sizes and tokens at their extremes give a page or INVALID_ARGUMENT naming the token")
    func pagingExtremes() async throws {
        try await RulesHarness.with(seed: constrainedSeed) { harness in
            try await harness.createRule("r", subject: "dark_mode", type: .requires, payload: #"{"requires": ["brightness"]}"#)
            for size: UInt32 in [0, 1, 1000, 1001, .max] {
                for token in ["", "0", "9223372036854775807", "9223372036854775808", "-1", "-9223372036854775808", "+1", " 1", String(repeating: "9", count: 400)] {
                    var request = Stb_Rules_V1_ListRulesRequest()
                    var page = Stb_Common_V1_PageRequest()
                    page.pageSize = size
                    page.pageToken = token
                    request.page = page
                    do {
                        let response = try await harness.rules.unary(Rules.listRules, request: request)
                        #expect(response.rules.count <= 1)
                    } catch let error as RPCError {
                        #expect(error.code == .invalidArgument && error.message.hasPrefix("page.page_token"), "\(size) \(token): \(error)")
                    }
                }
            }
        }
    }

    @Test("rule texts are limited in bytes as well as characters")
    func ruleLengths() async throws {
        try await RulesHarness.with(seed: constrainedSeed) { harness in
            let heavy = String(repeating: "e" + String(repeating: "\u{301}", count: 2500), count: 200)
            let message = await expectStatus(.invalidArgument) {
                try await harness.createRule("r", subject: "dark_mode", type: .requires, payload: #"{"requires": ["brightness"]}"#, message: heavy)
            }
            #expect(message?.message.contains("rule.message: longer than 4000 bytes") == true, "\(message?.message.prefix(200) ?? "")")
            let subject = await expectStatus(.invalidArgument) {
                try await harness.createRule("c", subject: heavy, type: .choice, payload: #"{"choice": ["dark_mode", "offset"]}"#)
            }
            #expect(subject?.message.contains("rule.subject: longer than 800 bytes") == true, "\(subject?.message.prefix(200) ?? "")")
            var request = Stb_Rules_V1_ImportRulesRequest()
            request.documentJson = #"{"rules": [{"key": "r", "subject": "dark_mode", "type": "requires", "payload": {"requires": ["brightness"]}, "message": "\#(heavy)"}]}"#
            request.dryRun = true
            let imported = await expectStatus(.invalidArgument) { _ = try await harness.rules.unary(Rules.importRules, request: request) }
            #expect(imported?.message.contains("rules[0].message: longer than 4000 bytes") == true, "\(imported?.message.prefix(200) ?? "")")
        }
    }
}

@Suite("RuleEngine: values against option constraints")
struct EngineConstraintTests {
    static func engine() throws -> RuleEngine {
        let meta = try JSONValue.parse(#"{"min": 0, "max": 100, "step": 5}"#)
        let level = OptionInfo(key: "level", module: "m", type: .integer, defaultValue: .integer(50), includedByDefault: true,
                               constraints: OptionConstraints.parse(type: .integer, meta: meta).0)
        return RuleEngine(rules: [], catalog: CatalogModel(options: [level]))
    }

    @Test("in catalog order, one violation per broken constraint; a wrong type given straight to the engine is a `type` violation", arguments: [
        (JSONValue.integer(50), [String]()), (.integer(Int64.max), ["max", "step"]), (.integer(Int64.min), ["min", "step"]),
        (.integer(3), ["step"]), (.string("50"), ["type"]), (.double(50.5), ["type"]), (.double(50), []),
    ])
    func values(value: JSONValue, constraints: [String]) throws {
        let evaluation = try Self.engine().evaluate(Selection(values: ["level": value]))
        #expect(evaluation.violations.compactMap(\.constraint) == constraints)
        #expect(evaluation.valid == constraints.isEmpty)
    }
}
