import STBMessages

/// The status fields of a gRPC response as they arrive in its headers or trailers:
/// `:status`, `grpc-status`, `grpc-message` and `grpc-status-details-bin`. Both kinds of
/// client call (streaming `ClientCall`, one-message `UnaryExchange`) keep one and read
/// the call's status from it at END_STREAM.
struct ResponseStatus {
    var httpStatus = 0
    var grpcStatus: Int?
    var grpcMessage: String?
    /// The `grpc-status-details-bin` trailer, decoded from base64.
    var grpcStatusDetails: [UInt8]?

    /// Keeps the header field if it is one of the status fields; false for any other name.
    mutating func take(
        name: UnsafePointer<UInt8>, nameLength: Int, value: UnsafePointer<UInt8>, valueLength: Int
    ) -> Bool {
        if bytesEqual(name, nameLength, ":status") {
            httpStatus = Int(makeString(value, valueLength)) ?? 0
        } else if bytesEqual(name, nameLength, "grpc-status") {
            grpcStatus = Int(makeString(value, valueLength))
        } else if bytesEqual(name, nameLength, "grpc-message") {
            grpcMessage = StatusMessage.decode(makeString(value, valueLength))
        } else if bytesEqual(name, nameLength, "grpc-status-details-bin") {
            grpcStatusDetails = Base64.decode(makeString(value, valueLength))
        } else {
            return false
        }
        return true
    }

    /// The call's status (code `.ok` included) with the trailers' metadata; without a
    /// `grpc-status`, gRPC's mapping of the HTTP status.
    func status(trailers: Metadata = Metadata()) -> RPCError {
        guard let grpcStatus else {
            return RPCError(code: Self.code(forHTTPStatus: httpStatus),
                            message: "response ended without grpc-status (HTTP status \(httpStatus))")
        }
        let code = RPCError.Code(rawValue: grpcStatus)
        let details = grpcStatusDetails.flatMap { RPCError.receivedDetails($0, code: code) } ?? []
        return RPCError(code: code, message: grpcMessage ?? "", metadata: trailers, details: details)
    }

    /// gRPC's mapping for responses without grpc-status.
    static func code(forHTTPStatus status: Int) -> RPCError.Code {
        switch status {
        case 400, 431: .internal
        case 401: .unauthenticated
        case 403: .permissionDenied
        case 404: .unimplemented
        case 429, 502, 503, 504: .unavailable
        default: .unknown
        }
    }
}
