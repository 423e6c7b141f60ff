import STBMessages
import Testing

@Suite("AllKinds encode/decode through protobuf-c")
struct AllKindsRoundTripTests {
    @Test("every field set to a non-default value survives a round-trip")
    func referenceValueRoundTrips() throws {
        let original = Fixtures.referenceAllKinds
        let bytes = original.serializedBytes()
        #expect(!bytes.isEmpty)
        let decoded = try Stb_Testing_V1_AllKinds(serializedBytes: bytes)
        #expect(decoded == original)
        // Spot checks, so a broken Equatable could not hide a lost field.
        #expect(decoded.fUint64 == UInt64.max)
        #expect(decoded.fSint64 == Int64.min)
        #expect(decoded.fColor == .blue)
        #expect(decoded.rColor == [.red, .blue, .unrecognized(99)])
        #expect(decoded.mNames[9_000_000_000] == "big")
        #expect(decoded.fString == "héllo wörld ✓ 日本語 🚀")
    }

    @Test("an all-default message encodes to zero bytes and decodes from them")
    func defaultMessageIsEmpty() throws {
        #expect(Stb_Testing_V1_AllKinds().serializedBytes() == [])
        #expect(Stb_Testing_V1_AllKinds(fString: "", rInt32: [], mCounts: [:]).serializedBytes() == [])
        #expect(try Stb_Testing_V1_AllKinds(serializedBytes: [UInt8]()) == Stb_Testing_V1_AllKinds())
    }

    @Test("a negative enum value is sent as a sign-extended varint and comes back")
    func negativeEnum() throws {
        let message = Stb_Testing_V1_AllKinds(fColor: .blue)
        // Field 16, varint: tag 0x80 0x01, then -3 as a 10-byte varint.
        #expect(message.serializedBytes() == [0x80, 0x01, 0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        #expect(try message.roundTripped().fColor == .blue)
        #expect(Stb_Testing_V1_Color(rawValue: -3) == .blue)
        #expect(Stb_Testing_V1_Color.blue.rawValue == -3)
    }

    @Test("an unknown enum number stays .unrecognized through a round-trip")
    func unknownEnumValue() throws {
        let message = Stb_Testing_V1_AllKinds(
            fColor: .unrecognized(99),
            fMode: .unrecognized(-7),
            oColor: .unrecognized(99),
            mColors: ["x": .unrecognized(99)]
        )
        let decoded = try message.roundTripped()
        #expect(decoded.fColor == .unrecognized(99))
        #expect(decoded.fMode == .unrecognized(-7))
        #expect(decoded.oColor == .unrecognized(99))
        #expect(decoded.mColors == ["x": .unrecognized(99)])
        #expect(Stb_Testing_V1_Color(rawValue: 99) == .unrecognized(99))
        #expect(Stb_Testing_V1_AllKinds.Mode(rawValue: 1) == .fast)
    }

    @Test(
        "each oneof case round-trips, including zero values",
        arguments: [
            Stb_Testing_V1_AllKinds.OneOf_Choice.cText("text"),
            .cText(""),
            .cNumber(0),
            .cNumber(-9_000_000_000),
            .cInner(Stb_Testing_V1_Inner()),
            .cInner(Stb_Testing_V1_Inner(name: "n", value: 3)),
            .cBlob([]),
            .cBlob([0, 0xFF]),
        ]
    )
    func oneofCase(_ choice: Stb_Testing_V1_AllKinds.OneOf_Choice) throws {
        let message = Stb_Testing_V1_AllKinds(choice: choice)
        // A set oneof member is on the wire even when it holds a zero value.
        #expect(!message.serializedBytes().isEmpty)
        #expect(try message.roundTripped().choice == choice)
    }

    @Test("an unset oneof decodes as nil")
    func oneofUnset() throws {
        #expect(try Stb_Testing_V1_AllKinds(fInt32: 1).roundTripped().choice == nil)
    }

    @Test("proto3 optional: zero is present on the wire, nil is absent")
    func optionalZeroVersusNil() throws {
        // Field 30, varint 0.
        #expect(Stb_Testing_V1_AllKinds(oInt32: 0).serializedBytes() == [0xF0, 0x01, 0x00])
        #expect(Stb_Testing_V1_AllKinds(oInt32: nil).serializedBytes() == [])

        let zeros = Stb_Testing_V1_AllKinds(oInt32: 0, oString: "", oBool: false, oColor: .unspecified, oBytes: [])
        let decoded = try zeros.roundTripped()
        #expect(decoded.oInt32 == 0)
        #expect(decoded.oString == "")
        #expect(decoded.oBool == false)
        #expect(decoded.oColor == .unspecified)
        #expect(decoded.oBytes == [])

        let absent = try Stb_Testing_V1_AllKinds().roundTripped()
        #expect(absent.oInt32 == nil)
        #expect(absent.oString == nil)
        #expect(absent.oBool == nil)
        #expect(absent.oColor == nil)
        #expect(absent.oBytes == nil)
    }

    @Test("an empty nested message is present; a nil one is absent")
    func emptyVersusAbsentMessage() throws {
        // Field 18, length-delimited, length 0.
        #expect(Stb_Testing_V1_AllKinds(fInner: Stb_Testing_V1_Inner()).serializedBytes() == [0x92, 0x01, 0x00])
        #expect(try Stb_Testing_V1_AllKinds(fInner: Stb_Testing_V1_Inner()).roundTripped().fInner == Stb_Testing_V1_Inner())
        #expect(try Stb_Testing_V1_AllKinds(fInner: nil).roundTripped().fInner == nil)
    }

    @Test("maps with several entries of every value kind round-trip")
    func maps() throws {
        var counts: [String: Int32] = [:]
        for index in 0..<50 {
            counts["key-\(index)"] = Int32(index) - 25
        }
        let message = Stb_Testing_V1_AllKinds(
            mCounts: counts,
            mInners: ["a": Stb_Testing_V1_Inner(name: "A", value: 1), "": Stb_Testing_V1_Inner(), "ü": Stb_Testing_V1_Inner(value: -1)],
            mNames: [.min: "min", .max: "max", 0: ""],
            mColors: ["r": .red, "b": .blue, "u": .unspecified]
        )
        let decoded = try message.roundTripped()
        #expect(decoded.mCounts.count == 50)
        #expect(decoded.mCounts["key-0"] == -25)
        #expect(decoded.mInners.count == 3)
        #expect(decoded.mNames[.min] == "min")
        #expect(decoded == message)
    }

    @Test(
        "unicode strings keep every scalar",
        arguments: ["日本語テキスト", "emoji 🚀👩‍👩‍👧‍👦", "e\u{301} combining", "ASCII", "Ωμέγα", String(repeating: "ß", count: 3000)]
    )
    func unicodeStrings(_ text: String) throws {
        let message = Stb_Testing_V1_AllKinds(fString: text, rString: [text, text], oString: text, choice: .cText(text))
        let decoded = try message.roundTripped()
        #expect(decoded.fString.unicodeScalars.elementsEqual(text.unicodeScalars))
        #expect(decoded == message)
    }

    @Test("extreme integers and floats round-trip exactly")
    func extremeNumbers() throws {
        let message = Stb_Testing_V1_AllKinds(
            fDouble: -.greatestFiniteMagnitude,
            fFloat: .leastNonzeroMagnitude,
            fInt32: .min,
            fInt64: .max,
            fUint32: .max,
            fUint64: .max,
            fSint32: .min,
            fSint64: .max,
            fFixed32: .max,
            fFixed64: .max,
            fSfixed32: .max,
            fSfixed64: .min,
            rDouble: [.infinity, -.infinity, 0.1],
            rSint64: [.max, .min]
        )
        #expect(try message.roundTripped() == message)
    }

    @Test("a graph larger than one arena chunk encodes correctly")
    func largeMessage() throws {
        let message = Stb_Testing_V1_AllKinds(
            fBytes: Array(repeating: 0xAB, count: 100_000),
            rString: (0..<1000).map { "string number \($0)" },
            rInner: (0..<500).map { Stb_Testing_V1_Inner(name: "inner \($0)", value: Int32($0)) },
            mCounts: Dictionary(uniqueKeysWithValues: (0..<300).map { ("k\($0)", Int32($0)) })
        )
        let bytes = message.serializedBytes()
        #expect(bytes.count > 100_000)
        #expect(try Stb_Testing_V1_AllKinds(serializedBytes: bytes) == message)
    }

    @Test("serialize(into:) appends after what the buffer already holds")
    func serializeAppends() throws {
        let message = Stb_Testing_V1_Inner(name: "appended", value: 5)
        var buffer: [UInt8] = [0x00, 0x00, 0x00, 0x00, 0x0C]
        message.serialize(into: &buffer)
        message.serialize(into: &buffer)
        let single = message.serializedBytes()
        #expect(buffer.count == 5 + 2 * single.count)
        #expect(Array(buffer.prefix(5)) == [0x00, 0x00, 0x00, 0x00, 0x0C])
        #expect(Array(buffer[5..<(5 + single.count)]) == single)
        #expect(Array(buffer.suffix(single.count)) == single)
        #expect(try Stb_Testing_V1_Inner(serializedBytes: Array(buffer.suffix(single.count))) == message)
    }

    @Test(
        "malformed input throws ProtoDecodingError",
        arguments: [
            [0xFF, 0xFF, 0xFF],  // truncated varint tag
            [0x72, 0x05, 0x61],  // f_string claims 5 bytes, has 1
            [0x92, 0x01, 0x02, 0x08],  // f_inner's body is cut short
            [0x09, 0x00],  // f_double with 1 of 8 bytes
        ] as [[UInt8]]
    )
    func malformedInput(_ bytes: [UInt8]) {
        #expect(throws: ProtoDecodingError(messageName: "stb.testing.v1.AllKinds", byteCount: bytes.count)) {
            try Stb_Testing_V1_AllKinds(serializedBytes: bytes)
        }
    }

    @Test("the decoding error explains itself")
    func decodingErrorDescription() {
        let error = ProtoDecodingError(messageName: "stb.testing.v1.AllKinds", byteCount: 3)
        #expect(error.description == "cannot decode stb.testing.v1.AllKinds from 3 bytes: malformed protobuf data")
    }

    @Test("messages know their proto names")
    func protoMessageNames() {
        #expect(Stb_Testing_V1_AllKinds.protoMessageName == "stb.testing.v1.AllKinds")
        #expect(Stb_Testing_V1_Inner.protoMessageName == "stb.testing.v1.Inner")
        #expect(Stb_Common_V1_PageInfo.protoMessageName == "stb.common.v1.PageInfo")
    }
}
