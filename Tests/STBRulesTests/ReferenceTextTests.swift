import STBJSON
import Testing

import STBRules

// A reference's Kconfig text spells its value as the value's canonical JSON; integers and
// strings with nothing to escape are written without going through `canonicalText`.

@Suite struct ReferenceTextTests {
    @Test func valuesAreSpelledAsTheirCanonicalText() {
        let values: [JSONValue] = [
            .integer(0), .integer(-42), .integer(Int64.max), .integer(Int64.min), .double(2.5), .double(3),
            .string(""), .string("hevc"), .string("say \"hi\""), .string(#"back\slash"#), .string("tab\there"),
            .string("line\nbreak"), .string("bell\u{7}"), .string("del\u{7F}"), .string("é 漢字 🎬"), .string("a/b"),
            .array([.integer(1), .string("x\"y")]), .object(["k": .string("v")]),
        ]
        for value in values {
            let reference = Reference(optionKey: "opt", included: true, value: value)
            #expect(reference.kconfigText == "opt [=\(value.canonicalText)]", "\(value)")
        }
    }
}
