internal import CProtobufC
import Glibc

// Helpers the generated `init(_c:)` initializers use to copy protobuf-c's
// decoded structs into Swift values. The C memory is freed right after, so
// everything is copied; nothing here keeps a pointer.

/// Why a decoded string field was refused, and where: the path is built
/// innermost first while the error travels out of the nested initializers, so
/// the common case (no error) costs nothing.
internal struct _ProtoFieldError: Error {
    var code: ProtoDecodingError.Code
    /// Path components, innermost first: `["key", "choices[3]", "selection"]`.
    var reversedPath: [String] = []

    /// The same error one level further out, inside `component`.
    @inline(never)
    func inside(_ component: String) -> Self {
        var outer = self
        outer.reversedPath.append(component)
        return outer
    }

    /// The public error for a top-level decode.
    func decodingError(messageName: String, byteCount: Int) -> ProtoDecodingError {
        ProtoDecodingError(
            code: code, messageName: messageName, byteCount: byteCount,
            fieldPath: reversedPath.reversed().joined(separator: "."))
    }
}

/// A copy of a decoded proto `string` (protoc-c holds it as bytes): valid UTF-8
/// without NUL, or an error with an empty path for the caller to complete.
@inline(__always)
internal func _protoString(_ data: ProtobufCBinaryData) throws(_ProtoFieldError) -> String {
    guard data.len > 0, let bytes = data.data else {
        return ""
    }
    // Strict validation: overlong forms, surrogates and values above U+10FFFF fail,
    // where String(decoding:) would quietly put U+FFFD in their place.
    guard let string = String(validating: UnsafeBufferPointer(start: bytes, count: data.len), as: UTF8.self) else {
        throw _ProtoFieldError(code: .invalidUTF8)
    }
    // NUL is valid UTF-8, but C strings, Postgres text and most readers stop at it,
    // so a value would mean one thing here and another further on.
    if memchr(bytes, 0, data.len) != nil {
        throw _ProtoFieldError(code: .nulCharacter)
    }
    return string
}

/// `_protoString` for the value of field `field`.
@inline(__always)
internal func _protoString(_ data: ProtobufCBinaryData, field: StaticString) throws(_ProtoFieldError) -> String {
    do {
        return try _protoString(data)
    } catch {
        throw error.inside("\(field)")
    }
}

/// A decoded sub-message of field `field` (nil when absent).
@inline(__always)
internal func _protoMessage<C, T>(
    _ pointer: UnsafeMutablePointer<C>?,
    field: StaticString,
    _ decode: (UnsafePointer<C>) throws(_ProtoFieldError) -> T
) throws(_ProtoFieldError) -> T? {
    guard let pointer else {
        return nil
    }
    do {
        return try decode(pointer)
    } catch {
        throw error.inside("\(field)")
    }
}

/// A top-level message decoded from protobuf-c's struct, with string errors
/// turned into the public error.
@inline(__always)
internal func _protoDecoded<C, T: ProtoMessage>(
    _ pointer: UnsafePointer<C>,
    byteCount: Int,
    _ decode: (UnsafePointer<C>) throws(_ProtoFieldError) -> T
) throws(ProtoDecodingError) -> T {
    do {
        return try decode(pointer)
    } catch {
        throw error.decodingError(messageName: T.protoMessageName, byteCount: byteCount)
    }
}

/// A copy of decoded bytes.
@inline(__always)
internal func _protoBytes(_ data: ProtobufCBinaryData) -> [UInt8] {
    guard data.len > 0, let bytes = data.data else {
        return []
    }
    return Array(UnsafeBufferPointer(start: bytes, count: data.len))
}

/// A copy of a repeated scalar field whose C and Swift layouts match.
@inline(__always)
internal func _protoArray<T>(_ pointer: UnsafeMutablePointer<T>?, _ count: Int) -> [T] {
    guard let pointer, count > 0 else {
        return []
    }
    return Array(UnsafeBufferPointer(start: pointer, count: count))
}

/// A repeated field converted element by element.
@inline(__always)
internal func _protoArray<C, T>(
    _ pointer: UnsafeMutablePointer<C>?,
    _ count: Int,
    _ transform: (C) -> T
) -> [T] {
    guard let pointer, count > 0 else {
        return []
    }
    return UnsafeBufferPointer(start: pointer, count: count).map(transform)
}

/// A repeated field whose elements can fail to decode (strings); a failure
/// names the element, `field[index]`.
@inline(__always)
internal func _protoArray<C, T>(
    _ pointer: UnsafeMutablePointer<C>?,
    _ count: Int,
    field: StaticString,
    _ transform: (C) throws(_ProtoFieldError) -> T
) throws(_ProtoFieldError) -> [T] {
    guard let pointer, count > 0 else {
        return []
    }
    var result: [T] = []
    result.reserveCapacity(count)
    for index in 0..<count {
        do {
            result.append(try transform(pointer[index]))
        } catch {
            throw error.inside("\(field)[\(index)]")
        }
    }
    return result
}

/// A repeated message field. protobuf-c never leaves an element NULL after a
/// successful unpack; the default value only keeps a corrupt graph from crashing.
@inline(__always)
internal func _protoMessages<C, T: ProtoMessage>(
    _ pointer: UnsafeMutablePointer<UnsafeMutablePointer<C>?>?,
    _ count: Int,
    field: StaticString,
    _ decode: (UnsafePointer<C>) throws(_ProtoFieldError) -> T
) throws(_ProtoFieldError) -> [T] {
    try _protoArray(pointer, count, field: field) { (element) throws(_ProtoFieldError) in
        guard let element else {
            return T()
        }
        return try decode(element)
    }
}

/// A map field: protobuf-c keeps it as an array of entry messages. Later
/// entries win over earlier ones with the same key, as the protobuf spec says.
/// A failure names the entry by its position on the wire: `field[index].key`.
@inline(__always)
internal func _protoDictionary<Entry, Key: Hashable, Value>(
    _ entries: UnsafeMutablePointer<UnsafeMutablePointer<Entry>?>?,
    _ count: Int,
    field: StaticString,
    _ transform: (Entry) throws(_ProtoFieldError) -> (Key, Value)
) throws(_ProtoFieldError) -> [Key: Value] {
    guard let entries, count > 0 else {
        return [:]
    }
    var result: [Key: Value] = [:]
    result.reserveCapacity(count)
    for index in 0..<count {
        guard let entry = entries[index] else {
            continue
        }
        do {
            let (key, value) = try transform(entry.pointee)
            result[key] = value
        } catch {
            throw error.inside("\(field)[\(index)]")
        }
    }
    return result
}

/// The descriptor a message's `__init` installs, for messages protoc-c gives
/// no `__unpack` of their own (nested ones); it points at static C data.
internal func _protoDescriptor<C>(
    of type: C.Type,
    initializer: (UnsafeMutablePointer<C>?) -> Void
) -> UnsafePointer<ProtobufCMessageDescriptor> {
    withUnsafeTemporaryAllocation(of: C.self, capacity: 1) { buffer in
        let message = buffer.baseAddress!
        initializer(message)
        let base = UnsafeRawPointer(message).load(as: ProtobufCMessage.self)
        // Every generated `__init` sets the descriptor; NULL would mean a protoc-c bug.
        return base.descriptor!
    }
}

extension [UInt8] {
    /// Appends `count` bytes that `write` stores at the pointer it gets and
    /// returns how many it wrote (protobuf-c's pack), growing geometrically.
    @inline(__always)
    internal mutating func _protoAppend(count: Int, _ write: (UnsafeMutablePointer<UInt8>) -> Int) {
        guard count > 0 else {
            return
        }
        if isEmpty && capacity < count {
            // Fresh buffer: pack into uninitialized storage, no zero fill.
            self = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                let written = write(buffer.baseAddress!)
                precondition(written == count, "protobuf-c packed \(written) bytes after measuring \(count)")
                initialized = count
            }
            return
        }
        let start = self.count
        if capacity < start + count {
            reserveCapacity(Swift.max(start + count, capacity * 2))
        }
        // Array has no public way to append uninitialized elements; zeroing
        // the reserved tail is a memset, far cheaper than the encode itself.
        append(contentsOf: repeatElement(0, count: count))
        withUnsafeMutableBufferPointer { buffer in
            let written = write(buffer.baseAddress! + start)
            precondition(written == count, "protobuf-c packed \(written) bytes after measuring \(count)")
        }
    }
}
