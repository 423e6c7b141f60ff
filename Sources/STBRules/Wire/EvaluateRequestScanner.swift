// A hand-written reader of `stb.rules.v1.EvaluateRequest` wire bytes: each OptionChoice is
// handed over as it is met, its key already resolved to an option slot from its bytes
// (OptionKeyTable), with no protobuf-c structs and no String for a known key.
//
// It accepts and refuses exactly what the generated decoder (protobuf-c 1.4, then the
// Swift glue's string checks) does, and gives the same answer: unknown fields are skipped
// (any wire type protobuf-c can skip: varint, 64-bit, length-delimited, 32-bit); the last
// occurrence of a non-repeated field counts; `included` reads any wire type as protobuf-c
// does (true when a byte of the field, length prefix included, has a low bit set);
// anything protobuf-c refuses is `malformed`, and a string that is not UTF-8 or holds a NUL
// is refused naming it (`options[3].key`), the first in wire order, malformed input
// first. The fuzz target `evaluate` compares the two on arbitrary bytes.
//
// Self-contained (the standard library only), so that the fuzz harness compiles it alone.

/// Why request bytes are not an EvaluateRequest, as the generated decoder says it.
struct WireDecodeProblem: Error, Hashable, Sendable {
    enum Kind: Hashable, Sendable {
        /// Not protobuf wire format for the message.
        case malformed
        /// A string field that is not valid UTF-8.
        case invalidUTF8
        /// A string field that holds U+0000.
        case nulCharacter
    }

    var kind: Kind
    /// The refused string field (`options[3].key`); nil for malformed input.
    var fieldPath: String?
}

/// One OptionChoice of a request, as read from its bytes.
struct WireChoice {
    /// The key's slot in the table; nil when the table does not have it.
    var slot: Int?
    /// The key when the table does not have it ("" when empty), for messages; nil with a slot.
    var unknownKey: String?
    /// `included`, when given.
    var included: Bool?
    /// `value_json`, when given and asked for as text: valid UTF-8 without NUL (or the
    /// request is refused).
    var valueJSON: String?
    /// Where `value_json`'s bytes lie in the request, when given.
    var value: Range<Int>?
}

enum EvaluateRequestScanner {
    /// Reads `bytes` as an EvaluateRequest: `visit` gets each OptionChoice in order with its
    /// position; the result is the range of `base_selection_hash` (nil when absent or
    /// empty). Throws as the generated decoder would; `visit` may have seen choices by
    /// then, which the caller drops. With `valueText` false, `value_json` is checked but
    /// handed over as its bytes' range only (no String made).
    @inline(__always)
    static func scan(
        _ bytes: UnsafeRawBufferPointer, keys: OptionKeyTable, valueText: Bool = true, visit: (Int, WireChoice) -> Void
    ) throws(WireDecodeProblem) -> Range<Int>? {
        var at = 0
        let end = bytes.count
        var hash: Range<Int>?
        var index = 0
        // The slot after the last key's: where a request in catalog order finds the next.
        var expected = 0
        // The first string problem, reported unless the input turns out malformed.
        var stringProblem: WireDecodeProblem?
        while at < end {
            let field = try readField(bytes, &at, end)
            switch field.tag {
            case 1:
                var choice = WireChoice()
                try readChoice(
                    bytes, try field.lengthDelimited(), keys: keys, expected: &expected, into: &choice, index: index, valueText: valueText,
                    problem: &stringProblem)
                visit(index, choice)
                index += 1
            case 2:
                let payload = try field.lengthDelimited()
                hash = payload.isEmpty ? nil : payload
            default:
                break
            }
        }
        if let stringProblem { throw stringProblem }
        return hash
    }

    private static var malformed: WireDecodeProblem { WireDecodeProblem(kind: .malformed, fieldPath: nil) }

    /// One field as read from the wire.
    private struct Field {
        var tag: UInt32
        var wire: UInt8
        /// The field after its tag (a length-delimited field's length included).
        var body: Range<Int>
        /// A length-delimited field's bytes after its length; the value's bytes otherwise.
        var payload: Range<Int>

        /// The payload of a field that must be length-delimited (protobuf-c refuses
        /// another wire type for a string or message field).
        @inline(__always)
        func lengthDelimited() throws(WireDecodeProblem) -> Range<Int> {
            guard wire == 2 else { throw EvaluateRequestScanner.malformed }
            return payload
        }
    }

    /// The field at `at`, moving past it; malformed where protobuf-c refuses its header or
    /// its extent.
    @inline(__always)
    private static func readField(_ bytes: UnsafeRawBufferPointer, _ at: inout Int, _ end: Int) throws(WireDecodeProblem) -> Field {
        guard let (tag, wire) = readTag(bytes, &at, end) else { throw malformed }
        guard let (payload, next) = fieldExtent(bytes, at, end, wire: wire) else { throw malformed }
        let field = Field(tag: tag, wire: wire, body: at..<next, payload: payload)
        at = next
        return field
    }

    /// One OptionChoice message in `range`; `expected` is the slot to try its key at first,
    /// moved past the key's slot when the table has it.
    @inline(__always)
    private static func readChoice(
        _ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, keys: OptionKeyTable, expected: inout Int, into choice: inout WireChoice,
        index: Int, valueText: Bool, problem: inout WireDecodeProblem?
    ) throws(WireDecodeProblem) {
        var at = range.lowerBound
        let end = range.upperBound
        var key = range.lowerBound..<range.lowerBound
        var value: Range<Int>?
        while at < end {
            let field = try readField(bytes, &at, end)
            switch field.tag {
            case 1:
                key = try field.lengthDelimited()
            case 2:
                // protobuf-c checks no wire type for a bool: any byte of the field (after
                // the tag) with a low bit set makes it true.
                var flag = false
                for offset in field.body where bytes[offset] & 0x7F != 0 {
                    flag = true
                    break
                }
                choice.included = flag
            case 3:
                value = try field.lengthDelimited()
            default:
                break
            }
        }
        let keyBytes = UnsafeRawBufferPointer(rebasing: bytes[key])
        if !key.isEmpty, let slot = keys.slot(of: keyBytes, expected: expected) {
            choice.slot = slot
            expected = slot + 1
        } else {
            choice.unknownKey = text(keyBytes, field: "key", index: index, problem: &problem)
        }
        if let value {
            choice.value = value
            let valueBytes = UnsafeRawBufferPointer(rebasing: bytes[value])
            if valueText {
                choice.valueJSON = text(valueBytes, field: "value_json", index: index, problem: &problem)
            } else if !isPlainASCII(valueBytes) {
                _ = text(valueBytes, field: "value_json", index: index, problem: &problem)
            }
        }
    }

    /// Whether every byte is ASCII other than NUL (then the bytes are valid UTF-8 without NUL).
    @inline(__always)
    static func isPlainASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        for byte in bytes where byte == 0 || byte >= 0x80 { return false }
        return true
    }

    /// A string field's text; a first problem (not UTF-8, a NUL) is recorded, naming it.
    private static func text(_ bytes: UnsafeRawBufferPointer, field: String, index: Int, problem: inout WireDecodeProblem?) -> String {
        if bytes.isEmpty { return "" }
        // Strict, as the generated decoder: overlong forms, surrogates and values above
        // U+10FFFF fail.
        guard let text = String(validating: bytes, as: UTF8.self) else {
            if problem == nil { problem = WireDecodeProblem(kind: .invalidUTF8, fieldPath: "options[\(index)].\(field)") }
            return String(decoding: bytes, as: UTF8.self)
        }
        if bytes.contains(0), problem == nil {
            problem = WireDecodeProblem(kind: .nulCharacter, fieldPath: "options[\(index)].\(field)")
        }
        return text
    }

    /// A field's tag and wire type at `at`, moving past them; nil where protobuf-c refuses
    /// the header (a one-byte tag 0, or more than five bytes).
    @inline(__always)
    static func readTag(_ bytes: UnsafeRawBufferPointer, _ at: inout Int, _ end: Int) -> (tag: UInt32, wire: UInt8)? {
        let first = bytes[at]
        if first & 0xF8 == 0 { return nil }
        let wire = first & 7
        var tag = UInt32((first & 0x7F) >> 3)
        if first & 0x80 == 0 {
            at += 1
            return (tag, wire)
        }
        let limit = min(end - at, 5)
        var shift: UInt32 = 4
        var position = 1
        while position < limit {
            let byte = bytes[at + position]
            if byte & 0x80 != 0 {
                tag |= UInt32(byte & 0x7F) << shift
                shift += 7
            } else {
                tag |= UInt32(byte) << shift
                at += position + 1
                return (tag, wire)
            }
            position += 1
        }
        return nil
    }

    /// The payload of a field whose header ended at `at` (a length-delimited field's bytes
    /// after its length; the value's bytes otherwise) and where the next field starts; nil
    /// where protobuf-c refuses it.
    @inline(__always)
    static func fieldExtent(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ end: Int, wire: UInt8) -> (payload: Range<Int>, next: Int)? {
        let remaining = end - at
        // Tests in the order a request's fields come (a key, a flag, a value), not a jump
        // table: its indirect branch is mispredicted on every other field.
        if wire == 2 {
            let limit = min(remaining, 5)
            var length = 0
            var shift = 0
            var position = 0
            while position < limit {
                let byte = bytes[at + position]
                length |= Int(byte & 0x7F) << shift
                shift += 7
                position += 1
                if byte & 0x80 == 0 {
                    guard length <= Int(Int32.max), position + length <= remaining else { return nil }
                    return (at + position..<at + position + length, at + position + length)
                }
            }
            return nil
        }
        if wire == 0 {
            let limit = min(remaining, 10)
            var position = 0
            while position < limit {
                if bytes[at + position] & 0x80 == 0 { return (at..<at + position + 1, at + position + 1) }
                position += 1
            }
            return nil
        }
        if wire == 1 { return remaining >= 8 ? (at..<at + 8, at + 8) : nil }
        if wire == 5 { return remaining >= 4 ? (at..<at + 4, at + 4) : nil }
        return nil
    }
}
