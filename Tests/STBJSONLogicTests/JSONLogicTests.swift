import Foundation
import STBJSON
import STBJSONLogic
import Testing

@Suite("JSONLogic")
struct JSONLogicTests {
    static let suitePath: String = {
        let testsDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        return testsDir.appendingPathComponent("Fixtures/jsonlogic/tests.json").standardized.path
    }()

    /// Cases of the public suite the strict dialect deliberately does not follow, by the rule's canonical text.
    static let deviations: [String: String] = [
        // A conditional with nothing to test is a mistake in a rule; json-logic-js returns null.
        #"{"if":[]}"#: "`if` needs at least 1 argument (compile error `if: needs at least 1 argument, got 0`)",
    ]

    /// Numbers compare by value (2 == 2.0); everything else structurally.
    static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.integer, .integer), (.integer, .double), (.double, .integer), (.double, .double):
            return a.numberValue == b.numberValue
        case (.array(let x), .array(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        case (.object(let x), .object(let y)):
            return x.count == y.count && x.allSatisfy { key, value in y[key].map { same(value, $0) } ?? false }
        default:
            return a == b
        }
    }

    @Test func publicSuite() throws {
        let text = try String(contentsOfFile: Self.suitePath, encoding: .utf8)
        let suite = try JSONValue.parse(text)
        let entries = try #require(suite.arrayValue)
        var passed = 0
        var deviated = 0
        var failures: [String] = []
        for entry in entries {
            guard case .array(let triple) = entry else { continue }  // headings
            #expect(triple.count == 3)
            let (rule, data, expected) = (triple[0], triple[1], triple[2])
            let key = rule.canonicalText
            if Self.deviations[key] != nil {
                #expect(throws: JSONLogicError.self, "deviation \(key) should be refused") { try JSONLogic(rule) }
                deviated += 1
                continue
            }
            do {
                let logic = try JSONLogic(rule)
                let result = try logic.evaluate(data: data)
                if Self.same(result, expected) {
                    passed += 1
                } else {
                    failures.append("\(key) with \(data.canonicalText): got \(result.canonicalText), expected \(expected.canonicalText)")
                }
            } catch {
                failures.append("\(key) with \(data.canonicalText): \(error)")
            }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        #expect(passed + deviated == 278)
        #expect(deviated == Self.deviations.count)
        print("json-logic public suite: \(passed) passed, \(deviated) deliberate deviations, \(failures.count) failed")
    }

    // MARK: - Compile-time rejections

    static func compileError(_ text: String) throws -> String {
        let expression = try JSONValue.parse(text)
        do {
            _ = try JSONLogic(expression)
            return "compiled"
        } catch {
            return error.description
        }
    }

    @Test func unknownOperatorHasPath() throws {
        #expect(try Self.compileError(#"{"and": [true, {"<=": [{"foo": 1}, 2]}]}"#) == #"and[1].<=[0]: unknown operator "foo""#)
        #expect(try Self.compileError(#"{"foo": 1}"#) == #"unknown operator "foo""#)
        #expect(try Self.compileError(#"[1, {"bar": []}]"#) == #"[1]: unknown operator "bar""#)
        let error = try #require(throws: JSONLogicError.self) { try JSONLogic(JSONValue.parse(#"{"if": [{"x": 1}, 1, 2]}"#)) }
        #expect(error.path == "if[0]")
        #expect(error.message == #"unknown operator "x""#)
    }

    /// Every kind of expression the compiler refuses, with its exact message.
    static let refusals: [(String, String)] = [
        (#"{"nosuchop": [1]}"#, #"unknown operator "nosuchop""#),
        (#"{"and": [true, {"nosuchop": [1]}]}"#, #"and[1]: unknown operator "nosuchop""#),
        (#"{"log": "x"}"#, #"operator "log" is not allowed (it has side effects)"#),
        (#"{"method": ["abc", "toUpperCase"]}"#, #"operator "method" is not allowed (it calls arbitrary methods)"#),
        (String(repeating: #"{"!": "#, count: 40) + "true" + String(repeating: "}", count: 40),
         String(repeating: "![0].", count: 31) + "![0]: expression is nested deeper than 32 levels"),
        (#"{"+": [\#(Array(repeating: "1", count: 2_000).joined(separator: ","))]}"#, "+[1999]: expression has more than 2000 nodes"),
        (#"{"a": 1, "b": 2}"#, "an operation must have exactly one key, found 2: a, b"),
        (#"{"if": []}"#, "if: needs at least 1 argument, got 0"),
        (#"{"!": [1, 2]}"#, "!: takes at most 1 argument, got 2"),
        (#"{"var": ["a", 1, 2]}"#, "var: takes at most 2 arguments, got 3"),
        (#"{"var": [[1]]}"#, "var[0]: a variable name must be a string, a number or null, not an array"),
        (#"{"map": [[1], {"var": {}}]}"#, "map[1].var[0]: a variable name must be a string, a number or null, not an object"),
    ]

    @Test("the compiler's refusals, each with its path and message", arguments: refusals)
    func refusal(_ expression: String, _ message: String) throws {
        #expect(try Self.compileError(expression) == message)
    }

    @Test func refusedOperators() throws {
        #expect(try Self.compileError(#"{"method": ["abc", "toUpperCase"]}"#).hasPrefix(#"operator "method" is not allowed"#))
        #expect(try Self.compileError(#"{"or": [false, {"log": "x"}]}"#).hasPrefix(#"or[1]: operator "log" is not allowed"#))
    }

    @Test func arity() throws {
        #expect(try Self.compileError(#"{"if": []}"#) == "if: needs at least 1 argument, got 0")
        #expect(try Self.compileError(#"{"==": [1]}"#) == "==: needs at least 2 arguments, got 1")
        #expect(try Self.compileError(#"{"and": [true, {"!": [1, 2]}]}"#) == "and[1].!: takes at most 1 argument, got 2")
        #expect(try Self.compileError(#"{"<": [1, 2, 3, 4]}"#) == "<: takes at most 3 arguments, got 4")
        #expect(try Self.compileError(#"{"?:": [true, 1]}"#) == "?:: needs at least 3 arguments, got 2")
        #expect(try Self.compileError(#"{"var": ["a", 1, 2]}"#) == "var: takes at most 2 arguments, got 3")
        #expect(try Self.compileError(#"{"map": [[1]]}"#) == "map: needs at least 2 arguments, got 1")
        #expect(try Self.compileError(#"{"var": [true]}"#) == "var[0]: a variable name must be a string, a number or null, not a boolean")
        #expect(try Self.compileError(#"{"a": 1, "b": 2}"#) == "an operation must have exactly one key, found 2: a, b")
    }

    @Test func depthLimit() throws {
        func nested(_ levels: Int) -> JSONValue {
            var value = JSONValue.bool(true)
            for _ in 0..<levels { value = .object(["!": .array([value])]) }
            return value
        }
        // 31 `!` plus the literal: 32 levels.
        #expect(throws: Never.self) { try JSONLogic(nested(31)) }
        let error = try #require(throws: JSONLogicError.self) { try JSONLogic(nested(32)) }
        #expect(error.message == "expression is nested deeper than 32 levels")
        #expect(error.path == String(repeating: "![0].", count: 31) + "![0]")
    }

    @Test func nodeLimit() throws {
        let ok = JSONValue.object(["+": .array(Array(repeating: .integer(1), count: 1_999))])
        #expect(throws: Never.self) { try JSONLogic(ok) }
        let big = JSONValue.object(["+": .array(Array(repeating: .integer(1), count: 2_000))])
        let error = try #require(throws: JSONLogicError.self) { try JSONLogic(big) }
        #expect(error.description == "+[1999]: expression has more than 2000 nodes")
    }

    // MARK: - Variables

    @Test func variables() throws {
        let logic = try JSONLogic(JSONValue.parse(#"""
            {"and": [
                {"<=": [{"var": "max_bitrate"}, 50000]},
                {"==": [{"var": ["device.model", "x"]}, "stb"]},
                {"missing": ["a", "b"]},
                {"missing_some": [1, ["c", "d"]]},
                {"some": [{"var": "channels"}, {"==": [{"var": "id"}, 1]}]},
                {"reduce": [{"var": "list"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, {"var": "start"}]},
                {"var": 3}
            ]}
            """#))
        #expect(logic.variables == ["max_bitrate", "device.model", "a", "b", "c", "d", "channels", "list", "start", "3"])
        #expect(!logic.usesDynamicVariables)

        let dynamic = try JSONLogic(JSONValue.parse(#"{"var": {"cat": ["a", "b"]}}"#))
        #expect(dynamic.variables.isEmpty)
        #expect(dynamic.usesDynamicVariables)
        #expect(try JSONLogic(JSONValue.parse(#"{"missing": {"merge": ["a", "b"]}}"#)).usesDynamicVariables)
        #expect(try JSONLogic(JSONValue.parse(#"{"var": ""}"#)).usesDynamicVariables)
        // A computed name inside a map body reads the element, not the data.
        #expect(!(try JSONLogic(JSONValue.parse(#"{"map": [{"var": "xs"}, {"var": {"cat": ["a"]}}]}"#)).usesDynamicVariables))
    }

    // MARK: - Truthiness

    @Test func truthiness() {
        #expect(!JSONLogic.isTruthy(.array([])))
        #expect(JSONLogic.isTruthy(.array([.integer(0)])))
        #expect(JSONLogic.isTruthy(.string("0")))
        #expect(!JSONLogic.isTruthy(.string("")))
        #expect(!JSONLogic.isTruthy(.integer(0)))
        #expect(!JSONLogic.isTruthy(.double(0)))
        #expect(JSONLogic.isTruthy(.double(0.1)))
        #expect(!JSONLogic.isTruthy(.null))
        #expect(JSONLogic.isTruthy(.object([:])))
        #expect(!JSONLogic.isTruthy(.bool(false)))
        #expect(JSONLogic.isTruthy(.bool(true)))
    }

    // MARK: - Evaluation

    static func eval(_ rule: String, _ data: String = "null") throws -> JSONValue {
        try JSONLogic(JSONValue.parse(rule)).evaluate(data: JSONValue.parse(data))
    }

    @Test func lookupEvaluation() throws {
        let logic = try JSONLogic(JSONValue.parse(#"{"<=": [{"var": "max_bitrate"}, 50000]}"#))
        let data: [String: JSONValue] = ["max_bitrate": .integer(40000)]
        #expect(try logic.evaluate { data[$0] } == .bool(true))
        #expect(try logic.evaluate { _ in .integer(60000) } == .bool(false))
        // Dotted names: exact key first, then walk.
        let dotted = try JSONLogic(JSONValue.parse(#"[{"var": "a.b"}, {"var": "c.d.1"}, {"var": ["e.f", 7]}]"#))
        let values: [String: JSONValue] = [
            "a.b": .string("exact"), "a": .object(["b": .string("walked")]),
            "c": .object(["d": .array([.integer(0), .integer(1)])]),
        ]
        #expect(try dotted.evaluate { values[$0] } == .array([.string("exact"), .integer(1), .integer(7)]))
        // The whole data is not available through a lookup.
        #expect(throws: JSONLogicError.self) { try JSONLogic(JSONValue.parse(#"{"var": ""}"#)).evaluate { _ in nil } }
    }

    @Test func jsCoercions() throws {
        #expect(try Self.eval(#"{"cat": [1.0, 0.5, " ", 1e21, " ", 1e-7, " ", 123456789012345680000, null, true]}"#)
            == .string("10.5 1e+21 1e-7 123456789012345680000true"))
        #expect(try Self.eval(#"{"cat": [[1, [2, null]], {}]}"#) == .string("1,2,[object Object]"))
        #expect(try Self.eval(#"{"+": ["3.5abc", 1]}"#) == .double(4.5))
        #expect(try Self.eval(#"{"+": [0.1, 0.2]}"#) == .double(0.30000000000000004))
        #expect(try Self.eval(#"{"*": [1.5, 2]}"#) == .integer(3))
        #expect(try Self.eval(#"{"==": [null, 0]}"#) == .bool(false))
        #expect(try Self.eval(#"{"==": [false, "0"]}"#) == .bool(true))
        #expect(try Self.eval(#"{"==": [[1], 1]}"#) == .bool(true))
        #expect(try Self.eval(#"{"==": [" 1 ", 1]}"#) == .bool(true))
        #expect(try Self.eval(#"{"<": ["a", "b"]}"#) == .bool(true))
        #expect(try Self.eval(#"{"<": ["10", "9"]}"#) == .bool(true))
        #expect(try Self.eval(#"{"<": ["10", 9]}"#) == .bool(false))
        #expect(try Self.eval(#"{"<": [null, 1]}"#) == .bool(true))
        #expect(try Self.eval(#"{"<": ["abc", 1]}"#) == .bool(false))
        #expect(try Self.eval(#"{"%": [-7, 2]}"#) == .integer(-1))
        #expect(try Self.eval(#"{"/": [7, 2]}"#) == .double(3.5))
        #expect(try Self.eval(#"{"-": ["5"]}"#) == .integer(-5))
        #expect(try Self.eval(#"{"max": [1, 2.5, "3"]}"#) == .integer(3))
        #expect(try Self.eval(#"{"in": [1, [1.0]]}"#) == .bool(true))
        #expect(try Self.eval(#"{"substr": ["héllo", 1, 3]}"#) == .string("éll"))
        #expect(try Self.eval(#"{"var": ["a", 1]}"#, #"{"a": null}"#) == .null)
        #expect(try Self.eval(#"{"reduce": [[1, 2], {"var": ""}, 0]}"#) == .object(["current": .integer(2), "accumulator": .object(["current": .integer(1), "accumulator": .integer(0)])]))
        #expect(try Self.eval(#"{"+": [9223372036854775807, 1]}"#) == .double(9223372036854775808))
    }

    @Test func evaluationErrors() throws {
        let division = try #require(throws: JSONLogicError.self) { try Self.eval(#"{"and": [true, {"/": [1, {"var": "z"}]}]}"#, #"{"z": 0}"#) }
        #expect(division.description == "and[1]./: division by zero")
        #expect(throws: JSONLogicError.self) { try Self.eval(#"{"%": [1, 0]}"#) }
        let nan = try #require(throws: JSONLogicError.self) { try Self.eval(#"{"+": ["abc"]}"#) }
        #expect(nan.description == "+: result is not a finite number")
        let big = JSONValue.array(Array(repeating: .integer(1), count: 10_001))
        let logic = try JSONLogic(JSONValue.parse(#"{"map": [{"var": "xs"}, {"var": ""}]}"#))
        let error = try #require(throws: JSONLogicError.self) { try logic.evaluate(data: .object(["xs": big])) }
        #expect(error.path == "map")
        // Nested loops are bounded in total.
        let nestedLoops = try JSONLogic(JSONValue.parse(#"{"map": [{"var": "xs"}, {"map": [{"var": "xs"}, 1]}]}"#))
        let tenK = JSONValue.array(Array(repeating: .object(["xs": .array(Array(repeating: .integer(1), count: 10_000))]), count: 200))
        #expect(throws: JSONLogicError.self) { try nestedLoops.evaluate(data: .object(["xs": tenK])) }
    }

    @Test func hashableAndSendable() throws {
        let a = try JSONLogic(JSONValue.parse(#"{"==": [{"var": "x"}, 1]}"#))
        let b = try JSONLogic(JSONValue.parse(#"{"==": [{"var": "x"}, 1]}"#))
        #expect(a == b)
        #expect(Set([a, b]).count == 1)
        let sendable: any Sendable = a
        _ = sendable
    }

    @Test func timing() throws {
        let logic = try JSONLogic(JSONValue.parse(#"{"<=": [{"var": "max_bitrate"}, 50000]}"#))
        let data: [String: JSONValue] = ["max_bitrate": .integer(40000), "model": .string("stb-4k")]
        let iterations = 1_000_000
        var trues = 0
        let clock = ContinuousClock()
        let elapsed = try clock.measure {
            for _ in 0..<iterations {
                if case .bool(true) = try logic.evaluate({ data[$0] }) { trues += 1 }
            }
        }
        #expect(trues == iterations)
        let nanos = Double(elapsed.components.attoseconds) / 1e9 + Double(elapsed.components.seconds) * 1e9
        print("json-logic timing: \(iterations) evaluations in \(elapsed), \(nanos / Double(iterations)) ns each")
    }
}
