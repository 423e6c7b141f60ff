import STBMessages

extension RPCError {
    /// The trailer that carries a status's details: a `google.rpc.Status`, base64.
    static let detailsKey = "grpc-status-details-bin"

    /// The first `ErrorInfo` among the details.
    public var errorInfo: Google_Rpc_ErrorInfo? {
        details.lazy.compactMap { if case .errorInfo(let value) = $0 { value } else { nil } }.first
    }

    /// The first `RetryInfo` among the details.
    public var retryInfo: Google_Rpc_RetryInfo? {
        details.lazy.compactMap { if case .retryInfo(let value) = $0 { value } else { nil } }.first
    }

    /// Every field violation of the details' `BadRequest`s.
    public var fieldViolations: [Google_Rpc_BadRequest.FieldViolation] {
        details.flatMap { detail -> [Google_Rpc_BadRequest.FieldViolation] in
            if case .badRequest(let value) = detail { value.fieldViolations } else { [] }
        }
    }

    /// Every violation of the details' `PreconditionFailure`s.
    public var preconditionViolations: [Google_Rpc_PreconditionFailure.Violation] {
        details.flatMap { detail -> [Google_Rpc_PreconditionFailure.Violation] in
            if case .preconditionFailure(let value) = detail { value.violations } else { [] }
        }
    }

    /// The status as a `google.rpc.Status`: code, message and the packed details.
    public var rpcStatus: Google_Rpc_Status {
        Google_Rpc_Status(code: Int32(truncatingIfNeeded: code.rawValue), message: message, details: details.map(\.packed))
    }

    /// A status from a `google.rpc.Status`.
    public init(status: Google_Rpc_Status, metadata: Metadata = Metadata()) {
        self.init(
            code: Code(rawValue: Int(status.code)), message: status.message, metadata: metadata,
            details: status.details.map(ErrorDetail.init(unpacking:)))
    }

    /// The `grpc-status-details-bin` value for `details` with `message` (the message as
    /// sent in `grpc-message`, which a stock client checks the status's against), at most
    /// `room` bytes long: base64 without padding. Details are kept in order, each one only
    /// if it still fits; nil when none does (or there are none). `dropped` counts the rest.
    static func detailsValue(code: Code, message: String, details: [ErrorDetail], room: Int) -> (value: String, dropped: Int)? {
        guard !details.isEmpty else { return nil }
        let base = Google_Rpc_Status(code: Int32(truncatingIfNeeded: code.rawValue), message: message).serializedBytes().count
        var kept: [Google_Protobuf_AnyMessage] = []
        var size = base
        for detail in details {
            let packed = detail.packed
            // Field 3, length-delimited: one tag byte, the length as a varint, the bytes.
            let length = packed.serializedBytes().count
            let added = 1 + varintSize(length) + length
            if base64Length(size + added) <= room {
                kept.append(packed)
                size += added
            }
        }
        guard !kept.isEmpty else { return nil }
        let bytes = Google_Rpc_Status(code: Int32(truncatingIfNeeded: code.rawValue), message: message, details: kept).serializedBytes()
        return (Base64.encode(bytes, padded: false), details.count - kept.count)
    }

    /// The details a received `grpc-status-details-bin` value holds, or nil when it does
    /// not decode or describes another status code than the one received.
    static func receivedDetails(_ value: [UInt8], code: Code) -> [ErrorDetail]? {
        guard let status = try? Google_Rpc_Status(serializedBytes: value), Int(status.code) == code.rawValue else { return nil }
        return status.details.map(ErrorDetail.init(unpacking:))
    }

    private static func varintSize(_ value: Int) -> Int {
        var value = UInt64(value)
        var size = 1
        while value >= 0x80 {
            value >>= 7
            size += 1
        }
        return size
    }

    /// The length of `count` bytes in base64 without padding.
    private static func base64Length(_ count: Int) -> Int {
        (count * 4 + 2) / 3
    }
}
