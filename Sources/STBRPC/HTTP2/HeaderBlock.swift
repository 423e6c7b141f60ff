import Glibc
internal import CNghttp2
import STBEventLoop

/// A header list for `nghttp2_submit_*`: names and values copied into one byte store, so
/// the `nghttp2_nv` pointers stay valid for the duration of the submit call.
struct HeaderBlock {
    private var storage: [UInt8] = []
    private var fields: [(nameStart: Int, nameLength: Int, valueStart: Int, valueLength: Int)] = []

    init(capacity: Int = 8) {
        storage.reserveCapacity(capacity * 24)
        fields.reserveCapacity(capacity)
    }

    mutating func add(_ name: String, _ value: String) {
        let nameStart = storage.count
        storage.append(contentsOf: name.utf8)
        let valueStart = storage.count
        storage.append(contentsOf: value.utf8)
        fields.append((nameStart, valueStart - nameStart, valueStart, storage.count - valueStart))
    }

    mutating func add(contentsOf pairs: [(String, String)]) {
        for (name, value) in pairs { add(name, value) }
    }

    /// Calls `body` with an `nghttp2_nv` array; nghttp2 copies what it keeps.
    mutating func withNameValues<R>(_ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        let fields = self.fields
        return storage.withUnsafeMutableBufferPointer { bytes in
            withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(fields.count, 1)) { nva in
                let base = bytes.baseAddress ?? UnsafeMutablePointer(mutating: emptyByte)
                for (index, field) in fields.enumerated() {
                    nva[index] = nghttp2_nv(
                        name: base + field.nameStart, value: base + field.valueStart,
                        namelen: field.nameLength, valuelen: field.valueLength,
                        flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
                }
                return body(nva.baseAddress!, fields.count)
            }
        }
    }
}

nonisolated(unsafe) private let emptyByte: UnsafeMutablePointer<UInt8> = {
    let pointer = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
    pointer.pointee = 0
    return pointer
}()

/// Compares a header name or value handed to a callback with ASCII text.
@inline(__always)
func bytesEqual(_ pointer: UnsafePointer<UInt8>, _ length: Int, _ literal: StaticString) -> Bool {
    guard length == literal.utf8CodeUnitCount else { return false }
    return memcmp(pointer, literal.utf8Start, length) == 0
}

@inline(__always)
func makeString(_ pointer: UnsafePointer<UInt8>, _ length: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: pointer, count: length), as: UTF8.self)
}

@inline(__always)
func hasPrefix(_ pointer: UnsafePointer<UInt8>, _ length: Int, _ literal: StaticString) -> Bool {
    guard length >= literal.utf8CodeUnitCount else { return false }
    return memcmp(pointer, literal.utf8Start, literal.utf8CodeUnitCount) == 0
}
