import STBJSON
import Testing

@Suite("JSON parser: what it refuses")
struct JSONParserTests {
    private func problem(_ text: String) -> String? {
        do {
            _ = try JSONValue.parse(text)
            return nil
        } catch {
            return error.description
        }
    }

    @Test(
        "a \\u0000 escape is refused in our own words, wherever the string is",
        arguments: [
            #""\u0000""#, #""a\u0000b""#, #"{"k": "\u0000"}"#, #"{"\u0000": 1}"#, #"["x", "y\u0000"]"#,
            #""\u0000\u0041""#,
        ])
    func nulEscapeIsRefused(_ text: String) throws {
        let message = try #require(problem(text), "\(text) was accepted")
        #expect(message.hasSuffix("\\u0000 (NUL) is not allowed in a string"), "\(message)")
    }

    @Test("escapes next to NUL still parse", arguments: [(#""\u0001""#, "\u{1}"), (#""\u0041""#, "A"), (#""\ud83d\ude80""#, "🚀")])
    func otherEscapes(_ text: String, _ expected: String) throws {
        #expect(try JSONValue.parse(text) == .string(expected))
    }

    @Test("every raw control character inside a string is refused", arguments: Array(0x00...0x1F) as [UInt32])
    func rawControlCharacter(_ code: UInt32) throws {
        let text = "{\"k\": \"a" + String(Unicode.Scalar(code)!) + "b\"}"
        let message = try #require(problem(text), "U+\(code) was accepted")
        #expect(message.contains("control character in a string"), "\(message)")
    }

    @Test(
        "anything but whitespace after the document is refused",
        arguments: ["{} x", "{}\u{0}", "{}\u{0}garbage", "[1] [2]", "1 2", "\"a\" \"b\"", "{}}", "null,", "{} \u{7F}", "{}\u{FEFF}"])
    func trailingText(_ text: String) throws {
        let message = try #require(problem(text), "\(text.debugDescription) was accepted")
        #expect(message.contains("unexpected text after the JSON value"), "\(message)")
    }

    @Test("whitespace around the document is fine", arguments: [" {} ", "\n[1]\n", "\t\"a\"\r\n"])
    func surroundingWhitespace(_ text: String) throws {
        _ = try JSONValue.parse(text)
    }
}

@Suite("quoted(_:): how messages show user values")
struct QuotedTests {
    @Test("short values are quoted whole, as JSON would")
    func shortValue() {
        #expect(quoted("abc") == "\"abc\"")
        #expect(quoted("say \"hi\"\\") == #""say \"hi\"\\""#)
        #expect(quoted("") == "\"\"")
        #expect(quoted(String(repeating: "a", count: 64)) == "\"" + String(repeating: "a", count: 64) + "\"")
    }

    @Test("a long value keeps its first 64 characters, then … and its length in bytes", arguments: [65, 1000, 100_000, 1_000_000])
    func longValue(_ count: Int) {
        let text = String(repeating: "a", count: count)
        #expect(quoted(text) == "\"" + String(repeating: "a", count: 64) + "…\" (\(count) bytes)")
    }

    @Test("length is counted in UTF-8 bytes, and cuts fall between scalars")
    func multiByte() {
        let text = String(repeating: "é", count: 100)  // 200 bytes
        #expect(quoted(text) == "\"" + String(repeating: "é", count: 64) + "…\" (200 bytes)")
    }

    @Test("one character made of a megabyte of combining marks stays short")
    func combiningMarks() {
        let text = "a" + String(repeating: "\u{301}", count: 500_000)
        let shown = quoted(text)
        #expect(shown.utf8.count < 200)
        #expect(shown.hasSuffix("…\" (1000001 bytes)"))
    }

    @Test(
        "control and invisible formatting characters are escaped",
        arguments: [
            ("\u{0}", "\\u0000"), ("\u{1B}", "\\u001b"), ("\n", "\\n"), ("\t", "\\t"), ("\u{7F}", "\\u007f"),
            ("\u{85}", "\\u0085"), ("\u{202E}", "\\u202e"), ("\u{2028}", "\\u2028"), ("\u{2066}", "\\u2066"),
            ("\u{200F}", "\\u200f"),
        ])
    func escapes(_ raw: String, _ shown: String) {
        #expect(quoted("x\(raw)y") == "\"x\(shown)y\"")
    }
}
