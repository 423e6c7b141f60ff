import STBJSON
import Testing

@Suite("RFC 8785 canonical form (jcsBytes)")
struct JCSTests {
    private func jcs(_ value: JSONValue) throws -> String {
        try value.jcsText()
    }

    private func jcs(parsing text: String) throws -> String {
        try JSONValue.parse(text).jcsText()
    }

    private func refusal(_ value: JSONValue) -> JCSError? {
        do {
            _ = try value.jcsBytes()
            return nil
        } catch {
            return error
        }
    }

    /// RFC 8785 Appendix B: IEEE 754 bit patterns and the text ECMAScript writes for them.
    @Test(
        "the RFC 8785 Appendix B numbers",
        arguments: [
            (0x0000_0000_0000_0000, "0"),
            (0x8000_0000_0000_0000, "0"),
            (0x0000_0000_0000_0001, "5e-324"),
            (0x8000_0000_0000_0001, "-5e-324"),
            (0x7FEF_FFFF_FFFF_FFFF, "1.7976931348623157e+308"),
            (0xFFEF_FFFF_FFFF_FFFF, "-1.7976931348623157e+308"),
            (0x4340_0000_0000_0000, "9007199254740992"),
            (0xC340_0000_0000_0000, "-9007199254740992"),
            (0x4430_0000_0000_0000, "295147905179352830000"),
            (0x44B5_2D02_C7E1_4AF5, "9.999999999999997e+22"),
            (0x44B5_2D02_C7E1_4AF6, "1e+23"),
            (0x44B5_2D02_C7E1_4AF7, "1.0000000000000001e+23"),
            (0x444B_1AE4_D6E2_EF4E, "999999999999999700000"),
            (0x444B_1AE4_D6E2_EF4F, "999999999999999900000"),
            (0x444B_1AE4_D6E2_EF50, "1e+21"),
            (0x3EB0_C6F7_A0B5_ED8C, "9.999999999999997e-7"),
            (0x3EB0_C6F7_A0B5_ED8D, "0.000001"),
            (0x41B3_DE43_5555_5553, "333333333.3333332"),
            (0x41B3_DE43_5555_5554, "333333333.33333325"),
            (0x41B3_DE43_5555_5555, "333333333.3333333"),
            (0x41B3_DE43_5555_5556, "333333333.3333334"),
            (0x41B3_DE43_5555_5557, "333333333.33333343"),
            (0xBECB_F647_612F_3696, "-0.0000033333333333333333"),
            (0x4314_3FF3_C1CB_0959, "1424953923781206.2"),
        ] as [(UInt64, String)])
    func appendixBNumbers(_ bits: UInt64, _ expected: String) throws {
        #expect(try jcs(.double(Double(bitPattern: bits))) == expected)
    }

    @Test(
        "doubles in ECMAScript's layout: no .0, exponents with a sign and no leading zero, 1e21 and 1e-7 the switch points",
        arguments: [
            (1e30, "1e+30"), (4.5, "4.5"), (0.002, "0.002"), (1e-7, "1e-7"), (1e-6, "0.000001"),
            (1.5e-7, "1.5e-7"), (1e21, "1e+21"), (1e20, "100000000000000000000"), (1.0, "1"), (100.0, "100"),
            (-0.0, "0"), (-1.5, "-1.5"), (0.1, "0.1"), (123e-20, "1.23e-18"), (1e16, "10000000000000000"),
            (1_152_921_504_606_846_976.0, "1152921504606847000"), (1.7976931348623157e308, "1.7976931348623157e+308"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"), (12345.678, "12345.678"),
        ] as [(Double, String)])
    func ecmaScriptLayout(_ value: Double, _ expected: String) throws {
        #expect(try jcs(.double(value)) == expected)
    }

    @Test("integers within ±(2^53 − 1) are their digits", arguments: [
        (0, "0"), (-1, "-1"), (42, "42"), (9_007_199_254_740_991, "9007199254740991"), (-9_007_199_254_740_991, "-9007199254740991"),
    ] as [(Int64, String)])
    func safeIntegers(_ value: Int64, _ expected: String) throws {
        #expect(try jcs(.integer(value)) == expected)
    }

    @Test("integers beyond ±(2^53 − 1) are refused, not rounded to a neighbour", arguments: [
        Int64(9_007_199_254_740_992), -9_007_199_254_740_992, 9_007_199_254_740_993, .max, .min,
    ])
    func unsafeIntegers(_ value: Int64) throws {
        let error = try #require(refusal(.integer(value)))
        #expect(error.code == .integerOutOfRange)
        #expect(error.path.isEmpty)
        #expect(error.description.contains("\(value)"))
    }

    @Test("NaN and the infinities are refused, with where they are", arguments: [Double.nan, .infinity, -.infinity])
    func nonFinite(_ value: Double) throws {
        let error = try #require(refusal(["config": ["limits": .array([.integer(1), ["cap": .double(value)]])]]))
        #expect(error.code == .nonFiniteNumber)
        #expect(error.path == "config.limits[1].cap")
        #expect(error.description.hasPrefix("config.limits[1].cap: "))
    }

    /// RFC 8785 §3.2.4: the sample input and its canonical form.
    @Test("the RFC 8785 §3.2.4 example")
    func rfcExample() throws {
        let input = #"""
            {
              "numbers": [333333333.33333329, 1E30, 4.50,
                          2e-3, 0.000000000000000000000000001],
              "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
              "literals": [null, true, false]
            }
            """#
        let expected = #"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        #expect(try jcs(parsing: input) == expected)
    }

    /// RFC 8785 §3.2.3: names sort by UTF-16 code units, so U+1F600 (a surrogate pair,
    /// D83D DE00) comes before U+FB33, though its scalar value is larger.
    @Test("object members sort by UTF-16 code units, with a non-BMP name (RFC 8785 §3.2.3)")
    func utf16Order() throws {
        let input = #"""
            {
              "\u20ac": "Euro Sign",
              "\r": "Carriage Return",
              "\ufb33": "Hebrew Letter Dalet With Dagesh",
              "1": "One",
              "\ud83d\ude00": "Emoji: Grinning Face",
              "\u0080": "Control",
              "\u00f6": "Latin Small Letter O With Diaeresis"
            }
            """#
        let expected = #"{"\r":"Carriage Return","1":"One","\#u{80}":"Control","ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😀":"Emoji: Grinning Face","דּ":"Hebrew Letter Dalet With Dagesh"}"#
        #expect(try jcs(parsing: input) == expected)
        // Two non-BMP names: the order of their surrogates, then a BMP name above them.
        #expect(try jcs(["\u{FFFF}": .integer(1), "\u{10000}": .integer(2), "\u{1F600}": .integer(3), "\u{E000}": .integer(4), "a": .integer(5)])
            == #"{"a":5,"𐀀":2,"😀":3,"\#u{E000}":4,"\#u{FFFF}":1}"#)
    }

    @Test("strings escape only quote, backslash and U+0000...U+001F; the short forms where JSON has them")
    func stringEscapes() throws {
        var expected = ""
        for code in 0x01...0x1F {
            switch code {
            case 0x08: expected += "\\b"
            case 0x09: expected += "\\t"
            case 0x0A: expected += "\\n"
            case 0x0C: expected += "\\f"
            case 0x0D: expected += "\\r"
            default: expected += "\\u00" + (code < 16 ? "0" : "") + String(code, radix: 16)
            }
        }
        let controls = String(String.UnicodeScalarView((0x01...0x1F).compactMap(Unicode.Scalar.init)))
        #expect(try jcs(.string(controls)) == "\"" + expected + "\"")
        #expect(expected.contains("\\u001f") && expected.contains("\\u000b"), "lowercase hex")
        #expect(try jcs(.string("\u{0}")) == #""\u0000""#)
        // Solidus, DEL, C1 controls, line separators and non-ASCII stay as they are.
        #expect(try jcs(.string("\"\\/\u{7F}\u{85}\u{2028}é🚀")) == "\"\\\"\\\\/\u{7F}\u{85}\u{2028}é🚀\"")
    }

    @Test("strings are not normalized: canonically equivalent texts keep their own bytes")
    func noNormalization() throws {
        let composed = try JSONValue.string("\u{E9}").jcsBytes()
        let decomposed = try JSONValue.string("e\u{301}").jcsBytes()
        #expect(composed == [0x22, 0xC3, 0xA9, 0x22])
        #expect(decomposed == [0x22, 0x65, 0xCC, 0x81, 0x22])
    }

    @Test("layout and member order of the input do not matter; the canonical form is compact")
    func layoutIndependent() throws {
        let a = try jcs(parsing: #"{"b": [1, 2.0, {"y": null, "x": true}], "a": {}, "c": []}"#)
        let b = try jcs(parsing: "{\n  \"c\" : [ ],\n\t\"a\":{ },\"b\":[1,2,{\"x\":true,\"y\":null}]\n}")
        #expect(a == #"{"a":{},"b":[1,2,{"x":true,"y":null}],"c":[]}"#)
        #expect(a == b)
        #expect(try jcs(.null) == "null")
        #expect(try jcs(.bool(false)) == "false")
    }

    @Test("appendJCS appends; jcsBytes, jcsText and the digest agree")
    func appending() throws {
        var output = Array("prefix:".utf8)
        try JSONValue.array([.integer(1), .string("x")]).appendJCS(to: &output)
        #expect(String(decoding: output, as: UTF8.self) == #"prefix:[1,"x"]"#)
        let value: JSONValue = ["k": .double(0.5)]
        #expect(try value.jcsBytes() == Array(value.jcsText().utf8))
        // hashlib.sha256(rfc8785.dumps({"k": 0.5})).hexdigest()
        #expect(try SHA256.hexHash(value.jcsBytes()) == "afa88efe45f838c6ff8419706ab4a1c06b4f83ee4c999ad0e818a5acc1742c98")
    }
}
