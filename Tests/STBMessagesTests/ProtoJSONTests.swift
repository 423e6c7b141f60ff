import STBMessages
import Testing

/// Parses `text` as `Message`, or returns the error.
private func parse<Message: ProtoMessage>(_ text: String, as _: Message.Type = Stb_Testing_V1_AllKinds.self) -> Result<Message, ProtoJSONError> {
    do throws(ProtoJSONError) {
        return .success(try Message(jsonUTF8: Array(text.utf8)))
    } catch {
        return .failure(error)
    }
}

/// The error parsing `bytes` as AllKinds gives (nil when it parses).
private func refusal(_ bytes: [UInt8]) -> ProtoJSONError? {
    do throws(ProtoJSONError) {
        _ = try Stb_Testing_V1_AllKinds(jsonUTF8: bytes)
        return nil
    } catch {
        return error
    }
}

private func refusal(_ text: String) -> ProtoJSONError? {
    refusal(Array(text.utf8))
}

@Suite("proto3 JSON: output")
struct ProtoJSONOutputTests {
    @Test("defaults are omitted; names are lowerCamelCase; 64-bit integers are strings")
    func scalars() {
        #expect(Stb_Testing_V1_AllKinds().jsonString() == "{}")
        let message = Stb_Testing_V1_AllKinds(
            fInt32: -5, fInt64: .min, fUint32: .max, fUint64: .max, fSint32: 0, fFixed64: 7,
            fBool: true, fString: "a\"b\\c\n\u{1}é", fBytes: [0xFB, 0xFF], fColor: .blue, fMode: .fast)
        #expect(message.jsonString() == #"{"fInt32":-5,"fInt64":"-9223372036854775808","fUint32":4294967295,"fUint64":"18446744073709551615","fFixed64":"7","fBool":true,"fString":"a\"b\\c\n\u0001é","fBytes":"+/8=","fColor":"COLOR_BLUE","fMode":"MODE_FAST"}"#)
    }

    @Test("floating point: shortest round-trip form, NaN and the infinities as strings, -0 kept")
    func floatingPoint() {
        #expect(Stb_Testing_V1_AllKinds(fDouble: 0.1, fFloat: 0.1).jsonString() == #"{"fDouble":0.1,"fFloat":0.1}"#)
        #expect(Stb_Testing_V1_AllKinds(rDouble: [.nan, .infinity, -.infinity, -0.0, 1e300, .leastNonzeroMagnitude]).jsonString()
            == #"{"rDouble":["NaN","Infinity","-Infinity",-0.0,1e+300,5e-324]}"#)
        #expect(Stb_Testing_V1_AllKinds(fFloat: -.infinity).jsonString() == #"{"fFloat":"-Infinity"}"#)
        #expect(Stb_Testing_V1_AllKinds(fDouble: -0.0).jsonString() == #"{"fDouble":-0.0}"#)
    }

    @Test("optional fields and the set oneof member are written even at their default")
    func presence() {
        let message = Stb_Testing_V1_AllKinds(oInt32: 0, oString: "", oBool: false, oColor: .unspecified, oBytes: [], choice: .cNumber(0))
        #expect(message.jsonString() == #"{"oInt32":0,"oString":"","oBool":false,"oColor":"COLOR_UNSPECIFIED","oBytes":"","cNumber":"0"}"#)
        #expect(Stb_Testing_V1_AllKinds(fInner: Stb_Testing_V1_Inner()).jsonString() == #"{"fInner":{}}"#)
    }

    @Test("unknown enum numbers are written as numbers; repeated and maps")
    func collections() {
        let message = Stb_Testing_V1_AllKinds(
            rColor: [.red, .unrecognized(99)], rSint64: [-1], mNames: [-5: "x"], mColors: ["k": .unrecognized(-7)])
        #expect(message.jsonString() == #"{"rColor":["COLOR_RED",99],"rSint64":["-1"],"mNames":{"-5":"x"},"mColors":{"k":-7}}"#)
    }

    @Test("the reference value survives JSON both ways")
    func referenceRoundTrip() throws {
        let json = Fixtures.referenceAllKinds.jsonUTF8Bytes()
        #expect(try Stb_Testing_V1_AllKinds(jsonUTF8: json) == Fixtures.referenceAllKinds)
    }

    @Test("serializeJSON appends to what the buffer holds")
    func appends() {
        var buffer = Array("x".utf8)
        Stb_Testing_V1_Inner(name: "n").serializeJSON(into: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self) == #"x{"name":"n"}"#)
    }
}

@Suite("proto3 JSON: input")
struct ProtoJSONInputTests {
    @Test("both the json_name and the proto name of a field are accepted")
    func names() throws {
        let a = try parse(#"{"fInt32": 1, "f_int64": "2", "rInner": [{"name": "x"}], "r_bool": [true]}"#).get()
        #expect(a == Stb_Testing_V1_AllKinds(fInt32: 1, fInt64: 2, rInner: [Stb_Testing_V1_Inner(name: "x")], rBool: [true]))
    }

    @Test("integers as numbers or strings, exponent forms when integral")
    func integers() throws {
        let m = try parse(#"{"fInt32": "-7", "fInt64": 1e2, "fUint64": "18446744073709551615", "fSint64": -9223372036854775808, "fUint32": 4.2e1, "fSfixed32": "1.0e1", "fFixed32": 0.5e1}"#).get()
        #expect(m.fInt32 == -7)
        #expect(m.fInt64 == 100)
        #expect(m.fUint64 == .max)
        #expect(m.fSint64 == .min)
        #expect(m.fUint32 == 42)
        #expect(m.fSfixed32 == 10)
        #expect(m.fFixed32 == 5)
    }

    @Test("null is the default, or unset for fields with presence")
    func nulls() throws {
        let m = try parse(#"{"fInt32": null, "fString": null, "fInner": null, "oInt32": null, "rInt32": null, "mCounts": null, "cText": null, "fColor": null}"#).get()
        #expect(m == Stb_Testing_V1_AllKinds())
    }

    @Test("enums by name or number; bytes in either base64 alphabet, padded or not")
    func enumsAndBytes() throws {
        let m = try parse(#"{"fColor": -3, "fMode": "MODE_SAFE", "rColor": [1, "COLOR_GREEN", 42], "fBytes": "-_8", "rBytes": ["+/8=", "", "AA"]}"#).get()
        #expect(m.fColor == .blue)
        #expect(m.fMode == .safe)
        #expect(m.rColor == [.red, .green, .unrecognized(42)])
        #expect(m.fBytes == [0xFB, 0xFF])
        #expect(m.rBytes == [[0xFB, 0xFF], [], [0]])
    }

    @Test("floating point: numbers, quoted numbers and the special strings")
    func floats() throws {
        let m = try parse(#"{"fDouble": "1.5", "fFloat": 3.4028234e38, "rDouble": ["NaN", "Infinity", "-Infinity", -0.0, 1E-2]}"#).get()
        #expect(m.fDouble == 1.5)
        #expect(m.fFloat == .greatestFiniteMagnitude)
        #expect(m.rDouble[0].isNaN)
        #expect(Array(m.rDouble.dropFirst()) == [.infinity, -.infinity, 0, 0.01])
        #expect(m.rDouble[3].sign == .minus)
    }

    @Test("maps: string keys, integer keys from their text, message values")
    func maps() throws {
        let m = try parse(#"{"mNames": {"-5": "a", "9000000000": "b"}, "mInners": {"k": {"value": 2}}, "mCounts": {"": 1}}"#).get()
        #expect(m.mNames == [-5: "a", 9_000_000_000: "b"])
        #expect(m.mInners == ["k": Stb_Testing_V1_Inner(value: 2)])
        #expect(m.mCounts == ["": 1])
    }

    @Test("escapes in strings and keys, surrogate pairs, whitespace")
    func escapes() throws {
        let m = try parse(" {\n\t\"f\\u005fstring\" : \"\\u00e9\\ud83d\\ude80\\/\\\"\" } \n").get()
        #expect(m.fString == "é🚀/\"")
    }

    @Test("a oneof member after a null for another is accepted")
    func oneofNull() throws {
        let m = try parse(#"{"cText": null, "cNumber": "5"}"#).get()
        #expect(m.choice == .cNumber(5))
    }
}

@Suite("proto3 JSON: refusals name the path and say why")
struct ProtoJSONRefusalTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var json: String
        var path: String
        var reason: String
        var testDescription: String { json }
    }

    static let cases: [Case] = [
        Case(json: #"{"bogus": 1}"#, path: "", reason: #"unknown field "bogus" (stb.testing.v1.AllKinds has no such field)"#),
        Case(json: #"{"fInner": {"name": "a", "nope": 1}}"#, path: "f_inner", reason: #"unknown field "nope" (stb.testing.v1.Inner has no such field)"#),
        Case(json: #"{"fInt32": 1, "f_int32": 2}"#, path: "f_int32", reason: "field given more than once"),
        Case(json: #"{"fInt32": 1, "fInt32": 1}"#, path: "f_int32", reason: "field given more than once"),
        Case(json: #"{"cText": "a", "cNumber": "1"}"#, path: "c_number", reason: #"another field of the oneof "choice" is already set"#),
        Case(json: #"{"fInt32": 2147483648}"#, path: "f_int32", reason: #""2147483648" is out of range for int32"#),
        Case(json: #"{"fInt32": "-2147483649"}"#, path: "f_int32", reason: #""-2147483649" is out of range for int32"#),
        Case(json: #"{"fUint32": -1}"#, path: "f_uint32", reason: #""-1" is out of range for uint32"#),
        Case(json: #"{"fUint64": "18446744073709551616"}"#, path: "f_uint64", reason: #""18446744073709551616" is out of range for uint64"#),
        Case(json: #"{"fInt64": 1e19}"#, path: "f_int64", reason: #""1e19" is out of range for int64"#),
        Case(json: #"{"fInt64": 1.5}"#, path: "f_int64", reason: #""1.5" is not an integer"#),
        Case(json: #"{"fInt64": "12a"}"#, path: "f_int64", reason: #""12a" is not an integer"#),
        Case(json: #"{"fInt64": " 1"}"#, path: "f_int64", reason: #"" 1" is not an integer"#),
        Case(json: #"{"fInt32": true}"#, path: "f_int32", reason: "expected an integer"),
        Case(json: #"{"fDouble": "nan"}"#, path: "f_double", reason: #""nan" is not a number"#),
        Case(json: #"{"fDouble": 1e999}"#, path: "f_double", reason: #""1e999" is out of range for double"#),
        Case(json: #"{"fFloat": 1e39}"#, path: "f_float", reason: "1e+39 is out of range for float"),
        Case(json: #"{"fBool": "true"}"#, path: "f_bool", reason: "expected true or false"),
        Case(json: #"{"fColor": "COLOR_PURPLE"}"#, path: "f_color", reason: #""COLOR_PURPLE" is not a value of stb.testing.v1.Color"#),
        Case(json: #"{"fColor": 2147483648}"#, path: "f_color", reason: #""2147483648" is out of range for int32"#),
        Case(json: #"{"fBytes": "a"}"#, path: "f_bytes", reason: "not base64"),
        Case(json: #"{"fBytes": "AA=A"}"#, path: "f_bytes", reason: "not base64"),
        Case(json: #"{"fBytes": "A==="}"#, path: "f_bytes", reason: "not base64"),
        Case(json: #"{"fString": "a\u0000b"}"#, path: "f_string", reason: "string contains a NUL character"),
        Case(json: #"{"fString": "\ud800"}"#, path: "f_string", reason: #"unpaired surrogate in \u escape"#),
        Case(json: #"{"fString": "\udc00\ud800"}"#, path: "f_string", reason: #"unpaired surrogate in \u escape"#),
        Case(json: #"{"rInner": [{}, {}, {}, {"name": 5}]}"#, path: "r_inner[3].name", reason: "expected a string"),
        Case(json: #"{"rInt32": [1, null]}"#, path: "r_int32[1]", reason: "null is not allowed in an array"),
        Case(json: #"{"rInt32": 1}"#, path: "r_int32", reason: "expected an array"),
        Case(json: #"{"mCounts": {"a": "x"}}"#, path: #"m_counts["a"]"#, reason: #""x" is not an integer"#),
        Case(json: #"{"mCounts": {"a": 1, "a": 2}}"#, path: #"m_counts["a"]"#, reason: "map key given more than once"),
        Case(json: #"{"mNames": {"1": "a", "1e0": "b"}}"#, path: #"m_names["1e0"]"#, reason: "map key given more than once"),
        Case(json: #"{"mNames": {"x": "a"}}"#, path: #"m_names["x"]"#, reason: #""x" is not an integer"#),
        Case(json: #"{"mInners": {"k": {"value": "1.5"}}}"#, path: #"m_inners["k"].value"#, reason: #""1.5" is not an integer"#),
        Case(json: #"{"mInners": {"k": null}}"#, path: #"m_inners["k"]"#, reason: "null is not allowed as a map value"),
        // Found by the protojson fuzz target: a map key whose escapes do not decode, named
        // in the path of its own error, recursed until the stack overflowed.
        Case(json: #"{"mNames": {"9\ud83e00": "x"}}"#, path: #"m_names["9\\ud83e00"]"#, reason: "map key is not an integer"),
        Case(json: #"{"mCounts": {"\ud800": 1}}"#, path: #"m_counts["\\ud800"]"#, reason: #"unpaired surrogate in \u escape"#),
        Case(json: #"{"mCounts": {"a\u0000": 1}}"#, path: #"m_counts["a\\u0000"]"#, reason: "string contains a NUL character"),
        Case(json: #"{"mCounts": {"\u00e9": "x"}}"#, path: #"m_counts["é"]"#, reason: #""x" is not an integer"#),
        Case(json: #"{"fInner": []}"#, path: "f_inner", reason: "expected an object (stb.testing.v1.Inner)"),
        Case(json: "[]", path: "", reason: "expected an object (stb.testing.v1.AllKinds)"),
        Case(json: "null", path: "", reason: "expected an object (stb.testing.v1.AllKinds)"),
        Case(json: "", path: "", reason: "the document is empty"),
        Case(json: "{} x", path: "", reason: "invalid JSON at byte 3: unexpected text after the document"),
        Case(json: #"{"fInt32": 1,}"#, path: "f_int32", reason: "invalid JSON at byte 13: expected a key in quotes"),
        Case(json: #"{"fString": "a"#, path: "f_string", reason: "invalid JSON at byte 14: unterminated string"),
        Case(json: #"{"fString": "\x"}"#, path: "f_string", reason: "invalid JSON at byte 13: bad escape in string"),
        Case(json: "{\"fString\": \"a\tb\"}", path: "f_string", reason: "invalid JSON at byte 14: control character in string"),
        Case(json: #"{"fBool": tru}"#, path: "f_bool", reason: "invalid JSON at byte 10: unknown literal"),
        Case(json: #"{"fInt32": 01}"#, path: "f_int32", reason: #""01" is not an integer"#),
        Case(json: #"{"fDouble": .5}"#, path: "f_double", reason: "expected a number"),
    ]

    @Test("each kind of bad input", arguments: cases)
    func refused(_ c: Case) throws {
        let error = try #require(refusal(c.json), "accepted: \(c.json)")
        #expect(error.path == c.path)
        #expect(error.reason == c.reason)
    }

    @Test("invalid UTF-8 in a string is refused, also in a map key")
    func invalidUTF8() throws {
        var bytes = Array(#"{"fString": "a"#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        var error = try #require(refusal(bytes))
        #expect(error.path == "f_string")
        #expect(error.reason == "string is not valid UTF-8")
        // An overlong encoding and an encoded surrogate.
        for bad: [UInt8] in [[0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF]] {
            bytes = Array(#"{"mCounts": {""#.utf8) + bad + Array(#"": 1}}"#.utf8)
            error = try #require(refusal(bytes))
            #expect(error.reason == "string is not valid UTF-8")
            #expect(error.path.hasPrefix("m_counts["))
        }
    }

    @Test("nesting deeper than 100 levels is refused without exhausting the stack")
    func depth() throws {
        // Any's look-ahead for "@type" skips values of any shape: it must stop at the limit.
        let nestedAny = #"{"details": [{"x": "# + String(repeating: "[", count: 100_000) + "]}]}"
        let statusError = try #require(parse(nestedAny, as: Google_Rpc_Status.self).failure)
        #expect(statusError.reason == "nested more than 100 levels deep")
        #expect(statusError.path == "details[0]")
        // 99 levels inside the Any (101 with the Status and its Any) is over; 97 is fine.
        func nested(_ levels: Int) -> String {
            #"{"details": [{"x": "# + String(repeating: "[", count: levels) + String(repeating: "]", count: levels) + "}]}"
        }
        #expect(parse(nested(99), as: Google_Rpc_Status.self).failure?.reason == "nested more than 100 levels deep")
        #expect(parse(nested(97), as: Google_Rpc_Status.self).failure?.reason == #""@type" is missing (google.protobuf.Any)"#)
    }
}

@Suite("proto3 JSON: well-known types")
struct ProtoJSONWellKnownTests {
    @Test("Duration is a string of seconds with 0, 3, 6 or 9 fractional digits")
    func duration() throws {
        let cases: [(Int64, Int32, String)] = [
            (1, 500_000_000, "\"1.500s\""), (0, 0, "\"0s\""), (-1, -500_000_000, "\"-1.500s\""),
            (0, -1, "\"-0.000000001s\""), (3, 1000, "\"3.000001s\""), (315_576_000_000, 0, "\"315576000000s\""),
        ]
        for (seconds, nanos, text) in cases {
            let duration = Google_Protobuf_Duration(seconds: seconds, nanos: nanos)
            #expect(duration.jsonString() == text)
            #expect(try Google_Protobuf_Duration(jsonUTF8: Array(text.utf8)) == duration)
        }
        let info = Google_Rpc_RetryInfo(retryDelay: Google_Protobuf_Duration(seconds: 0, nanos: 100_000_000))
        #expect(info.jsonString() == #"{"retryDelay":"0.100s"}"#)
        #expect(try parse(#"{"retry_delay": "-0.5s"}"#, as: Google_Rpc_RetryInfo.self).get().retryDelay
            == Google_Protobuf_Duration(seconds: 0, nanos: -500_000_000))
        for bad in ["1", "1.s", "s", "1.0000000001s", "315576000001s", "+1s", " 1s"] {
            let error = try #require(parse(#"{"retryDelay": "\#(bad)"}"#, as: Google_Rpc_RetryInfo.self).failure, "accepted \(bad)")
            #expect(error.path == "retry_delay")
        }
    }

    @Test("Any carries the packed message's fields beside @type, wherever @type is")
    func any() throws {
        let inner = Stb_Testing_V1_Inner(name: "n", value: 3)
        let any = Google_Protobuf_AnyMessage(typeURL: "type.googleapis.com/stb.testing.v1.Inner", value: inner.serializedBytes())
        let status = Google_Rpc_Status(code: 3, message: "m", details: [any])
        #expect(status.jsonString() == #"{"code":3,"message":"m","details":[{"@type":"type.googleapis.com/stb.testing.v1.Inner","name":"n","value":3}]}"#)
        #expect(try Google_Rpc_Status(jsonUTF8: status.jsonUTF8Bytes()) == status)
        let late = try parse(#"{"details": [{"value": 3, "name": "n", "@type": "type.googleapis.com/stb.testing.v1.Inner"}], "code": 3, "message": "m"}"#, as: Google_Rpc_Status.self).get()
        #expect(late == status)
        // An empty message packed.
        let empty = Google_Protobuf_AnyMessage(typeURL: "type.googleapis.com/stb.testing.v1.Inner", value: [])
        #expect(empty.jsonString() == #"{"@type":"type.googleapis.com/stb.testing.v1.Inner"}"#)
        #expect(try Google_Protobuf_AnyMessage(jsonUTF8: empty.jsonUTF8Bytes()) == empty)
    }

    @Test("Any holding a well-known type with a form of its own puts it under \"value\"")
    func anyOfDuration() throws {
        let duration = Google_Protobuf_Duration(seconds: 2, nanos: 0)
        let any = Google_Protobuf_AnyMessage(typeURL: "type.googleapis.com/google.protobuf.Duration", value: duration.serializedBytes())
        #expect(any.jsonString() == #"{"@type":"type.googleapis.com/google.protobuf.Duration","value":"2s"}"#)
        #expect(try Google_Protobuf_AnyMessage(jsonUTF8: any.jsonUTF8Bytes()) == any)
    }

    @Test("Any with an unknown type, without @type, or with fields of another type is refused")
    func anyRefusals() throws {
        let unknown = try #require(parse(#"{"details": [{"@type": "type.googleapis.com/x.Nope"}]}"#, as: Google_Rpc_Status.self).failure)
        #expect(unknown.path == "details[0]")
        #expect(unknown.reason == #"unknown type "type.googleapis.com/x.Nope" in "@type""#)
        let missing = try #require(parse(#"{"details": [{"name": "n"}]}"#, as: Google_Rpc_Status.self).failure)
        #expect(missing.reason == #""@type" is missing (google.protobuf.Any)"#)
        let wrong = try #require(parse(#"{"details": [{"@type": "type.googleapis.com/stb.testing.v1.Inner", "code": 1}]}"#, as: Google_Rpc_Status.self).failure)
        #expect(wrong.path == "details[0]")
        #expect(wrong.reason == #"unknown field "code" (stb.testing.v1.Inner has no such field)"#)
        let twice = try #require(parse(#"{"details": [{"@type": "type.googleapis.com/stb.testing.v1.Inner", "@type": "type.googleapis.com/stb.testing.v1.Inner"}]}"#, as: Google_Rpc_Status.self).failure)
        #expect(twice.reason == #""@type" given more than once"#)
    }
}

@Suite("proto3 JSON: service messages")
struct ProtoJSONServiceMessageTests {
    @Test("a catalog option's errors name the proto path")
    func catalogPath() throws {
        let error = try #require(parse(#"{"option": {"key": "hdr", "defaultValue": 5}}"#, as: Stb_Catalog_V1_CreateOptionRequest.self).failure)
        #expect(error.description == "option.default_value: expected a string")
        let ok = try parse(#"{"option": {"key": "hdr", "type": "OPTION_TYPE_BOOLEAN", "default_value": "true", "editable": true}}"#, as: Stb_Catalog_V1_CreateOptionRequest.self).get()
        #expect(ok.option?.type == .boolean)
        #expect(try Stb_Catalog_V1_CreateOptionRequest(jsonUTF8: ok.jsonUTF8Bytes()) == ok)
    }
}

/// A message type written by hand over the wire form, as a cached reply is.
private struct WireInner: ProtoMessage {
    var bytes: [UInt8] = []
    init() {}
    init(bytes: [UInt8]) { self.bytes = bytes }
    init(serializedBytes: UnsafeRawBufferPointer) throws(ProtoDecodingError) { bytes = Array(serializedBytes) }
    func serialize(into buffer: inout [UInt8]) { buffer += bytes }
    static var protoMessageName: String { "stb.testing.v1.Inner" }
}

@Suite("proto3 JSON: hand-written message types")
struct ProtoJSONWireFormTests {
    @Test("a type over the wire form has the JSON form of the generated type of its name")
    func wireForm() throws {
        let wire = WireInner(bytes: Stb_Testing_V1_Inner(name: "a", value: 2).serializedBytes())
        #expect(wire.jsonString() == #"{"name":"a","value":2}"#)
        let back = try WireInner(jsonUTF8: Array(#"{"value": 2, "name": "a"}"#.utf8))
        #expect(try Stb_Testing_V1_Inner(serializedBytes: back.bytes) == Stb_Testing_V1_Inner(name: "a", value: 2))
        #expect(parse(#"{"nope": 1}"#, as: WireInner.self).failure?.reason == #"unknown field "nope" (stb.testing.v1.Inner has no such field)"#)
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { error } else { nil }
    }
}
