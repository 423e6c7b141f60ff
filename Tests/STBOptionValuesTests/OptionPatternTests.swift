import STBOptionValues
import Testing

@Suite("Patterns run on RE2: linear time, full match")
struct OptionPatternTests {
    @Test("catastrophic patterns against long inputs finish at once", arguments: [
        "(a+)+b", "(a|a)*b", "(.*a){20}", "((a*)*)*b", "(a|aa)+b", "(\\w+\\s?)+!", "([a-z]+)*[0-9]", "(x+x+)+y",
    ])
    func catastrophic(pattern: String) throws {
        let compiled = try OptionPattern(pattern)
        let clock = ContinuousClock()
        for length in [20, 30, 1000, 16384] {
            let input = String(repeating: "a", count: length - 1) + "!"
            let elapsed = clock.measure { _ = compiled.matches(input) }
            // The backtracking engine took 15 s at 20 characters and doubled per character;
            // a third of that separates it from RE2 on a loaded machine too.
            #expect(elapsed < .seconds(5), "\(pattern) on \(length) characters took \(elapsed)")
        }
    }

    @Test("full-match semantics", arguments: [
        ("[a-z]+", "abc", true), ("[a-z]+", "abc1", false), ("[a-z]+", "", false), ("b", "abc", false),
        ("a|ab", "ab", true), ("(a|b)*", "", true), ("[A-Z]{2}", "DE", true), ("[A-Z]{2}", "DEU", false),
        ("https://[^\\s]+", "https://x.example/p", true), ("https://[^\\s]+", "https://x y", false),
        (".", "é", true), ("..", "e\u{301}", true), ("a.c", "a\nc", false),
    ])
    func fullMatch(pattern: String, value: String, matches: Bool) throws {
        #expect(try OptionPattern(pattern).matches(value) == matches)
    }

    @Test("syntax RE2 does not have, or cannot compile within its budget, is refused", arguments: [
        "(", "[a-", "a**", "(a)\\1", "(?=a)", "(?<!a)b", "a{1001}", "((((a{100}){100}){100}){100})", "\\",
    ])
    func refused(pattern: String) {
        #expect(throws: OptionPatternError.self) { try OptionPattern(pattern) }
    }

    @Test("messages are short, even for long patterns")
    func shortMessages() {
        let pattern = "(" + String(repeating: "a", count: 1000)
        do {
            _ = try OptionPattern(pattern)
            Issue.record("compiled \(pattern)")
        } catch {
            #expect(error.message.count <= 160)
        }
        #expect(throws: OptionPatternError(message: "longer than 1024 bytes")) { try OptionPattern(String(repeating: "a", count: 1025)) }
    }
}
