import STBJSON
import STBOptionValues
import STBTestSupport
import Testing

@Suite("Option value texts and their canonical form")
struct OptionValueTypeTests {
    @Test("integer texts: one canonical spelling; anything else is refused", arguments: [
        ("5", "5"), ("+5", "5"), ("007", "7"), ("-007", "-7"), ("-0", "0"), ("+0", "0"), ("000", "0"),
        ("9223372036854775807", "9223372036854775807"), ("-9223372036854775808", "-9223372036854775808"),
        ("+0009223372036854775807", "9223372036854775807"),
    ])
    func integerCanonical(text: String, canonical: String) throws {
        #expect(try OptionValueType.integer.parse(text).canonicalText == canonical)
    }

    @Test("not integers, or not within 64 bits", arguments: [
        "", "+", "-", " 5", "5 ", "5.0", "1e3", "0x10", "5_000", "٥", "１", "--5", "+-5", "9223372036854775808",
        "-9223372036854775809", "99999999999999999999999999", "abc", "5\n",
    ])
    func integerRefused(text: String) {
        #expect(throws: OptionValueProblem.self) { try OptionValueType.integer.parse(text) }
    }

    @Test("booleans are exactly true or false", arguments: ["True", "FALSE", "1", "0", "yes", " true", "true ", ""])
    func booleanRefused(text: String) {
        #expect(throws: OptionValueProblem.self) { try OptionValueType.boolean.parse(text) }
    }

    @Test("the canonical text reads back as itself (property over random integers)")
    func integerRoundTrip() throws {
        var generator = SplitMix(seed: 0x5eed)
        for _ in 0..<2000 {
            let number = generator.extremeInt64()
            let text = String(number)
            let spellings = [text, number >= 0 ? "+" + text : text, number >= 0 ? "000" + text : "-000" + String(text.dropFirst())]
            for spelling in spellings {
                let value = try OptionValueType.integer.parse(spelling)
                #expect(value == .integer(number) && value.canonicalText == text, "\(spelling)")
            }
        }
    }

    @Test("JSON values: the type decides; wrong types are refused", arguments: [
        (OptionValueType.boolean, "true", "true"), (.integer, "5", "5"), (.integer, "5.0", "5"), (.integer, "-0", "0"),
        (.integer, "9223372036854775807", "9223372036854775807"), (.string, #""abc""#, "abc"), (.enum, #""1080p""#, "1080p"),
    ])
    func jsonAccepted(type: OptionValueType, json: String, canonical: String) throws {
        #expect(try type.value(fromJSON: JSONValue.parse(json)).canonicalText == canonical)
    }

    @Test("JSON values of the wrong type", arguments: [
        (OptionValueType.boolean, "1"), (.boolean, #""true""#), (.boolean, "null"), (.integer, #""5""#), (.integer, "5.5"),
        (.integer, "1e30"), (.integer, "9223372036854775808"), (.integer, "true"), (.string, "5"), (.string, "[]"),
        (.enum, "1"), (.enum, "{}"),
    ])
    func jsonRefused(type: OptionValueType, json: String) throws {
        let value = try JSONValue.parse(json)
        #expect(throws: OptionValueProblem.self) { try type.value(fromJSON: value) }
    }

    @Test("free-text limits count bytes as well as characters")
    func textLimits() {
        // One character, 2,001 bytes: a letter and a thousand combining acute accents.
        let heavy = "e" + String(repeating: "\u{301}", count: 1000)
        #expect(heavy.count == 1 && heavy.utf8.count == 2001)
        #expect(TextLimit.name.problem(heavy)?.contains("800 bytes") == true)
        #expect(TextLimit.name.problem(String(repeating: "a", count: 200)) == nil)
        #expect(TextLimit.name.problem(String(repeating: "a", count: 201))?.contains("200 characters") == true)
        #expect(TextLimit.name.problem(String(repeating: "é", count: 200)) == nil)
        #expect(throws: OptionValueProblem.self) { try OptionValueType.string.parse(String(repeating: heavy, count: 10)) }
    }
}

