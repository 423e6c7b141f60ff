internal import CNghttp2

// nghttp2's C enums import as structs; these are the values as the plain integers the
// callbacks deal in.
enum FrameType {
    static let data = UInt8(NGHTTP2_DATA.rawValue)
    static let headers = UInt8(NGHTTP2_HEADERS.rawValue)
    static let rstStream = UInt8(NGHTTP2_RST_STREAM.rawValue)
    static let settings = UInt8(NGHTTP2_SETTINGS.rawValue)
    static let ping = UInt8(NGHTTP2_PING.rawValue)
    static let goaway = UInt8(NGHTTP2_GOAWAY.rawValue)
    static let windowUpdate = UInt8(NGHTTP2_WINDOW_UPDATE.rawValue)
}

enum FrameFlag {
    static let endStream = UInt8(NGHTTP2_FLAG_END_STREAM.rawValue)
    static let endHeaders = UInt8(NGHTTP2_FLAG_END_HEADERS.rawValue)
    static let ack = UInt8(NGHTTP2_FLAG_ACK.rawValue)
}

/// HTTP/2 error codes (RFC 9113 §7).
enum H2Error {
    static let noError = UInt32(NGHTTP2_NO_ERROR.rawValue)
    static let protocolError = UInt32(NGHTTP2_PROTOCOL_ERROR.rawValue)
    static let internalError = UInt32(NGHTTP2_INTERNAL_ERROR.rawValue)
    static let refusedStream = UInt32(NGHTTP2_REFUSED_STREAM.rawValue)
    static let streamClosed = UInt32(NGHTTP2_STREAM_CLOSED.rawValue)
    static let cancel = UInt32(NGHTTP2_CANCEL.rawValue)
    static let enhanceYourCalm = UInt32(NGHTTP2_ENHANCE_YOUR_CALM.rawValue)
    static let inadequateSecurity = UInt32(NGHTTP2_INADEQUATE_SECURITY.rawValue)
}

enum LibError {
    static let deferred = Int(NGHTTP2_ERR_DEFERRED.rawValue)
    static let temporalCallbackFailure = Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
    static let callbackFailure = Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)

    static func describe(_ code: Int) -> String { String(cString: nghttp2_strerror(Int32(code))) }
}

enum DataFlag {
    static let eof = UInt32(NGHTTP2_DATA_FLAG_EOF.rawValue)
    static let noEndStream = UInt32(NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue)
}

extension RPCError.Code {
    /// The status a client reports for a stream reset with `code` (gRPC over HTTP/2 mapping).
    init(resetCode code: UInt32) {
        switch code {
        case H2Error.refusedStream: self = .unavailable
        case H2Error.cancel: self = .cancelled
        case H2Error.enhanceYourCalm: self = .resourceExhausted
        case H2Error.inadequateSecurity: self = .permissionDenied
        default: self = .internal
        }
    }
}
