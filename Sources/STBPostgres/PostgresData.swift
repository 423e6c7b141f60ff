import FoundationEssentials

/// A Postgres type OID, as the wire protocol names types.
public struct PostgresType: Hashable, Sendable, CustomStringConvertible {
    public let oid: UInt32
    public init(oid: UInt32) { self.oid = oid }
    public var description: String { "oid \(oid)" }

    /// Let the server infer the type (used for untyped NULLs).
    public static let unspecified = PostgresType(oid: 0)
    public static let bool = PostgresType(oid: 16)
    public static let bytea = PostgresType(oid: 17)
    public static let char = PostgresType(oid: 18)
    public static let name = PostgresType(oid: 19)
    public static let int8 = PostgresType(oid: 20)
    public static let int2 = PostgresType(oid: 21)
    public static let int4 = PostgresType(oid: 23)
    public static let text = PostgresType(oid: 25)
    public static let oidType = PostgresType(oid: 26)
    public static let json = PostgresType(oid: 114)
    public static let float4 = PostgresType(oid: 700)
    public static let float8 = PostgresType(oid: 701)
    public static let bpchar = PostgresType(oid: 1042)
    public static let varchar = PostgresType(oid: 1043)
    public static let textArray = PostgresType(oid: 1009)
    public static let varcharArray = PostgresType(oid: 1015)
    public static let timestamp = PostgresType(oid: 1114)
    public static let timestamptz = PostgresType(oid: 1184)
    public static let jsonb = PostgresType(oid: 3802)
    public static let xid8 = PostgresType(oid: 5069)
}

// MARK: - Encoding (parameters are always sent in binary format)

/// A Swift value that can be bound as a query parameter.
public protocol PostgresEncodable: Sendable {
    /// The parameter's type, sent with the statement so the server does not guess.
    static var postgresType: PostgresType { get }
    /// Appends the value's binary representation; return `false` for SQL NULL.
    func encode(into buffer: inout [UInt8]) -> Bool
}

extension Bool: PostgresEncodable {
    public static var postgresType: PostgresType { .bool }
    public func encode(into buffer: inout [UInt8]) -> Bool {
        buffer.append(self ? 1 : 0)
        return true
    }
}

extension Int64: PostgresEncodable {
    public static var postgresType: PostgresType { .int8 }
    public func encode(into buffer: inout [UInt8]) -> Bool {
        appendBigEndian(UInt64(bitPattern: self), to: &buffer)
        return true
    }
}

extension Int: PostgresEncodable {
    public static var postgresType: PostgresType { .int8 }
    public func encode(into buffer: inout [UInt8]) -> Bool { Int64(self).encode(into: &buffer) }
}

extension Int32: PostgresEncodable {
    public static var postgresType: PostgresType { .int4 }
    public func encode(into buffer: inout [UInt8]) -> Bool {
        appendBigEndian(UInt32(bitPattern: self), to: &buffer)
        return true
    }
}

extension Double: PostgresEncodable {
    public static var postgresType: PostgresType { .float8 }
    public func encode(into buffer: inout [UInt8]) -> Bool {
        appendBigEndian(bitPattern, to: &buffer)
        return true
    }
}

extension String: PostgresEncodable {
    public static var postgresType: PostgresType { .text }
    public func encode(into buffer: inout [UInt8]) -> Bool {
        buffer.append(contentsOf: utf8)
        return true
    }
}

extension Substring: PostgresEncodable {
    public static var postgresType: PostgresType { .text }
    public func encode(into buffer: inout [UInt8]) -> Bool {
        buffer.append(contentsOf: utf8)
        return true
    }
}

/// Element types whose Swift arrays map to one Postgres type: `[UInt8]` is `bytea`,
/// `[String]` is `text[]` (one dimension, no NULL elements).
public protocol PostgresArrayElement: Sendable {
    static var arrayPostgresType: PostgresType { get }
    static func encodeArray(_ elements: [Self], into buffer: inout [UInt8])
    static func decodeArray(from cell: PostgresCell, bytes: UnsafeRawBufferPointer) throws(PostgresError) -> [Self]
}

extension Array: PostgresEncodable where Element: PostgresArrayElement {
    public static var postgresType: PostgresType { Element.arrayPostgresType }
    public func encode(into buffer: inout [UInt8]) -> Bool {
        Element.encodeArray(self, into: &buffer)
        return true
    }
}

extension UInt8: PostgresArrayElement {
    public static var arrayPostgresType: PostgresType { .bytea }
    public static func encodeArray(_ elements: [UInt8], into buffer: inout [UInt8]) {
        buffer.append(contentsOf: elements)
    }
    public static func decodeArray(from cell: PostgresCell, bytes: UnsafeRawBufferPointer) throws(PostgresError) -> [UInt8] {
        guard cell.isBinary else { throw .decoding(cell, "arrived in text format; bytea is read in binary only") }
        return [UInt8](bytes)
    }
}

extension String: PostgresArrayElement {
    public static var arrayPostgresType: PostgresType { .textArray }
    public static func encodeArray(_ elements: [String], into buffer: inout [UInt8]) {
        appendBigEndian(UInt32(elements.isEmpty ? 0 : 1), to: &buffer)  // dimensions
        appendBigEndian(UInt32(0), to: &buffer)  // has-nulls flag
        appendBigEndian(PostgresType.text.oid, to: &buffer)
        if elements.isEmpty { return }
        appendBigEndian(UInt32(elements.count), to: &buffer)
        appendBigEndian(UInt32(1), to: &buffer)  // lower bound
        for element in elements {
            let bytes = element.utf8
            appendBigEndian(UInt32(bytes.count), to: &buffer)
            buffer.append(contentsOf: bytes)
        }
    }
    public static func decodeArray(from cell: PostgresCell, bytes: UnsafeRawBufferPointer) throws(PostgresError) -> [String] {
        guard cell.isBinary, cell.type == .textArray || cell.type == .varcharArray, bytes.count >= 12 else {
            throw .decoding(cell, "cannot be read as a text array")
        }
        let dimensions = readBigEndian(Int32.self, bytes)
        if dimensions == 0 { return [] }
        guard dimensions == 1, bytes.count >= 20 else { throw .decoding(cell, "is not a one-dimensional array") }
        let count = Int(readBigEndian(Int32.self, bytes, at: 12))
        var offset = 20
        var result: [String] = []
        result.reserveCapacity(count)
        for _ in 0..<count {
            guard offset + 4 <= bytes.count else { throw .decoding(cell, "is a truncated array") }
            let length = Int(readBigEndian(Int32.self, bytes, at: offset))
            offset += 4
            guard length >= 0 else { throw .decoding(cell, "has a NULL element") }
            guard offset + length <= bytes.count else { throw .decoding(cell, "is a truncated array") }
            result.append(textValue(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + length])))
            offset += length
        }
        return result
    }
}

/// Postgres counts timestamps in microseconds from 2000-01-01 00:00:00 UTC.
private let postgresEpochOffset: Double = 946_684_800

extension Date: PostgresEncodable {
    public static var postgresType: PostgresType { .timestamptz }
    public func encode(into buffer: inout [UInt8]) -> Bool {
        let micros = ((timeIntervalSince1970 - postgresEpochOffset) * 1_000_000).rounded()
        appendBigEndian(UInt64(bitPattern: Int64(micros)), to: &buffer)
        return true
    }
}

/// JSON text, bound and read as `jsonb` (also reads `json` columns).
public struct PostgresJSON: PostgresEncodable, Hashable, Sendable, CustomStringConvertible {
    public var text: String
    public init(_ text: String) { self.text = text }
    public var description: String { text }

    public static var postgresType: PostgresType { .jsonb }
    public func encode(into buffer: inout [UInt8]) -> Bool {
        buffer.append(1)  // jsonb binary format version
        buffer.append(contentsOf: text.utf8)
        return true
    }
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public static var postgresType: PostgresType { Wrapped.postgresType }
    public func encode(into buffer: inout [UInt8]) -> Bool {
        switch self {
        case .some(let value): value.encode(into: &buffer)
        case .none: false
        }
    }
}

@inline(__always)
private func appendBigEndian<T: FixedWidthInteger>(_ value: T, to buffer: inout [UInt8]) {
    withUnsafeBytes(of: value.bigEndian) { buffer.append(contentsOf: $0) }
}

// MARK: - Decoding (results arrive in binary format, or text for simple queries)

/// One column value of one row, as the server sent it.
public struct PostgresCell {
    /// `nil` for SQL NULL.
    public let bytes: UnsafeRawBufferPointer?
    public let type: PostgresType
    /// Whether the value is in binary (true) or text format.
    public let isBinary: Bool
    let column: Int
    let rows: PostgresRows

    /// The column's name, for error messages.
    public var columnName: String { rows.columnName(column) }
}

/// A Swift type that can be read from a result column.
public protocol PostgresDecodable: Sendable {
    /// Reads a non-NULL value.
    static func decode(from cell: PostgresCell, bytes: UnsafeRawBufferPointer) throws(PostgresError) -> Self
    /// The value for SQL NULL; the default throws.
    static func decodeNull(from cell: PostgresCell) throws(PostgresError) -> Self
}

extension PostgresDecodable {
    public static func decodeNull(from cell: PostgresCell) throws(PostgresError) -> Self {
        throw .decoding(cell, "is NULL, read as non-optional \(Self.self)")
    }

    @inlinable
    static func decode(_ cell: PostgresCell) throws(PostgresError) -> Self {
        guard let bytes = cell.bytes else { return try decodeNull(from: cell) }
        return try decode(from: cell, bytes: bytes)
    }
}

extension PostgresError {
    static func decoding(_ cell: PostgresCell, _ problem: String) -> PostgresError {
        PostgresError(code: .decodingFailed, message: "column \"\(cell.columnName)\" (\(cell.type)) \(problem)")
    }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public static func decode(from cell: PostgresCell, bytes: UnsafeRawBufferPointer) throws(PostgresError) -> Self {
        try Wrapped.decode(from: cell, bytes: bytes)
    }
    public static func decodeNull(from cell: PostgresCell) throws(PostgresError) -> Self { nil }
}

@inline(__always)
private func readBigEndian<T: FixedWidthInteger>(_: T.Type, _ bytes: UnsafeRawBufferPointer, at offset: Int = 0) -> T {
    T(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
}

private func textValue(_ bytes: UnsafeRawBufferPointer) -> String {
    String(decoding: bytes, as: UTF8.self)
}

extension Int64: PostgresDecodable {
    public static func decode(from cell: PostgresCell, bytes: UnsafeRawBufferPointer) throws(PostgresError) -> Int64 {
        if !cell.isBinary {
            guard let value = Int64(textValue(bytes)) else { throw .decoding(cell, "is not an integer") }
            return value
        }
        switch (cell.type, bytes.count) {
        case (.int8, 8), (.xid8, 8): return readBigEndian(Int64.self, bytes)
        case (.int4, 4): return Int64(readBigEndian(Int32.self, bytes))
        case (.int2, 2): return Int64(readBigEndian(Int16.self, bytes))
        case (.oidType, 4): return Int64(readBigEndian(UInt32.self, bytes))
        default: throw .decoding(cell, "cannot be read as an integer")
        }
    }
}

extension Int: PostgresDecodable {
    public static func decode(from cell: PostgresCell, bytes: UnsafeRawBufferPointer) throws(PostgresError) -> Int {
        Int(try Int64.decode(from: cell, bytes: bytes))
    }
}

extension Int32: PostgresDecodable {
    public static func decode(from cell: PostgresCell, bytes: UnsafeRawBufferPointer) throws(PostgresError) -> Int32 {
        let wide = try Int64.decode(from: cell, bytes: bytes)
        guard let value = Int32(exactly: wide) else { throw .decoding(cell, "value \(wide) does not fit Int32") }
        return value
    }
}

extension UInt64: PostgresDecodable {
    public static func decode(from cell: PostgresCell, bytes: UnsafeRawBufferPointer) throws(PostgresError) -> UInt64 {
        if cell.isBinary, cell.type == .xid8, bytes.count == 8 { return readBigEndian(UInt64.self, bytes) }
        if !cell.isBinary, let value = UInt64(textValue(bytes)) { return value }
        let wide = try Int64.decode(from: cell, bytes: bytes)
        guard let value = UInt64(exactly: wide) else { throw .decoding(cell, "value \(wide) is negative") }
        return value
    }
}

extension Bool: PostgresDecodable {
    public static func decode(from cell: PostgresCell, bytes: UnsafeRawBufferPointer) throws(PostgresError) -> Bool {
        guard bytes.count == 1 else { throw .decoding(cell, "cannot be read as a boolean") }
        let byte = bytes[0]
        return cell.isBinary ? byte != 0 : byte == UInt8(ascii: "t")
    }
}

extension Double: PostgresDecodable {
    public static func decode(from cell: PostgresCell, bytes: UnsafeRawBufferPointer) throws(PostgresError) -> Double {
        if !cell.isBinary {
            guard let value = Double(textValue(bytes)) else { throw .decoding(cell, "is not a number") }
            return value
        }
        switch (cell.type, bytes.count) {
        case (.float8, 8): return Double(bitPattern: readBigEndian(UInt64.self, bytes))
        case (.float4, 4): return Double(Float(bitPattern: readBigEndian(UInt32.self, bytes)))
        default: return Double(try Int64.decode(from: cell, bytes: bytes))
        }
    }
}

extension String: PostgresDecodable {
    public static func decode(from cell: PostgresCell, bytes: UnsafeRawBufferPointer) throws(PostgresError) -> String {
        guard cell.isBinary else { return textValue(bytes) }
        switch cell.type {
        case .text, .varchar, .bpchar, .name, .char, .json, .unspecified:
            return textValue(bytes)
        case .jsonb:
            guard bytes.first == 1 else { throw .decoding(cell, "has an unknown jsonb format version") }
            return textValue(UnsafeRawBufferPointer(rebasing: bytes.dropFirst()))
        default:
            throw .decoding(cell, "cannot be read as text")
        }
    }
}

extension PostgresJSON: PostgresDecodable {
    public static func decode(from cell: PostgresCell, bytes: UnsafeRawBufferPointer) throws(PostgresError) -> PostgresJSON {
        PostgresJSON(try String.decode(from: cell, bytes: bytes))
    }
}

extension Array: PostgresDecodable where Element: PostgresArrayElement {
    public static func decode(from cell: PostgresCell, bytes: UnsafeRawBufferPointer) throws(PostgresError) -> [Element] {
        try Element.decodeArray(from: cell, bytes: bytes)
    }
}

extension Date: PostgresDecodable {
    public static func decode(from cell: PostgresCell, bytes: UnsafeRawBufferPointer) throws(PostgresError) -> Date {
        guard cell.isBinary, cell.type == .timestamptz || cell.type == .timestamp, bytes.count == 8 else {
            throw .decoding(cell, "cannot be read as a timestamp")
        }
        let micros = readBigEndian(Int64.self, bytes)
        return Date(timeIntervalSince1970: Double(micros) / 1_000_000 + postgresEpochOffset)
    }
}
