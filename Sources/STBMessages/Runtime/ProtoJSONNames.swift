import Glibc

// What the generated JSON code of every message and enum shares: name tables matched
// as bytes, and the protocols the reader and writer dispatch on.

/// The JSON names of one generated message's fields (each field's lowerCamelCase
/// json_name, then its proto name) or of one enum's values, held in one byte buffer so a
/// key is matched without making a `String` of it.
internal final class _ProtoJSONNames: Sendable {
    /// The fully qualified proto name of the message or enum, for error messages.
    let typeName: String
    /// Enum values' numbers, one per name; empty for a message's fields.
    let numbers: [Int32]
    private let bytes: [UInt8]
    /// Where each name starts in `bytes`, plus the end of the last.
    private let starts: [Int]

    /// `names`: the names separated by single spaces.
    init(_ typeName: String, _ names: StaticString, numbers: [Int32] = []) {
        self.typeName = typeName
        self.numbers = numbers
        let all = UnsafeBufferPointer(start: names.utf8Start, count: names.utf8CodeUnitCount)
        var bytes: [UInt8] = []
        var starts: [Int] = [0]
        bytes.reserveCapacity(all.count)
        for byte in all {
            if byte == UInt8(ascii: " ") {
                starts.append(bytes.count)
            } else {
                bytes.append(byte)
            }
        }
        if !all.isEmpty {
            starts.append(bytes.count)
        }
        self.bytes = bytes
        self.starts = starts
    }

    /// How many names the table holds.
    var count: Int { starts.count - 1 }

    /// The position of `key` in the table, trying `hint` first (keys usually come in
    /// declaration order); nil when no name matches.
    func index(of key: UnsafeRawBufferPointer, hint: Int) -> Int? {
        let count = self.count
        return bytes.withUnsafeBytes { names -> Int? in
            func matches(_ index: Int) -> Bool {
                let start = starts[index], length = starts[index + 1] - start
                guard length == key.count else { return false }
                guard length > 0, let name = names.baseAddress, let bytes = key.baseAddress else { return length == 0 }
                return memcmp(name + start, bytes, length) == 0
            }
            if hint < count, matches(hint) {
                return hint
            }
            for index in 0..<count where matches(index) {
                return index
            }
            return nil
        }
    }

    /// The name at `index` as a string.
    func name(_ index: Int) -> String {
        String(decoding: bytes[starts[index]..<starts[index + 1]], as: UTF8.self)
    }

    /// Appends the name at `index` to `out`.
    func append(_ index: Int, to out: inout [UInt8]) {
        out.append(contentsOf: bytes[starts[index]..<starts[index + 1]])
    }
}

/// A value the JSON reader and writer handle by its Swift type: the scalars, bytes,
/// enums and messages. Proto types that share a Swift type share a JSON form (every
/// 64-bit integer is a quoted decimal, every 32-bit one a number).
internal protocol _ProtoJSONValue {
    /// The proto3 default value.
    init()
    /// Whether this is the default, which an implicit-presence field does not emit.
    var _jsonIsDefault: Bool { get }
    /// Reads one value (never `null`: the caller decides what that means).
    static func _jsonValue(from reader: inout _ProtoJSONReader) throws(ProtoJSONError) -> Self
    /// Writes the value.
    func _jsonWriteValue(to writer: inout _ProtoJSONWriter)
}

/// A map key type: JSON object keys are strings, so integers and booleans are written
/// in quotes and read back from the key's text.
internal protocol _ProtoJSONMapKey: Hashable {
    /// Writes the key with its quotes and the colon after it.
    func _jsonWriteKey(to writer: inout _ProtoJSONWriter)
    /// The key the string token at `key` in the reader's input spells.
    static func _jsonKey(from reader: inout _ProtoJSONReader, _ key: _ProtoJSONReader.StringToken) throws(ProtoJSONError) -> Self
}

/// A generated enum: its names and numbers.
internal protocol _ProtoJSONEnum: _ProtoJSONValue {
    /// Every value's name with its number; the first name of a number is the one written.
    static var _jsonNames: _ProtoJSONNames { get }
    init(rawValue: Int32)
    var rawValue: Int32 { get }
}

/// A generated message: its JSON form, read and written in place.
internal protocol _ProtoJSONCodable: ProtoMessage, _ProtoJSONValue {
    /// Reads the message's JSON form (an object of fields, or a well-known type's own form).
    mutating func _jsonRead(_ reader: inout _ProtoJSONReader) throws(ProtoJSONError)
    /// Writes the message's JSON form.
    func _jsonWrite(_ writer: inout _ProtoJSONWriter)
    /// Whether the JSON form is not an object of the fields (`Duration`, `Any`): inside
    /// an `Any` it goes under `"value"`.
    static var _jsonHasSpecialForm: Bool { get }
}

extension _ProtoJSONCodable {
    static var _jsonHasSpecialForm: Bool { false }

    var _jsonIsDefault: Bool { false }

    static func _jsonValue(from reader: inout _ProtoJSONReader) throws(ProtoJSONError) -> Self {
        var message = Self()
        try message._jsonRead(&reader)
        return message
    }

    func _jsonWriteValue(to writer: inout _ProtoJSONWriter) {
        _jsonWrite(&writer)
    }
}
