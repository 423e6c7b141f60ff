import STBMessages
import STBOptionValues
import STBTestSupport
import Testing

@testable import STBRules

// The hand-written EvaluateRequest reader against the generated decoder (protobuf-c and
// the Swift glue's string checks) on the same bytes: wire-format corner cases protobuf-c
// has its own answer for, and random encodings of random requests cut, flipped and
// spliced. `scripts/fuzz evaluate` runs the same comparison on arbitrary bytes.

private let tableKeys = ["a", "hdr", "4k_output", "max_bitrate", "o.x", "k\u{0}z", "a", "an_option_key_of_thirty_two_b", "é"]

/// The two readings of `bytes` agree: both refuse (the same way) or both give the same
/// choices (keys resolved as a dictionary of the keys would) and the same base hash.
/// Returns whether the generated decoder accepted.
@discardableResult
private func expectSameReading(_ bytes: [UInt8], _ table: OptionKeyTable, _ context: @autoclosure () -> String) -> Bool {
    var slotOf: [String: Int] = [:]
    for (slot, key) in tableKeys.enumerated() where !key.utf8.contains(0) { slotOf[key] = slot }
    var seen: [WireChoice] = []
    let scanned = bytes.withUnsafeBytes { raw -> Result<Range<Int>?, WireDecodeProblem> in
        do throws(WireDecodeProblem) {
            return .success(try EvaluateRequestScanner.scan(raw, keys: table) { _, choice in seen.append(choice) })
        } catch {
            return .failure(error)
        }
    }
    let reference = Result { () throws(ProtoDecodingError) in try Stb_Rules_V1_EvaluateRequest(serializedBytes: bytes) }
    switch (reference, scanned) {
    case (.success(let message), .success(let hash)):
        #expect(seen.count == message.options.count, "\(context())")
        for (choice, option) in zip(seen, message.options) {
            #expect(choice.slot == slotOf[option.key], "\(context())")
            #expect(choice.unknownKey == (slotOf[option.key] == nil ? option.key : nil), "\(context())")
            #expect(choice.included == option.included, "\(context())")
            #expect(choice.valueJSON == option.valueJson, "\(context())")
        }
        #expect((hash.map { Array(bytes[$0]) } ?? []) == message.baseSelectionHash, "\(context())")
        return true
    case (.failure(let expected), .failure(let problem)):
        let decoding = problem.decodingError(byteCount: bytes.count)
        #expect(decoding == expected, "\(context()): \(problem) vs \(expected)")
        return false
    case (.success, .failure(let problem)):
        Issue.record("the reader refuses (\(problem)) what the decoder accepts: \(context())")
        return true
    case (.failure(let expected), .success):
        Issue.record("the reader accepts what the decoder refuses (\(expected)): \(context())")
        return false
    }
}

private func varint(_ value: UInt64) -> [UInt8] {
    var rest = value
    var bytes: [UInt8] = []
    while rest >= 0x80 {
        bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
        rest >>= 7
    }
    bytes.append(UInt8(rest))
    return bytes
}

private func field(_ number: UInt64, _ payload: [UInt8]) -> [UInt8] {
    varint(number << 3 | 2) + varint(UInt64(payload.count)) + payload
}

@Suite struct EvaluateRequestScannerTests {
    @Test func cornersOfTheWireFormat() {
        let table = OptionKeyTable(tableKeys)
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("tag 0 in one byte", [0x00, 0x00]),
            ("tag 0 in two bytes (an unknown field)", [0x80, 0x00, 0x00]),
            ("included as a length-delimited field", field(1, [0x12, 0x01, 0x05])),
            ("included as a length-delimited field holding 0 (its length byte counts)", field(1, [0x12, 0x01, 0x00])),
            ("included as an empty length-delimited field", field(1, [0x12, 0x00])),
            ("included as 64 bits, cut short", field(1, [0x11, 0, 0, 0, 0])),
            ("included as 64 bits", field(1, [0x11, 0, 0, 0, 0, 0, 0, 0, 1])),
            ("included as 64 bits of high bits only", field(1, [0x11, 0, 0, 0, 0, 0, 0, 0, 0x80])),
            ("included as 32 bits", field(1, [0x15, 0, 0, 2, 0])),
            ("included: an unterminated varint", field(1, [0x10, 0x80])),
            ("included: 0x80 0x00 is false", field(1, [0x10, 0x80, 0x00])),
            ("included twice: the last counts", field(1, [0x10, 0x01, 0x10, 0x00])),
            ("a group in a choice", field(1, [0x0B, 0x00])),
            ("a length of 2^32 - 1", [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
            ("a length of 1 + 2^32", [0x12, 0x81, 0x80, 0x80, 0x80, 0x10, 0x41]),
            ("a six-byte length", [0x0A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            ("options as a varint", [0x08, 0x01]),
            ("base hash as a varint", [0x10, 0x01]),
            ("an unknown varint", [0x18, 0x01]),
            ("an unknown group", [0x1B, 0x1C]),
            ("a six-byte tag", [0xF8, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            ("a five-byte tag 1 as a varint", [0x88, 0x80, 0x80, 0x80, 0x00, 0x01]),
            ("a five-byte tag whose high bits make it unknown", [0x8A, 0x80, 0x80, 0x80, 0x10, 0x00]),
            ("a ten-byte varint", [0x18] + [UInt8](repeating: 0x80, count: 9) + [0x01]),
            ("an eleven-byte varint", [0x18] + [UInt8](repeating: 0x80, count: 10) + [0x01]),
            ("two empty choices", [0x0A, 0x00, 0x0A, 0x00]),
            ("the base hash twice, the last empty", [0x12, 0x01, 0x41, 0x12, 0x00]),
            ("a key the table has", field(1, field(1, Array("hdr".utf8)))),
            ("a key given twice: the last counts", field(1, field(1, Array("hdr".utf8)) + field(1, Array("a".utf8)))),
            ("a key of 29 bytes", field(1, field(1, Array("an_option_key_of_thirty_two_b".utf8)))),
            ("a key the table has not", field(1, field(1, Array("ghost".utf8)))),
            ("a key that is a prefix of one the table has", field(1, field(1, Array("hd".utf8)))),
            ("a key not ASCII", field(1, field(1, Array("é".utf8)))),
            ("the key with a NUL", field(1, field(1, Array("k\u{0}z".utf8)))),
            ("a key not UTF-8", field(1, field(1, [0xFF, 0xFE]))),
            ("an overlong key", field(1, field(1, [0xC0, 0xAF]))),
            ("a surrogate in a value", field(1, field(1, Array("a".utf8)) + field(3, [0xED, 0xA0, 0x80]))),
            ("a NUL in a value", field(1, field(1, Array("a".utf8)) + field(3, [0x31, 0x00]))),
            ("a bad value, then a bad key", field(1, field(3, [0xFF])) + field(1, field(1, [0xFF]))),
            ("a bad key, then malformed bytes", field(1, field(1, [0xFF])) + [0x0A]),
            ("a bad key and a bad value in one choice", field(1, field(3, [0xFF]) + field(1, [0xC0]))),
            ("unknown fields of every kind in a choice",
             field(1, [0x38, 0x05, 0x45, 1, 2, 3, 4, 0x49, 1, 2, 3, 4, 5, 6, 7, 8] + field(9, [1, 2]) + field(1, Array("o.x".utf8)))),
        ]
        for (name, bytes) in cases {
            expectSameReading(bytes, table, name)
        }
    }

    /// Random requests, encoded by the generated encoder, then mutated: most mutations
    /// break the bytes in ways both readers must refuse the same way.
    @Test func randomAndMutatedRequests() {
        let table = OptionKeyTable(tableKeys)
        var rng = SplitMix(seed: 0x5CA2_2026_1206)
        let spellings = tableKeys + ["", "ghost", "hd", "A", "an_option_key_of_thirty_two_bytes"]
        var accepted = 0
        var refused = 0
        for round in 0..<4_000 {
            var request = Stb_Rules_V1_EvaluateRequest()
            for _ in 0..<Int(rng.next() % 6) {
                var choice = Stb_Rules_V1_OptionChoice()
                choice.key = String(spellings[Int(rng.next() % UInt64(spellings.count))].filter { $0 != "\u{0}" })
                if rng.next() % 2 == 0 { choice.included = rng.next() % 2 == 0 }
                if rng.next() % 2 == 0 { choice.valueJson = ["1", "true", "\"x\"", "", "{\"a\": [1, 2]}"][Int(rng.next() % 5)] }
                request.options.append(choice)
            }
            if rng.next() % 3 == 0 { request.baseSelectionHash = (0..<Int(rng.next() % 40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
            var bytes = request.serializedBytes()
            for _ in 0..<Int(rng.next() % 4) where !bytes.isEmpty {
                let at = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 5 {
                case 0: bytes[at] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes[at] ^= 1 << UInt8(rng.next() % 8)
                case 2: bytes.removeSubrange(at...)
                case 3: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
                default: bytes.insert(contentsOf: bytes[at...].prefix(Int(rng.next() % 8)), at: at)
                }
            }
            if expectSameReading(bytes, table, "round \(round): \(bytes)") { accepted += 1 } else { refused += 1 }
        }
        // Both outcomes are exercised.
        #expect(accepted > 1_000)
        #expect(refused > 500)
    }

    /// The table resolves every key as a dictionary of the keys does (the last slot of a
    /// repeated key), and no other spelling, on 10,000 keys.
    @Test func keyTableResolvesAsADictionary() {
        let keys = (0..<10_000).map { "module\($0 % 20).group\($0 % 10).option_\($0)" } + ["x", "module0.group0.option_0"]
        let table = OptionKeyTable(keys)
        var slotOf: [String: Int] = [:]
        for (slot, key) in keys.enumerated() { slotOf[key] = slot }
        for key in keys { #expect(table.slot(of: key) == slotOf[key]) }
        for key in ["", "y", "module0.group0.option_", "module0.group0.option_00", "xx"] { #expect(table.slot(of: key) == nil) }
        // With a slot to try first (the one after the last key's): right, wrong, out of
        // range, or the slot of a key that a later duplicate replaces (slot 0 here).
        func slot(_ key: String, expected: Int) -> Int? {
            var key = key
            return key.withUTF8 { table.slot(of: UnsafeRawBufferPointer($0), expected: expected) }
        }
        for (position, key) in keys.enumerated() {
            for expected in [position, position + 1, position - 1, -1, keys.count, 0] where slot(key, expected: expected) != slotOf[key] {
                Issue.record("\(key) tried at \(expected): \(String(describing: slot(key, expected: expected))), not \(String(describing: slotOf[key]))")
            }
        }
        #expect(slot("y", expected: 0) == nil)
    }
}

@Suite struct ChoiceValueTests {
    /// The spellings read without the JSON parser give what the parser gives; the others
    /// are left to it.
    @Test func literalsAreReadAsTheParserReadsThem() throws {
        let integers = ["0", "1", "-1", "7", "20000", "-20000", "123456789012345678", "-123456789012345678"]
        for text in integers {
            #expect(RulesService.literalValue(text, .integer) == (try RulesService.parsedValue(text, .integer)), "\(text)")
        }
        for text in ["true", "false"] {
            #expect(RulesService.literalValue(text, .boolean) == (try RulesService.parsedValue(text, .boolean)), "\(text)")
        }
        let others: [(String, OptionValueType)] = [
            ("-0", .integer), ("00", .integer), ("01", .integer), ("1234567890123456789", .integer), ("", .integer), ("-", .integer),
            (" 1", .integer), ("1 ", .integer), ("+1", .integer), ("1.0", .integer), ("1e3", .integer), ("true", .integer),
            ("True", .boolean), (" true", .boolean), ("1", .boolean), ("\"true\"", .string), ("1", .enum),
        ]
        for (text, type) in others { #expect(RulesService.literalValue(text, type) == nil, "\(text)") }
    }
}
