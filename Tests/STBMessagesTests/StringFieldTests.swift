import STBMessages
import STBTestSupport
import Testing

/// Where a string sits in an `AllKinds` message: how to put raw bytes there on the wire,
/// the field path a refusal must name, and how to read the decoded value back.
struct StringPlacement: Sendable, CustomTestStringConvertible {
    let name: String
    let path: String
    let wrap: @Sendable ([UInt8]) -> [UInt8]
    let read: @Sendable (Stb_Testing_V1_AllKinds) -> String?

    var testDescription: String { name }

    static let all: [StringPlacement] = [
        StringPlacement(name: "top-level", path: "f_string", wrap: { Wire.field(14, $0) }, read: { $0.fString }),
        StringPlacement(name: "nested message", path: "f_inner.name", wrap: { Wire.field(18, Wire.field(1, $0)) }, read: { $0.fInner?.name }),
        StringPlacement(name: "proto3 optional", path: "o_string", wrap: { Wire.field(31, $0) }, read: { $0.oString }),
        StringPlacement(
            name: "oneof member", path: "c_text", wrap: { Wire.field(40, $0) },
            read: { if case .cText(let text)? = $0.choice { text } else { nil } }),
        StringPlacement(
            name: "repeated, third element", path: "r_string[2]",
            wrap: { Wire.field(21, Wire.text("a")) + Wire.field(21, Wire.text("b")) + Wire.field(21, $0) },
            read: { $0.rString.count == 3 ? $0.rString[2] : nil }),
        StringPlacement(
            name: "repeated message, second element", path: "r_inner[1].name",
            wrap: { Wire.field(23, Wire.field(1, Wire.text("ok"))) + Wire.field(23, Wire.field(1, $0)) },
            read: { $0.rInner.count == 2 ? $0.rInner[1].name : nil }),
        StringPlacement(
            name: "map key", path: "m_counts[1].key",
            wrap: {
                Wire.field(50, Wire.field(1, Wire.text("first")) + [0x10, 0x01])
                    + Wire.field(50, Wire.field(1, $0) + [0x10, 0x02])
            },
            read: { counts in counts.mCounts.first { $0.value == 2 }?.key }),
        StringPlacement(
            name: "map value", path: "m_names[0].value", wrap: { Wire.field(52, [0x08, 0x07] + Wire.field(2, $0)) },
            read: { $0.mNames[7] }),
        StringPlacement(
            name: "string inside a map's message value", path: "m_inners[0].value.name",
            wrap: { Wire.field(51, Wire.field(1, Wire.text("k")) + Wire.field(2, Wire.field(1, $0))) },
            read: { $0.mInners["k"]?.name }),
    ]
}

/// Hand-made protobuf wire data, for bytes no Swift `String` can hold.
enum Wire {
    static func varint(_ value: Int) -> [UInt8] {
        var value = UInt64(value)
        var out: [UInt8] = []
        while value >= 0x80 {
            out.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
        return out
    }

    /// A length-delimited field (wire type 2).
    static func field(_ number: Int, _ payload: [UInt8]) -> [UInt8] {
        varint(number << 3 | 2) + varint(payload.count) + payload
    }

    static func text(_ string: String) -> [UInt8] { Array(string.utf8) }
}

/// Byte sequences that are not UTF-8, one per way UTF-8 can be broken.
let invalidUTF8: [(String, [UInt8])] = [
    ("lone continuation byte 0x80", [0x80]),
    ("lone continuation byte 0xBF", [0xBF]),
    ("0xFF 0xFE (never in UTF-8)", [0xFF, 0xFE]),
    ("overlong '/' (C0 AF)", [0xC0, 0xAF]),
    ("overlong DEL (C1 BF)", [0xC1, 0xBF]),
    ("overlong three-byte (E0 80 AF)", [0xE0, 0x80, 0xAF]),
    ("overlong four-byte (F0 80 80 AF)", [0xF0, 0x80, 0x80, 0xAF]),
    ("overlong NUL (C0 80)", [0xC0, 0x80]),
    ("high surrogate U+D800 encoded", [0xED, 0xA0, 0x80]),
    ("low surrogate U+DFFF encoded", [0xED, 0xBF, 0xBF]),
    ("surrogate pair encoded separately (CESU-8)", [0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]),
    ("truncated two-byte sequence", [0xC3]),
    ("truncated three-byte sequence", [0xE2, 0x82]),
    ("truncated four-byte sequence", [0xF0, 0x9F, 0x9A]),
    ("lead byte followed by ASCII", [0xE2, 0x41, 0x42]),
    ("above U+10FFFF (F4 90 80 80)", [0xF4, 0x90, 0x80, 0x80]),
    ("lead byte F5", [0xF5, 0x80, 0x80, 0x80]),
    ("five-byte form", [0xF8, 0x88, 0x80, 0x80, 0x80]),
]

/// Valid UTF-8 with U+0000 somewhere.
let withNUL: [(String, [UInt8])] = [
    ("NUL alone", [0x00]),
    ("NUL at the start", [0x00] + Array("abc".utf8)),
    ("NUL in the middle", Array("K".utf8) + [0x00] + Array(" DROP TABLE".utf8)),
    ("NUL at the end", Array("abc".utf8) + [0x00]),
    ("NUL after multi-byte text", Array("日本".utf8) + [0x00, 0x00]),
]

@Suite("String fields: valid UTF-8 without NUL, or a refusal naming the field")
struct StringFieldTests {
    @Test("each placement carries a valid string through (the table's wire data is right)", arguments: StringPlacement.all)
    func validStringDecodes(_ placement: StringPlacement) throws {
        let text = "héllo ✓ 🚀"
        let decoded = try Stb_Testing_V1_AllKinds(serializedBytes: placement.wrap(Wire.text(text)))
        #expect(placement.read(decoded) == text)
    }

    @Test(
        "invalid UTF-8 is refused with the field's path",
        arguments: StringPlacement.all, invalidUTF8.map(\.1))
    func invalidUTF8IsRefused(_ placement: StringPlacement, _ bad: [UInt8]) {
        for value in [bad, Wire.text("ok ") + bad, bad + Wire.text(" ok")] {
            let bytes = placement.wrap(value)
            let expected = ProtoDecodingError(
                code: .invalidUTF8, messageName: "stb.testing.v1.AllKinds", byteCount: bytes.count, fieldPath: placement.path)
            #expect(throws: expected, "\(value)") { try Stb_Testing_V1_AllKinds(serializedBytes: bytes) }
        }
    }

    @Test("a NUL character is refused with the field's path", arguments: StringPlacement.all, withNUL.map(\.1))
    func nulIsRefused(_ placement: StringPlacement, _ value: [UInt8]) {
        let bytes = placement.wrap(value)
        let expected = ProtoDecodingError(
            code: .nulCharacter, messageName: "stb.testing.v1.AllKinds", byteCount: bytes.count, fieldPath: placement.path)
        #expect(throws: expected) { try Stb_Testing_V1_AllKinds(serializedBytes: bytes) }
    }

    @Test("the refusal reads as field path and problem")
    func refusalDescription() throws {
        let badName = Wire.field(18, Wire.field(1, [0xC0, 0xAF]))
        let error = try #require(throws: ProtoDecodingError.self) { try Stb_Testing_V1_AllKinds(serializedBytes: badName) }
        #expect(error.description == "f_inner.name: not valid UTF-8")
        let nulKey = Wire.field(50, Wire.field(1, Array("K\u{0} DROP TABLE".utf8)))
        let nulError = try #require(throws: ProtoDecodingError.self) { try Stb_Testing_V1_AllKinds(serializedBytes: nulKey) }
        #expect(nulError.description == "m_counts[0].key: contains a NUL character")
    }

    @Test("a service message names the path from its top: repeated message, then field")
    func serviceMessagePath() throws {
        // EvaluateRequest: field 1 is `options` (repeated OptionChoice), whose field 1 is `key`.
        let choice = Wire.field(1, Wire.text("ok"))
        let bad = Wire.field(1, Wire.text("bad") + [0xED, 0xA0, 0x80])
        let bytes = Wire.field(1, choice) + Wire.field(1, choice) + Wire.field(1, choice) + Wire.field(1, bad)
        let error = try #require(throws: ProtoDecodingError.self) {
            try Stb_Rules_V1_EvaluateRequest(serializedBytes: bytes)
        }
        #expect(error.description == "options[3].key: not valid UTF-8")
    }

    @Test("text after a NUL is no longer dropped: a Swift string with NUL is sent whole, and refused on receipt")
    func nulIsNotTruncated() throws {
        let message = Stb_Testing_V1_AllKinds(fString: "K\u{0} DROP TABLE")
        let bytes = message.serializedBytes()
        #expect(bytes == Wire.field(14, Array("K\u{0} DROP TABLE".utf8)))
        #expect(throws: ProtoDecodingError.self) { try Stb_Testing_V1_AllKinds(serializedBytes: bytes) }
    }

    @Test("random byte strings: valid ones round-trip exactly, the rest are refused")
    func randomByteStrings() throws {
        var random = SplitMix64(seed: 0x5EED_0F_57B)
        // Whole characters (1 to 4 bytes, NUL and the edges of the ranges among them),
        // mixed with bytes that start, continue or break UTF-8 sequences, so all three
        // outcomes are common; and every fourth string fully random.
        let characters: [[UInt8]] = ["a", "\u{7F}", "é", "\u{7FF}", "€", "\u{FFFD}", "\u{FFFF}", "🚀", "\u{10FFFF}", "\u{0}"].map { Array($0.utf8) }
        let pool: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF]
        var counts = (valid: 0, invalid: 0, nul: 0)
        let placements = [StringPlacement.all[0], StringPlacement.all[4], StringPlacement.all[6], StringPlacement.all[8]]
        for round in 0..<4000 {
            let length = Int(random.next() % 9)
            var value: [UInt8] = []
            for _ in 0..<length {
                if round % 4 == 0 {
                    value.append(UInt8(truncatingIfNeeded: random.next()))
                } else if random.next() % 8 == 0 {
                    value.append(pool[Int(random.next() % UInt64(pool.count))])
                } else {
                    value += characters[Int(random.next() % UInt64(characters.count))]
                }
            }
            let expected = ReferenceUTF8.classify(value)
            for placement in placements {
                let bytes = placement.wrap(value)
                switch expected {
                case .valid:
                    let decoded = try Stb_Testing_V1_AllKinds(serializedBytes: bytes)
                    let text = try #require(placement.read(decoded), "\(value) in \(placement.name)")
                    #expect(Array(text.utf8) == value, "\(value) in \(placement.name)")
                    #expect(try Stb_Testing_V1_AllKinds(serializedBytes: decoded.serializedBytes()) == decoded)
                case .invalid, .nul:
                    let error = try #require(throws: ProtoDecodingError.self, "\(value) in \(placement.name)") {
                        try Stb_Testing_V1_AllKinds(serializedBytes: bytes)
                    }
                    #expect(error.code == (expected == .nul ? .nulCharacter : .invalidUTF8), "\(value)")
                    #expect(error.fieldPath == placement.path)
                }
            }
            switch expected {
            case .valid: counts.valid += 1
            case .invalid: counts.invalid += 1
            case .nul: counts.nul += 1
            }
        }
        // The generator must have produced plenty of each kind, or the test proves little.
        #expect(counts.valid > 300 && counts.invalid > 300 && counts.nul > 300, "\(counts)")
    }
}

/// UTF-8 validity straight from RFC 3629's table of well-formed byte sequences,
/// independent of the standard library the glue uses.
enum ReferenceUTF8 {
    enum Verdict { case valid, invalid, nul }

    static func classify(_ bytes: [UInt8]) -> Verdict {
        var index = 0
        var sawNUL = false
        while index < bytes.count {
            let lead = bytes[index]
            let ranges: [ClosedRange<UInt8>]
            switch lead {
            case 0x00: sawNUL = true; ranges = []
            case 0x01...0x7F: ranges = []
            case 0xC2...0xDF: ranges = [0x80...0xBF]
            case 0xE0: ranges = [0xA0...0xBF, 0x80...0xBF]
            case 0xE1...0xEC, 0xEE...0xEF: ranges = [0x80...0xBF, 0x80...0xBF]
            case 0xED: ranges = [0x80...0x9F, 0x80...0xBF]
            case 0xF0: ranges = [0x90...0xBF, 0x80...0xBF, 0x80...0xBF]
            case 0xF1...0xF3: ranges = [0x80...0xBF, 0x80...0xBF, 0x80...0xBF]
            case 0xF4: ranges = [0x80...0x8F, 0x80...0xBF, 0x80...0xBF]
            default: return .invalid
            }
            for (offset, range) in ranges.enumerated() {
                let position = index + 1 + offset
                guard position < bytes.count, range.contains(bytes[position]) else { return .invalid }
            }
            index += 1 + ranges.count
        }
        return sawNUL ? .nul : .valid
    }
}

/// A small deterministic generator, so a failure can be replayed.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E9B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
