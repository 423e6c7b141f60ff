import STBJSON
import STBOptionValues
import STBTestSupport
import Testing

@Suite("Option constraints: reading meta and checking values")
struct OptionConstraintsTests {
    static func constraints(_ type: OptionValueType, _ meta: String) throws -> (OptionConstraints, [String]) {
        let (constraints, problems) = OptionConstraints.parse(type: type, meta: try JSONValue.parse(meta))
        return (constraints, problems.map { $0.described(valuePath: "default", metaPath: "meta") })
    }

    @Test("meta problems name the member", arguments: [
        (OptionValueType.integer, #"{"min": "0"}"#, "meta.min: must be an integer"),
        (.integer, #"{"max": 1.5}"#, "meta.max: must be an integer"),
        (.integer, #"{"min": 9223372036854775808}"#, "meta.min: 9.223372036854776e+18 is not an integer from -9223372036854775808"),
        (.integer, #"{"min": 10, "max": 1}"#, "meta: min 10 is greater than max 1"),
        (.integer, #"{"step": 0}"#, "meta.step: must be positive"),
        (.integer, #"{"step": -9223372036854775808}"#, "meta.step: must be positive"),
        (.string, #"{"max_length": -1}"#, "meta.max_length: must be a non-negative integer"),
        (.string, #"{"max_length": 100000}"#, "meta.max_length: 100000 is more than"),
        (.string, #"{"pattern": 5}"#, "meta.pattern: must be a string"),
        (.string, #"{"pattern": "("}"#, "meta.pattern: \"(\" is not a valid pattern: missing )"),
        (.string, #"{"pattern": "(a)\\1"}"#, "meta.pattern:"),
        (.string, #"{"pattern": "(?=a)"}"#, "meta.pattern:"),
        (.string, #"{"pattern": "a{1001}"}"#, "meta.pattern:"),
        (.enum, #"{}"#, "meta.values: an enum needs a list of values"),
        (.enum, #"{"values": "a"}"#, "meta.values: an enum needs a list of values"),
        (.enum, #"{"values": []}"#, "meta.values: must not be empty"),
        (.enum, #"{"values": ["a", 1]}"#, "meta.values[1]: must be a string"),
        (.enum, #"{"values": ["a", ""]}"#, "meta.values[1]: must not be empty"),
        (.enum, #"{"values": ["a", "a"]}"#, "meta.values[1]: \"a\" is listed twice"),
        (.enum, #"{"values": ["\u00e9", "e\u0301"]}"#, "meta.values[1]:"),
    ])
    func metaProblems(type: OptionValueType, meta: String, expected: String) throws {
        let (_, problems) = try Self.constraints(type, meta)
        #expect(problems.contains { $0.hasPrefix(expected) }, "\(problems)")
    }

    @Test("a pattern longer than 1,024 bytes, and enum values past the limits")
    func sizeLimits() throws {
        let long = String(repeating: "a", count: 1025)
        let (_, patternProblems) = try Self.constraints(.string, #"{"pattern": "\#(long)"}"#)
        #expect(patternProblems.contains { $0.contains("longer than 1024 bytes") })
        let heavy = "e" + String(repeating: "\u{301}", count: 500)
        let (_, valueProblems) = try Self.constraints(.enum, #"{"values": ["\#(heavy)"]}"#)
        #expect(valueProblems.contains { $0.hasPrefix("meta.values[0]: longer than 800 bytes") })
        let many = "[" + (0...OptionConstraints.maxEnumValues).map { "\"v\($0)\"" }.joined(separator: ",") + "]"
        let (_, countProblems) = try Self.constraints(.enum, #"{"values": \#(many)}"#)
        #expect(countProblems.contains { $0.hasPrefix("meta.values: lists 1001 values") })
    }

    @Test("values against constraints", arguments: [
        (OptionValueType.integer, #"{"min": 0, "max": 100, "step": 5}"#, "50", nil as String?),
        (.integer, #"{"min": 0, "max": 100, "step": 5}"#, "105", "max"),
        (.integer, #"{"min": 0, "max": 100, "step": 5}"#, "-5", "min"),
        (.integer, #"{"min": 0, "max": 100, "step": 5}"#, "7", "step"),
        (.integer, #"{"min": 1, "step": 2}"#, "4", "step"),
        (.integer, #"{"min": 1, "step": 2}"#, "5", nil),
        (.integer, #"{"step": 3}"#, "-9", nil),
        (.integer, #"{"min": -1, "step": 1}"#, "9223372036854775807", nil),
        (.integer, #"{"min": -1, "step": 3}"#, "9223372036854775807", "step"),
        (.integer, #"{"min": 1}"#, "-9223372036854775808", "min"),
        (.integer, #"{"min": -9223372036854775808, "step": 9223372036854775807}"#, "9223372036854775807", "step"),
        (.integer, #"{"min": -9223372036854775808, "step": 9223372036854775807}"#, "9223372036854775806", nil),
        (.string, #"{"max_length": 3}"#, "abc", nil),
        (.string, #"{"max_length": 3}"#, "abcd", "max_length"),
        (.string, #"{"max_length": 1}"#, "e\u{301}", nil),
        (.string, #"{"pattern": "[a-z]+"}"#, "abc", nil),
        (.string, #"{"pattern": "[a-z]+"}"#, "abc1", "pattern"),
        (.string, #"{"pattern": "b"}"#, "abc", "pattern"),
        (.string, #"{"pattern": "a|ab"}"#, "ab", nil),
        (.string, #"{"pattern": "[A-Z]{2}"}"#, "DE", nil),
        (.string, #"{"pattern": "."}"#, "é", nil),
        (.enum, #"{"values": ["720p", "1080p"]}"#, "1080p", nil),
        (.enum, #"{"values": ["720p", "1080p"]}"#, "8k", "values"),
        (.enum, #"{"values": ["720p", "1080p"]}"#, "1080P", "values"),
        (.boolean, "{}", "true", nil),
    ])
    func violations(type: OptionValueType, meta: String, text: String, constraint: String?) throws {
        let (constraints, problems) = try Self.constraints(type, meta)
        #expect(problems.isEmpty)
        let (value, found) = constraints.check(text: text)
        #expect(value != nil)
        #expect(found.map(\.constraint) == (constraint.map { [$0] } ?? []), "\(found)")
    }

    @Test("step, min and max at random Int64 extremes: no trap, and the same verdict as 128-bit arithmetic")
    func integerProperty() throws {
        var generator = SplitMix(seed: 42)
        for _ in 0..<5000 {
            let value = generator.extremeInt64()
            let low: Int64? = generator.next() % 3 == 0 ? nil : generator.extremeInt64()
            let high: Int64? = generator.next() % 3 == 0 ? nil : generator.extremeInt64()
            let step: Int64? = generator.next() % 3 == 0 ? nil : generator.extremeInt64()
            var members: [String] = []
            if let low { members.append(#""min": \#(low)"#) }
            if let high { members.append(#""max": \#(high)"#) }
            if let step { members.append(#""step": \#(step)"#) }
            let (constraints, problems) = try Self.constraints(.integer, "{" + members.joined(separator: ", ") + "}")
            let metaValid = !(low != nil && high != nil && low! > high!) && !(step.map { $0 <= 0 } ?? false)
            #expect(problems.isEmpty == metaValid, "\(members) \(problems)")
            guard metaValid else { continue }
            let (_, found) = constraints.check(text: String(value))
            var expected: [String] = []
            if let low, value < low { expected.append("min") }
            if let high, value > high { expected.append("max") }
            if let step, (Int128(value) - Int128(low ?? 0)) % Int128(step) != 0 { expected.append("step") }
            #expect(found.compactMap(\.constraint) == expected, "\(value) \(members)")
        }
    }

    @Test("an enum value takes its listed spelling (Unicode normal forms)")
    func enumSpelling() throws {
        let (constraints, problems) = try Self.constraints(.enum, #"{"values": ["caf\u00e9", "tea"]}"#)
        #expect(problems.isEmpty)
        let decomposed = "cafe\u{301}"
        let (value, found) = constraints.check(text: decomposed)
        #expect(found.isEmpty)
        #expect(value?.canonicalText.utf8.elementsEqual("caf\u{e9}".utf8) == true)
    }
}
