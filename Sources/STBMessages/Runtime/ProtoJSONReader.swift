import Glibc

/// A pull reader over a JSON document for the generated messages: no tree and no
/// `String` per key (keys are matched as bytes against the generated name tables).
/// It keeps the path to the value being read (proto field names, element positions,
/// map keys) so that an error anywhere names where it is.
internal struct _ProtoJSONReader {
    /// Objects and arrays nested deeper than this are refused, so hostile input cannot
    /// exhaust the stack.
    static let maxDepth = 100

    /// One step of the path to the value being read.
    enum PathStep {
        /// An object whose current key is not known yet.
        case object
        /// Field `index` of a message, named by its proto name in `names` (unretained:
        /// the tables are static and live as long as the process).
        case field(Unmanaged<_ProtoJSONNames>, Int)
        /// An array element.
        case element(Int)
        /// A map entry, by its key token.
        case mapKey(StringToken)
    }

    /// A string token's content in the input (between the quotes, escapes not decoded).
    struct StringToken {
        var start: Int
        var end: Int
        /// Whether it holds a backslash escape.
        var escaped: Bool
        /// Whether it holds bytes above ASCII (to be checked as UTF-8).
        var nonASCII: Bool
    }

    /// Where the reader is inside one message object.
    struct ObjectState {
        let names: _ProtoJSONNames
        var first = true
        /// Fields seen, by index (duplicates are refused).
        var seen: (UInt64, UInt64) = (0, 0)
        /// The table position to try first for the next key.
        var hint = 0
        /// Whether this object is an `Any`'s payload, whose `@type` key is skipped.
        var typeKeyAllowed: Bool
        var typeKeySeen = false
    }

    let base: UnsafePointer<UInt8>
    let end: Int
    var position = 0
    var depth = 0
    var path: [PathStep] = []
    /// Set before reading an `Any`'s payload: the next object may hold `@type`.
    var typeKeyAllowed = false
    /// Decoded escapes of the string being read.
    var scratch: [UInt8] = []

    init(base: UnsafePointer<UInt8>, count: Int) {
        self.base = base
        self.end = count
    }

    /// Decodes a whole document as `Message`.
    static func decode<Message: _ProtoJSONCodable>(_ bytes: UnsafeRawBufferPointer) throws(ProtoJSONError) -> Message {
        guard let start = bytes.baseAddress, bytes.count > 0 else {
            throw ProtoJSONError(path: "", reason: "the document is empty")
        }
        var reader = _ProtoJSONReader(base: start.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        reader.skipWhitespace()
        let message = try Message._jsonValue(from: &reader)
        reader.skipWhitespace()
        guard reader.position == reader.end else {
            throw reader.syntaxError("unexpected text after the document")
        }
        return message
    }

    // MARK: - Errors

    /// An error about the value being read, with its path.
    func error(_ reason: String) -> ProtoJSONError {
        ProtoJSONError(path: pathText(), reason: reason)
    }

    /// An error about malformed JSON at the current position.
    func syntaxError(_ what: String) -> ProtoJSONError {
        error("invalid JSON at byte \(position): \(what)")
    }

    /// `option.default_value`, `r_inner[3].name`, `m_counts["a"]`.
    func pathText() -> String {
        var text = ""
        for step in path {
            switch step {
            case .object:
                break
            case .field(let names, let index):
                if !text.isEmpty {
                    text += "."
                }
                text += names.takeUnretainedValue().name(index * 2 + 1)
            case .element(let index):
                text += "[\(index)]"
            case .mapKey(let token):
                // A key whose escapes do not decode is shown as written (decoding it here
                // must not throw: its error would ask for this path again).
                var key: [UInt8] = []
                if !token.escaped || Self.unescape(base, token, into: &key) != nil {
                    key = Array(UnsafeBufferPointer(start: base + token.start, count: token.end - token.start))
                }
                var quoted = _ProtoJSONWriter(out: [])
                key.withUnsafeBufferPointer { quoted.appendQuoted($0) }
                text += "[" + String(decoding: quoted.out, as: UTF8.self) + "]"
            }
        }
        return text
    }

    // MARK: - Tokens

    @inline(__always)
    var peek: UInt8 {
        position < end ? base[position] : 0
    }

    @inline(__always)
    mutating func skipWhitespace() {
        while position < end {
            switch base[position] {
            case 0x20, 0x0A, 0x0D, 0x09: position += 1
            default: return
            }
        }
    }

    /// Consumes `byte` (after whitespace) or throws.
    mutating func expect(_ byte: UInt8, _ what: String) throws(ProtoJSONError) {
        skipWhitespace()
        guard peek == byte, position < end else {
            throw syntaxError("expected \(what)")
        }
        position += 1
    }

    /// Consumes `null` if it comes next.
    mutating func takeNull() throws(ProtoJSONError) -> Bool {
        skipWhitespace()
        guard peek == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    /// Consumes the literal `word` (`true`, `false`, `null`).
    mutating func literal(_ word: StaticString) throws(ProtoJSONError) {
        let count = word.utf8CodeUnitCount
        guard end - position >= count, memcmp(base + position, word.utf8Start, count) == 0 else {
            throw syntaxError("unknown literal")
        }
        position += count
        if position < end, Self.isWordByte(base[position]) {
            throw syntaxError("unknown literal")
        }
    }

    static func isWordByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."),
             UInt8(ascii: "+"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    /// Reads a string token, checking its escapes and refusing control characters.
    mutating func stringToken() throws(ProtoJSONError) -> StringToken {
        skipWhitespace()
        guard peek == UInt8(ascii: "\""), position < end else {
            throw error("expected a string")
        }
        position += 1
        var token = StringToken(start: position, end: position, escaped: false, nonASCII: false)
        while position < end {
            let byte = base[position]
            if byte == UInt8(ascii: "\"") {
                token.end = position
                position += 1
                return token
            }
            if byte == UInt8(ascii: "\\") {
                token.escaped = true
                guard position + 1 < end else { break }
                switch base[position + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                     UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    position += 2
                case UInt8(ascii: "u"):
                    guard position + 6 <= end, (2..<6).allSatisfy({ Hex.digit(base[position + $0]) != nil }) else {
                        throw syntaxError("bad \\u escape")
                    }
                    position += 6
                default:
                    throw syntaxError("bad escape in string")
                }
                continue
            }
            if byte < 0x20 {
                throw syntaxError("control character in string")
            }
            if byte >= 0x80 {
                token.nonASCII = true
            }
            position += 1
        }
        throw syntaxError("unterminated string")
    }

    /// The token's content with escapes decoded, as UTF-8 (not yet validated). Refuses
    /// escaped NUL and unpaired surrogates.
    mutating func unescaped(_ token: StringToken) throws(ProtoJSONError) -> [UInt8] {
        scratch.removeAll(keepingCapacity: true)
        if let reason = Self.unescape(base, token, into: &scratch) {
            throw error(reason)
        }
        return scratch
    }

    /// Decodes the escapes of `token` (checked by `stringToken`) into `out`; returns why
    /// it cannot, or nil.
    static func unescape(_ base: UnsafePointer<UInt8>, _ token: StringToken, into out: inout [UInt8]) -> String? {
        var index = token.start
        func hex4(_ at: Int) -> UInt32 {
            (0..<4).reduce(0) { $0 << 4 | UInt32(Hex.digit(base[at + $1]) ?? 0) }
        }
        while index < token.end {
            // The run up to the next escape, at once.
            var runEnd = index
            while runEnd < token.end, base[runEnd] != UInt8(ascii: "\\") {
                runEnd += 1
            }
            if runEnd > index {
                out.append(contentsOf: UnsafeBufferPointer(start: base + index, count: runEnd - index))
                index = runEnd
                continue
            }
            let kind = base[index + 1]
            index += 2
            switch kind {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = hex4(index)
                index += 4
                if scalar >= 0xD800, scalar < 0xDC00 {
                    guard index + 6 <= token.end, base[index] == UInt8(ascii: "\\"), base[index + 1] == UInt8(ascii: "u") else {
                        return "unpaired surrogate in \\u escape"
                    }
                    let low = hex4(index + 2)
                    guard low >= 0xDC00, low < 0xE000 else {
                        return "unpaired surrogate in \\u escape"
                    }
                    index += 6
                    scalar = 0x10000 + (scalar - 0xD800) << 10 + (low - 0xDC00)
                } else if scalar >= 0xDC00, scalar < 0xE000 {
                    return "unpaired surrogate in \\u escape"
                }
                guard scalar != 0 else {
                    return "string contains a NUL character"
                }
                guard let value = Unicode.Scalar(scalar) else {
                    return "invalid \\u escape"
                }
                UTF8.encode(value) { out.append($0) }
            default:
                out.append(kind)  // " \ /
            }
        }
        return nil
    }

    /// The token as a Swift string: valid UTF-8 without NUL, or an error.
    mutating func string(_ token: StringToken) throws(ProtoJSONError) -> String {
        if !token.escaped {
            let raw = UnsafeBufferPointer(start: base + token.start, count: token.end - token.start)
            if !token.nonASCII {
                return String(decoding: raw, as: UTF8.self)
            }
            guard let text = String(validating: raw, as: UTF8.self) else {
                throw error("string is not valid UTF-8")
            }
            return text
        }
        let bytes = try unescaped(token)
        guard let text = bytes.withUnsafeBufferPointer({ String(validating: $0, as: UTF8.self) }) else {
            throw error("string is not valid UTF-8")
        }
        return text
    }

    /// Skips one value of any kind (for `Any`'s look-ahead), checking its syntax.
    mutating func skipValue() throws(ProtoJSONError) {
        skipWhitespace()
        switch peek {
        case UInt8(ascii: "{"):
            try enter()
            position += 1
            skipWhitespace()
            if peek == UInt8(ascii: "}") {
                position += 1
            } else {
                repeat {
                    _ = try stringToken()
                    try expect(UInt8(ascii: ":"), "':'")
                    try skipValue()
                    skipWhitespace()
                    guard peek == UInt8(ascii: ",") || peek == UInt8(ascii: "}"), position < end else {
                        throw syntaxError("expected ',' or '}'")
                    }
                    position += 1
                } while base[position - 1] == UInt8(ascii: ",")
            }
            depth -= 1
        case UInt8(ascii: "["):
            try enter()
            position += 1
            skipWhitespace()
            if peek == UInt8(ascii: "]") {
                position += 1
            } else {
                repeat {
                    try skipValue()
                    skipWhitespace()
                    guard peek == UInt8(ascii: ",") || peek == UInt8(ascii: "]"), position < end else {
                        throw syntaxError("expected ',' or ']'")
                    }
                    position += 1
                } while base[position - 1] == UInt8(ascii: ",")
            }
            depth -= 1
        case UInt8(ascii: "\""):
            _ = try stringToken()
        case UInt8(ascii: "t"):
            try literal("true")
        case UInt8(ascii: "f"):
            try literal("false")
        case UInt8(ascii: "n"):
            try literal("null")
        default:
            let token = try numberToken()
            guard Self.parseNumber(base, token.lowerBound, token.upperBound) != nil else {
                throw syntaxError("bad number")
            }
        }
    }

    /// One level deeper, within the limit.
    mutating func enter() throws(ProtoJSONError) {
        depth += 1
        guard depth <= Self.maxDepth else {
            throw error("nested more than \(Self.maxDepth) levels deep")
        }
    }

    // MARK: - Objects (messages and maps)

    /// Starts reading a message object whose fields are `names`.
    mutating func beginObject(_ names: _ProtoJSONNames) throws(ProtoJSONError) -> ObjectState {
        skipWhitespace()
        guard peek == UInt8(ascii: "{"), position < end else {
            throw error("expected an object (\(names.typeName))")
        }
        try enter()
        position += 1
        path.append(.object)
        let state = ObjectState(names: names, typeKeyAllowed: typeKeyAllowed)
        typeKeyAllowed = false
        return state
    }

    /// The next key's field index, positioned at its value; nil at the end of the object.
    /// Refuses unknown and repeated fields.
    mutating func nextField(_ state: inout ObjectState) throws(ProtoJSONError) -> Int? {
        while true {
            guard let key = try nextKey(&state.first) else {
                return nil
            }
            path[path.count - 1] = .object
            let found: Int?
            if key.escaped {
                let bytes = try unescaped(key)
                found = bytes.withUnsafeBytes { state.names.index(of: $0, hint: state.hint) }
            } else {
                found = state.names.index(of: UnsafeRawBufferPointer(start: base + key.start, count: key.end - key.start), hint: state.hint)
            }
            guard let entry = found else {
                let name = key.escaped ? String(decoding: scratch, as: UTF8.self)
                    : String(decoding: UnsafeBufferPointer(start: base + key.start, count: key.end - key.start), as: UTF8.self)
                if state.typeKeyAllowed, name == "@type" {
                    guard !state.typeKeySeen else {
                        throw error("\"@type\" given more than once")
                    }
                    state.typeKeySeen = true
                    try skipValue()
                    continue
                }
                throw error("unknown field \"\(name)\" (\(state.names.typeName) has no such field)")
            }
            let field = entry / 2
            path[path.count - 1] = .field(Unmanaged.passUnretained(state.names), field)
            let bit: UInt64 = 1 << UInt64(field % 64)
            if field < 64 {
                guard state.seen.0 & bit == 0 else { throw error("field given more than once") }
                state.seen.0 |= bit
            } else {
                guard state.seen.1 & bit == 0 else { throw error("field given more than once") }
                state.seen.1 |= bit
            }
            state.hint = field * 2 + 2 + (entry & 1)
            return field
        }
    }

    /// The next key of an object, positioned at its value; nil (and the object closed)
    /// at its end.
    mutating func nextKey(_ first: inout Bool) throws(ProtoJSONError) -> StringToken? {
        skipWhitespace()
        if peek == UInt8(ascii: "}"), position < end {
            position += 1
            depth -= 1
            path.removeLast()
            return nil
        }
        if !first {
            guard peek == UInt8(ascii: ","), position < end else {
                throw syntaxError("expected ',' or '}'")
            }
            position += 1
            skipWhitespace()
        }
        first = false
        guard peek == UInt8(ascii: "\""), position < end else {
            throw syntaxError("expected a key in quotes")
        }
        let key = try stringToken()
        try expect(UInt8(ascii: ":"), "':' after the key")
        skipWhitespace()
        return key
    }

    // MARK: - What the generated code calls

    /// An implicit-presence field: `null` is the default.
    mutating func scalar<Value: _ProtoJSONValue>() throws(ProtoJSONError) -> Value {
        if try takeNull() {
            return Value()
        }
        return try Value._jsonValue(from: &self)
    }

    /// A field with presence (`optional`, a message, a oneof member): `null` is unset.
    mutating func optional<Value: _ProtoJSONValue>() throws(ProtoJSONError) -> Value? {
        if try takeNull() {
            return nil
        }
        return try Value._jsonValue(from: &self)
    }

    /// A repeated field: an array (`null` is empty); `null` elements are refused.
    mutating func repeated<Value: _ProtoJSONValue>() throws(ProtoJSONError) -> [Value] {
        if try takeNull() {
            return []
        }
        guard peek == UInt8(ascii: "["), position < end else {
            throw error("expected an array")
        }
        try enter()
        position += 1
        path.append(.element(0))
        var values: [Value] = []
        skipWhitespace()
        if peek == UInt8(ascii: "]"), position < end {
            position += 1
        } else {
            while true {
                path[path.count - 1] = .element(values.count)
                if try takeNull() {
                    throw error("null is not allowed in an array")
                }
                values.append(try Value._jsonValue(from: &self))
                skipWhitespace()
                guard position < end else { throw syntaxError("unterminated array") }
                let byte = base[position]
                position += 1
                if byte == UInt8(ascii: "]") { break }
                guard byte == UInt8(ascii: ",") else {
                    position -= 1
                    throw syntaxError("expected ',' or ']'")
                }
            }
        }
        path.removeLast()
        depth -= 1
        return values
    }

    /// A map field: an object whose keys are the map keys as strings (`null` is empty).
    /// A key given twice is refused, also when two spellings (`"1"`, `"01"`) mean one key.
    mutating func map<Key: _ProtoJSONMapKey, Value: _ProtoJSONValue>() throws(ProtoJSONError) -> [Key: Value] {
        if try takeNull() {
            return [:]
        }
        guard peek == UInt8(ascii: "{"), position < end else {
            throw error("expected an object (a map)")
        }
        try enter()
        position += 1
        path.append(.object)
        var entries: [Key: Value] = [:]
        var first = true
        while let token = try nextKey(&first) {
            path[path.count - 1] = .mapKey(token)
            let key = try Key._jsonKey(from: &self, token)
            if try takeNull() {
                throw error("null is not allowed as a map value")
            }
            let value = try Value._jsonValue(from: &self)
            guard entries.updateValue(value, forKey: key) == nil else {
                throw error("map key given more than once")
            }
        }
        return entries
    }

    /// Refuses a second member of one oneof.
    mutating func oneof(unset: Bool, _ name: StaticString) throws(ProtoJSONError) {
        guard unset else {
            throw error("another field of the oneof \"\(name)\" is already set")
        }
    }
}
