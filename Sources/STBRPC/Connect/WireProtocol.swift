/// How a message is encoded: protobuf binary, or the proto3 JSON mapping.
public enum MessageCodec: Sendable, Hashable {
    case proto
    case json
}

/// The protocol a request speaks on the shared port, chosen by its `content-type`.
///
/// gRPC (`application/grpc`, `+proto`, `+json`) frames every message with a 5-byte prefix
/// and ends with trailers. The Connect protocol has two forms: unary calls
/// (`application/proto`, `application/json`) carry one bare message each way and answer
/// errors with an HTTP status and a JSON body; streaming calls (`application/connect+proto`,
/// `application/connect+json`) frame messages in 5-byte envelopes and end the response
/// with an end-of-stream envelope, always under HTTP 200.
enum WireProtocol: Equatable, Sendable {
    case grpc(MessageCodec)
    case connectUnary(MessageCodec)
    case connectStreaming(MessageCodec)

    /// The request content types served, for `accept-post` on a 415.
    static let acceptedContentTypes =
        "application/grpc, application/grpc+proto, application/grpc+json, application/proto, application/json, application/connect+proto, application/connect+json"

    /// The protocol of a request with this `content-type`; nil for anything else. Media
    /// types compare without case and without parameters (`; charset=utf-8`), except
    /// that every `application/grpc…` type is gRPC, as it always was here.
    init?(contentType: String) {
        if contentType == "application/grpc" {
            // The usual case, and then the header parser's shared string: compares at once.
            self = .grpc(.proto)
            return
        }
        var utf8 = contentType.utf8[...]
        if utf8.starts(with: "application/grpc".utf8) {
            self = utf8.elementsEqual("application/grpc+json".utf8) ? .grpc(.json) : .grpc(.proto)
            return
        }
        if let semicolon = utf8.firstIndex(of: UInt8(ascii: ";")) { utf8 = utf8[..<semicolon] }
        while let last = utf8.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { utf8 = utf8.dropLast() }
        guard utf8.count <= 32 else { return nil }
        var lowered: [UInt8] = []
        lowered.reserveCapacity(utf8.count)
        for byte in utf8 { lowered.append(byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte) }
        switch String(decoding: lowered, as: UTF8.self) {
        case "application/json": self = .connectUnary(.json)
        case "application/proto": self = .connectUnary(.proto)
        case "application/connect+json": self = .connectStreaming(.json)
        case "application/connect+proto": self = .connectStreaming(.proto)
        default: return nil
        }
    }

    var codec: MessageCodec {
        switch self {
        case .grpc(let codec), .connectUnary(let codec), .connectStreaming(let codec): codec
        }
    }

    var isConnect: Bool {
        if case .grpc = self { false } else { true }
    }

    /// The response `content-type`: the request's own, in its canonical spelling.
    var responseContentType: String {
        switch self {
        case .grpc(.proto): "application/grpc"
        case .grpc(.json): "application/grpc+json"
        case .connectUnary(.proto): "application/proto"
        case .connectUnary(.json): "application/json"
        case .connectStreaming(.proto): "application/connect+proto"
        case .connectStreaming(.json): "application/connect+json"
        }
    }
}

/// The `connect-timeout-ms` header: a positive integer of at most 10 ASCII digits.
enum ConnectTimeout {
    /// The timeout in nanoseconds; nil when the value is not 1 to 10 digits.
    static func parse(_ value: String) -> UInt64? {
        let bytes = value.utf8
        guard !bytes.isEmpty, bytes.count <= 10 else { return nil }
        var milliseconds: UInt64 = 0
        for byte in bytes {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            milliseconds = milliseconds * 10 + UInt64(byte - 0x30)
        }
        // 10 digits of milliseconds is under 2^34, times 10^6 under 2^54: no overflow.
        return milliseconds * 1_000_000
    }
}
