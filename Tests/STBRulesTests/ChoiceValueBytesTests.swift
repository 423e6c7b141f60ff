import STBJSON
import STBOptionValues
import Testing

@testable import STBRules

// A choice's value read from its bytes (as Evaluate reads a request) against the same text
// read as a String (`choiceValue`, the JSON parser behind it): the same value, or the same
// refusal, for each type and the spellings around the ones read without the parser.

@Suite struct ChoiceValueBytesTests {
    @Test func bytesReadAsTheTextIs() {
        let spellings = [
            "true", "false", "True", " true", "true ", "tru", "truee", "0", "1", "-1", "-0", "00", "01", "+1", "1.0", "1e3", "-",
            "", "123456789012345678", "-123456789012345678", "1234567890123456789", "99999999999999999999", "\"v1\"", "\"\"",
            "\"a b\"", "\"with \\\"quote\\\"\"", "\"tab\\t\"", "\"é\"", "\"\u{7F}\"", "\"unterminated", "\"", "null", "[1]",
            "{\"a\": 1}", "\"\(String(repeating: "x", count: 5_000))\"", " \"v1\"",
        ]
        var readHere = 0
        for type in OptionValueType.allCases {
            for text in spellings {
                let expected = Result { () throws(RulesService.ChoiceValueProblem) in try RulesService.choiceValue(text, type) }
                var utf8 = Array(text.utf8)
                let got = utf8.withUnsafeMutableBytes { raw in
                    Result { () throws(RulesService.ChoiceValueProblem) in try RulesService.choiceValue(bytes: UnsafeRawBufferPointer(raw), type) }
                }
                switch (expected, got) {
                case (.success(let a), .success(let b)): #expect(a == b, "\(type) \(text)")
                case (.failure(let a), .failure(let b)): #expect(a.message == b.message, "\(type) \(text)")
                default: Issue.record("\(type) \(text): \(expected) against \(got)")
                }
                let plain = utf8.withUnsafeBytes { raw in
                    RulesService.plainInteger(raw) != nil || RulesService.plainString(raw) != nil
                }
                if plain { readHere += 1 }
            }
        }
        // The fast spellings are taken (and so compared above).
        #expect(readHere > 20)
    }
}
