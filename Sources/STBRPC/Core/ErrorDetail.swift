import STBMessages

/// One structured detail of a status: a standard `google.rpc` error detail message.
///
/// Servers send a status's details as a `google.rpc.Status` in the
/// `grpc-status-details-bin` trailer, each detail packed in a `google.protobuf.Any`, as
/// every gRPC ecosystem reads them (`grpcio-status`'s `rpc_status.from_call`, grpc-java's
/// `StatusProto`, …). Details of a type this build does not know are kept as `other`.
public enum ErrorDetail: Hashable, Sendable {
    /// Why the call failed, for programs: a reason, its domain, and facts about it.
    case errorInfo(Google_Rpc_ErrorInfo)
    /// When the same request may be tried again.
    case retryInfo(Google_Rpc_RetryInfo)
    /// Which fields of the request were invalid, and why.
    case badRequest(Google_Rpc_BadRequest)
    /// Which preconditions of the request did not hold.
    case preconditionFailure(Google_Rpc_PreconditionFailure)
    /// Which quotas were exceeded.
    case quotaFailure(Google_Rpc_QuotaFailure)
    /// The resource the call was about.
    case resourceInfo(Google_Rpc_ResourceInfo)
    /// Which request this was.
    case requestInfo(Google_Rpc_RequestInfo)
    /// Where to read more.
    case help(Google_Rpc_Help)
    /// A message for people, in a given language.
    case localizedMessage(Google_Rpc_LocalizedMessage)
    /// A detail of another type (or one that did not decode), as received.
    case other(Google_Protobuf_AnyMessage)

    /// The prefix of every `type_url` this project sends, as the googleapis runtimes expect.
    public static let typeURLPrefix = "type.googleapis.com/"

    /// An `ErrorInfo` in the project's domain, `stb`.
    public static func errorInfo(reason: String, metadata: [String: String] = [:]) -> ErrorDetail {
        .errorInfo(Google_Rpc_ErrorInfo(reason: reason, domain: "stb", metadata: metadata))
    }

    /// A `RetryInfo` asking the caller to wait `delay` before trying again.
    public static func retry(after delay: Duration) -> ErrorDetail {
        let (seconds, attoseconds) = delay.components
        return .retryInfo(Google_Rpc_RetryInfo(retryDelay: Google_Protobuf_Duration(
            seconds: seconds, nanos: Int32(attoseconds / 1_000_000_000))))
    }

    /// A `BadRequest` with one violation per invalid field.
    public static func badRequest(fields violations: [(field: String, description: String)]) -> ErrorDetail {
        .badRequest(Google_Rpc_BadRequest(fieldViolations: violations.map {
            Google_Rpc_BadRequest.FieldViolation(field: $0.field, description_p: $0.description)
        }))
    }

    /// A `PreconditionFailure` with one violation.
    public static func preconditionFailure(type: String, subject: String, description: String) -> ErrorDetail {
        .preconditionFailure(Google_Rpc_PreconditionFailure(violations: [
            Google_Rpc_PreconditionFailure.Violation(type: type, subject: subject, description_p: description),
        ]))
    }

    /// The detail packed as a `google.protobuf.Any`.
    public var packed: Google_Protobuf_AnyMessage {
        func pack(_ message: some ProtoMessage) -> Google_Protobuf_AnyMessage {
            Google_Protobuf_AnyMessage(typeURL: Self.typeURLPrefix + type(of: message).protoMessageName, value: message.serializedBytes())
        }
        switch self {
        case .errorInfo(let message): return pack(message)
        case .retryInfo(let message): return pack(message)
        case .badRequest(let message): return pack(message)
        case .preconditionFailure(let message): return pack(message)
        case .quotaFailure(let message): return pack(message)
        case .resourceInfo(let message): return pack(message)
        case .requestInfo(let message): return pack(message)
        case .help(let message): return pack(message)
        case .localizedMessage(let message): return pack(message)
        case .other(let any): return any
        }
    }

    /// The detail a `google.protobuf.Any` holds: a known type when its `type_url` names
    /// one (after the last '/', as the protobuf runtimes read it) and its value decodes,
    /// `other` otherwise.
    public init(unpacking any: Google_Protobuf_AnyMessage) {
        let name = any.typeURL.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? ""
        func unpack<Message: ProtoMessage>(_: Message.Type, _ make: (Message) -> ErrorDetail) -> ErrorDetail {
            (try? Message(serializedBytes: any.value)).map(make) ?? .other(any)
        }
        switch name {
        case Google_Rpc_ErrorInfo.protoMessageName: self = unpack(Google_Rpc_ErrorInfo.self, ErrorDetail.errorInfo)
        case Google_Rpc_RetryInfo.protoMessageName: self = unpack(Google_Rpc_RetryInfo.self, ErrorDetail.retryInfo)
        case Google_Rpc_BadRequest.protoMessageName: self = unpack(Google_Rpc_BadRequest.self, ErrorDetail.badRequest)
        case Google_Rpc_PreconditionFailure.protoMessageName:
            self = unpack(Google_Rpc_PreconditionFailure.self, ErrorDetail.preconditionFailure)
        case Google_Rpc_QuotaFailure.protoMessageName: self = unpack(Google_Rpc_QuotaFailure.self, ErrorDetail.quotaFailure)
        case Google_Rpc_ResourceInfo.protoMessageName: self = unpack(Google_Rpc_ResourceInfo.self, ErrorDetail.resourceInfo)
        case Google_Rpc_RequestInfo.protoMessageName: self = unpack(Google_Rpc_RequestInfo.self, ErrorDetail.requestInfo)
        case Google_Rpc_Help.protoMessageName: self = unpack(Google_Rpc_Help.self, ErrorDetail.help)
        case Google_Rpc_LocalizedMessage.protoMessageName:
            self = unpack(Google_Rpc_LocalizedMessage.self, ErrorDetail.localizedMessage)
        default: self = .other(any)
        }
    }
}
