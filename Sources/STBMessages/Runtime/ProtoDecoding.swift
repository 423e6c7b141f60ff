internal import CProtobufC

// Helpers the generated `init(_c:)` initializers use to copy protobuf-c's
// decoded structs into Swift values. The C memory is freed right after, so
// everything is copied; nothing here keeps a pointer.

/// A copy of a decoded C string (NULL reads as empty).
@inline(__always)
internal func _protoString(_ pointer: UnsafePointer<CChar>?) -> String {
    guard let pointer, pointer.pointee != 0 else {
        return ""
    }
    return String(cString: pointer)
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

/// A map field: protobuf-c keeps it as an array of entry messages. Later
/// entries win over earlier ones with the same key, as the protobuf spec says.
@inline(__always)
internal func _protoDictionary<Entry, Key: Hashable, Value>(
    _ entries: UnsafeMutablePointer<UnsafeMutablePointer<Entry>?>?,
    _ count: Int,
    _ transform: (Entry) -> (Key, Value)
) -> [Key: Value] {
    guard let entries, count > 0 else {
        return [:]
    }
    var result: [Key: Value] = [:]
    result.reserveCapacity(count)
    for index in 0..<count {
        guard let entry = entries[index] else {
            continue
        }
        let (key, value) = transform(entry.pointee)
        result[key] = value
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
