internal import CNghttp2

/// A header list that is the same for every call (the usual response headers, the OK
/// status), encoded once for the life of the process: submitting it builds nothing, and
/// nghttp2 keeps pointers to its bytes instead of copying them (`NO_COPY` flags).
final class StaticHeaderList: @unchecked Sendable {
    // @unchecked: written once in init, then only read; the memory is never freed.
    private let fields: UnsafeMutablePointer<nghttp2_nv>
    /// The number of fields.
    let count: Int

    /// Names must be lowercase, as HTTP/2 requires.
    init(_ pairs: [(name: String, value: String)]) {
        count = pairs.count
        fields = .allocate(capacity: max(pairs.count, 1))
        let noCopy = UInt8(NGHTTP2_NV_FLAG_NO_COPY_NAME.rawValue | NGHTTP2_NV_FLAG_NO_COPY_VALUE.rawValue)
        for (index, pair) in pairs.enumerated() {
            let bytes = Array(pair.name.utf8) + Array(pair.value.utf8)
            let storage = UnsafeMutablePointer<UInt8>.allocate(capacity: max(bytes.count, 1))
            storage.initialize(from: bytes, count: bytes.count)
            let nameLength = pair.name.utf8.count
            fields[index] = nghttp2_nv(
                name: storage, value: storage + nameLength, namelen: nameLength, valuelen: bytes.count - nameLength,
                flags: noCopy)
        }
    }

    /// Calls `body` with the `nghttp2_nv` array, as `HeaderBlock.withNameValues` does.
    func withNameValues<R>(_ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        body(fields, count)
    }
}
