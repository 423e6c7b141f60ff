/// Appends the compact proto3 JSON form of generated messages to a byte array: commas
/// and keys, scalars in their proto3 forms, strings escaped, bytes in base64.
internal struct _ProtoJSONWriter {
    /// What has been written so far.
    var out: [UInt8]
    /// Whether the next key or array element needs a comma before it.
    private var needsComma = false

    init(out: [UInt8]) {
        self.out = out
    }

    /// Appends `message`'s JSON form to `buffer` (its storage is moved in and back out,
    /// not copied).
    static func encode(_ message: some _ProtoJSONCodable, into buffer: inout [UInt8]) {
        var writer = _ProtoJSONWriter(out: [])
        swap(&writer.out, &buffer)
        message._jsonWrite(&writer)
        swap(&writer.out, &buffer)
    }

    // MARK: - Structure

    mutating func beginObject() {
        out.append(UInt8(ascii: "{"))
        needsComma = false
    }

    mutating func endObject() {
        out.append(UInt8(ascii: "}"))
        needsComma = true
    }

    mutating func beginArray() {
        out.append(UInt8(ascii: "["))
        needsComma = false
    }

    mutating func endArray() {
        out.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// A key given with its quotes and colon (`"name":`, as the generated code spells
    /// them: one append per key), after a comma when needed.
    mutating func key(_ quotedName: StaticString) {
        if needsComma {
            out.append(UInt8(ascii: ","))
        }
        out.append(contentsOf: UnsafeBufferPointer(start: quotedName.utf8Start, count: quotedName.utf8CodeUnitCount))
        needsComma = false
    }

    /// A comma before an array element or map entry when needed.
    mutating func separator() {
        if needsComma {
            out.append(UInt8(ascii: ","))
        }
        needsComma = false
    }

    /// Marks a value as written (the next key or element needs a comma).
    mutating func valueWritten() {
        needsComma = true
    }

    // MARK: - Fields (what the generated code calls)

    /// An implicit-presence field: omitted at its default.
    mutating func scalar<Value: _ProtoJSONValue>(_ name: StaticString, _ value: Value) {
        if !value._jsonIsDefault {
            key(name)
            value._jsonWriteValue(to: &self)
        }
    }

    /// A field written whatever its value (the set member of a oneof).
    mutating func field<Value: _ProtoJSONValue>(_ name: StaticString, _ value: Value) {
        key(name)
        value._jsonWriteValue(to: &self)
    }

    /// A field with presence (`optional`, a message, a oneof member): written when set,
    /// even at its default.
    mutating func optional<Value: _ProtoJSONValue>(_ name: StaticString, _ value: Value?) {
        if let value {
            key(name)
            value._jsonWriteValue(to: &self)
        }
    }

    /// A repeated field: omitted when empty.
    mutating func repeated<Value: _ProtoJSONValue>(_ name: StaticString, _ values: [Value]) {
        guard !values.isEmpty else { return }
        key(name)
        beginArray()
        for value in values {
            separator()
            value._jsonWriteValue(to: &self)
        }
        endArray()
    }

    /// A map field: an object with the keys as strings; omitted when empty.
    mutating func map<Key: _ProtoJSONMapKey, Value: _ProtoJSONValue>(_ name: StaticString, _ entries: [Key: Value]) {
        guard !entries.isEmpty else { return }
        key(name)
        beginObject()
        for (key, value) in entries {
            separator()
            key._jsonWriteKey(to: &self)
            value._jsonWriteValue(to: &self)
        }
        endObject()
    }

    // MARK: - Values

    mutating func bool(_ value: Bool) {
        out.append(contentsOf: value ? "true".utf8 : "false".utf8)
        needsComma = true
    }

    /// A decimal integer, quoted or not, formatted on the stack and appended at once.
    mutating func integer(_ value: some FixedWidthInteger, quoted: Bool) {
        var magnitude = UInt64(truncatingIfNeeded: value.magnitude)
        let negative = value < 0
        // 20 digits, a sign and two quotes at most.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { digits in
            var index = 24
            if quoted {
                index -= 1
                digits[index] = UInt8(ascii: "\"")
            }
            repeat {
                index -= 1
                digits[index] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if negative {
                index -= 1
                digits[index] = UInt8(ascii: "-")
            }
            if quoted {
                index -= 1
                digits[index] = UInt8(ascii: "\"")
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[index..<24]))
        }
        needsComma = true
    }

    /// A double in the shortest form that reads back to the same value; NaN and the
    /// infinities as the strings proto3 JSON names them.
    mutating func double(_ value: Double) {
        if value.isNaN {
            out.append(contentsOf: "\"NaN\"".utf8)
        } else if value.isInfinite {
            out.append(contentsOf: value < 0 ? "\"-Infinity\"".utf8 : "\"Infinity\"".utf8)
        } else {
            // Swift's description is the shortest round-trip form, valid JSON for finite values.
            out.append(contentsOf: value.description.utf8)
        }
        needsComma = true
    }

    /// A float in the shortest form that reads back (as a float) to the same value.
    mutating func float(_ value: Float) {
        if value.isNaN || value.isInfinite {
            double(Double(value))
        } else {
            out.append(contentsOf: value.description.utf8)
            needsComma = true
        }
    }

    /// A JSON string: quotes, backslashes and control characters escaped.
    mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { appendQuoted($0) }
        needsComma = true
    }

    /// Raw UTF-8 as a quoted JSON string.
    mutating func appendQuoted(_ text: UnsafeBufferPointer<UInt8>) {
        out.append(UInt8(ascii: "\""))
        var runStart = 0
        for index in text.indices {
            let byte = text[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: text[runStart..<index]))
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x08: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            default:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
            runStart = index + 1
        }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: text[runStart...]))
        out.append(UInt8(ascii: "\""))
    }

    /// Bytes as standard base64 with padding, in quotes.
    mutating func bytes(_ value: [UInt8]) {
        out.append(UInt8(ascii: "\""))
        Base64.append(value, to: &out, padded: true)
        out.append(UInt8(ascii: "\""))
        needsComma = true
    }

    /// An enum by name; a number this build does not know as that number.
    mutating func enumValue<Value: _ProtoJSONEnum>(_ value: Value) {
        let names = Value._jsonNames
        if let index = names.numbers.firstIndex(of: value.rawValue) {
            out.append(UInt8(ascii: "\""))
            names.append(index, to: &out)
            out.append(UInt8(ascii: "\""))
            needsComma = true
        } else {
            integer(value.rawValue, quoted: false)
        }
    }
}

// MARK: - The scalar types

extension Bool: _ProtoJSONValue, _ProtoJSONMapKey {
    var _jsonIsDefault: Bool { !self }
    func _jsonWriteValue(to writer: inout _ProtoJSONWriter) { writer.bool(self) }
    func _jsonWriteKey(to writer: inout _ProtoJSONWriter) {
        writer.out.append(contentsOf: self ? #""true":"#.utf8 : #""false":"#.utf8)
    }
}

extension Int32: _ProtoJSONValue, _ProtoJSONMapKey {
    var _jsonIsDefault: Bool { self == 0 }
    func _jsonWriteValue(to writer: inout _ProtoJSONWriter) { writer.integer(self, quoted: false) }
    func _jsonWriteKey(to writer: inout _ProtoJSONWriter) {
        writer.integer(self, quoted: true)
        writer.out.append(UInt8(ascii: ":"))
    }
}

extension UInt32: _ProtoJSONValue, _ProtoJSONMapKey {
    var _jsonIsDefault: Bool { self == 0 }
    func _jsonWriteValue(to writer: inout _ProtoJSONWriter) { writer.integer(self, quoted: false) }
    func _jsonWriteKey(to writer: inout _ProtoJSONWriter) {
        writer.integer(self, quoted: true)
        writer.out.append(UInt8(ascii: ":"))
    }
}

extension Int64: _ProtoJSONValue, _ProtoJSONMapKey {
    var _jsonIsDefault: Bool { self == 0 }
    func _jsonWriteValue(to writer: inout _ProtoJSONWriter) { writer.integer(self, quoted: true) }
    func _jsonWriteKey(to writer: inout _ProtoJSONWriter) {
        writer.integer(self, quoted: true)
        writer.out.append(UInt8(ascii: ":"))
    }
}

extension UInt64: _ProtoJSONValue, _ProtoJSONMapKey {
    var _jsonIsDefault: Bool { self == 0 }
    func _jsonWriteValue(to writer: inout _ProtoJSONWriter) { writer.integer(self, quoted: true) }
    func _jsonWriteKey(to writer: inout _ProtoJSONWriter) {
        writer.integer(self, quoted: true)
        writer.out.append(UInt8(ascii: ":"))
    }
}

extension Double: _ProtoJSONValue {
    // -0.0 is not the default: the binary encoding keeps it too.
    var _jsonIsDefault: Bool { bitPattern == 0 }
    func _jsonWriteValue(to writer: inout _ProtoJSONWriter) { writer.double(self) }
}

extension Float: _ProtoJSONValue {
    var _jsonIsDefault: Bool { bitPattern == 0 }
    func _jsonWriteValue(to writer: inout _ProtoJSONWriter) { writer.float(self) }
}

extension String: _ProtoJSONValue, _ProtoJSONMapKey {
    var _jsonIsDefault: Bool { isEmpty }
    func _jsonWriteValue(to writer: inout _ProtoJSONWriter) { writer.string(self) }
    func _jsonWriteKey(to writer: inout _ProtoJSONWriter) {
        writer.string(self)
        writer.out.append(UInt8(ascii: ":"))
    }
}

extension Array: _ProtoJSONValue where Element == UInt8 {
    var _jsonIsDefault: Bool { isEmpty }
    func _jsonWriteValue(to writer: inout _ProtoJSONWriter) { writer.bytes(self) }
}

extension _ProtoJSONEnum {
    var _jsonIsDefault: Bool { rawValue == 0 }
    func _jsonWriteValue(to writer: inout _ProtoJSONWriter) { writer.enumValue(self) }
}
