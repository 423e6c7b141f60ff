internal import CNghttp2

/// A request header list encoded once for many calls: the bytes and the `nghttp2_nv` array
/// live as long as this object, so nghttp2 is told not to copy them (it keeps pointers until
/// the HEADERS frame is written; every call holds its `UnaryHeaders` until it ends).
///
/// Immutable after `init`.
final class UnaryHeaders: @unchecked Sendable {
    // @unchecked: the buffers are written in `init` only and read by nghttp2 afterwards.
    private let bytes: UnsafeMutableBufferPointer<UInt8>
    let fields: UnsafeMutablePointer<nghttp2_nv>
    let count: Int

    /// The fields of a gRPC request on `path` to `authority`, with the `grpc-timeout` for
    /// `timeoutNanos` and the custom `metadata`.
    convenience init(path: String, authority: String, timeoutNanos: UInt64?, metadata: Metadata) {
        var pairs: [(String, String)] = [
            (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", authority),
            ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", ClientConnection.userAgent),
        ]
        if let timeoutNanos { pairs.append(("grpc-timeout", GRPCTimeout.format(nanoseconds: timeoutNanos))) }
        pairs.append(contentsOf: metadata.headerFields())
        self.init(pairs)
    }

    init(_ pairs: [(String, String)]) {
        let total = pairs.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count }
        bytes = .allocate(capacity: max(total, 1))
        fields = .allocate(capacity: max(pairs.count, 1))
        count = pairs.count
        var offset = 0
        let flags = UInt8(NGHTTP2_NV_FLAG_NO_COPY_NAME.rawValue | NGHTTP2_NV_FLAG_NO_COPY_VALUE.rawValue)
        for (index, (name, value)) in pairs.enumerated() {
            let nameStart = offset
            for byte in name.utf8 { bytes[offset] = byte; offset += 1 }
            let valueStart = offset
            for byte in value.utf8 { bytes[offset] = byte; offset += 1 }
            (fields + index).initialize(to: nghttp2_nv(
                name: bytes.baseAddress! + nameStart, value: bytes.baseAddress! + valueStart,
                namelen: valueStart - nameStart, valuelen: offset - valueStart, flags: flags))
        }
    }

    deinit {
        fields.deinitialize(count: count)
        fields.deallocate()
        bytes.deallocate()
    }
}
