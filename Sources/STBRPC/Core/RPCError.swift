/// A gRPC status: the outcome of a call, sent by servers in trailers and thrown by clients.
///
/// Handlers throw `RPCError` to end a call with a specific status; any other error ends
/// the call with `UNKNOWN` and a message that does not leak the error's details.
/// Structured `details` (the standard `google.rpc` error details) travel beside the
/// message in `grpc-status-details-bin`, where stock gRPC clients read them.
public struct RPCError: Error, Hashable, Sendable {
    /// A gRPC status code. Extensible: unknown codes received on the wire are kept as-is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: Int

        public init(rawValue: Int) { self.rawValue = rawValue }

        public static let ok = Code(rawValue: 0)
        public static let cancelled = Code(rawValue: 1)
        public static let unknown = Code(rawValue: 2)
        public static let invalidArgument = Code(rawValue: 3)
        public static let deadlineExceeded = Code(rawValue: 4)
        public static let notFound = Code(rawValue: 5)
        public static let alreadyExists = Code(rawValue: 6)
        public static let permissionDenied = Code(rawValue: 7)
        public static let resourceExhausted = Code(rawValue: 8)
        public static let failedPrecondition = Code(rawValue: 9)
        public static let aborted = Code(rawValue: 10)
        public static let outOfRange = Code(rawValue: 11)
        public static let unimplemented = Code(rawValue: 12)
        public static let `internal` = Code(rawValue: 13)
        public static let unavailable = Code(rawValue: 14)
        public static let dataLoss = Code(rawValue: 15)
        public static let unauthenticated = Code(rawValue: 16)

        private static let names = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
            "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
            "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
            "UNAUTHENTICATED",
        ]

        public var description: String {
            Self.names.indices.contains(rawValue) ? Self.names[rawValue] : "CODE_\(rawValue)"
        }
    }

    /// The status code.
    public var code: Code
    /// A human-readable message for the caller. Never put SQL or internals here.
    public var message: String
    /// Extra trailing metadata sent with the status.
    public var metadata: Metadata
    /// Structured details for programs, sent as a `google.rpc.Status` in
    /// `grpc-status-details-bin`. Like the message, they must not reveal internals.
    /// When the response headers have no room for all of them, the server sends those
    /// that fit, in this order, so put the most useful first.
    public var details: [ErrorDetail]

    /// Creates a status; `details` are sent with it in `grpc-status-details-bin`.
    public init(code: Code, message: String, metadata: Metadata = Metadata(), details: [ErrorDetail] = []) {
        self.code = code
        self.message = message
        self.metadata = metadata
        self.details = details
    }
}

extension RPCError: CustomStringConvertible {
    public var description: String { message.isEmpty ? "\(code)" : "\(code): \(message)" }
}
