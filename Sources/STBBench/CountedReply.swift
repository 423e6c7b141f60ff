import STBMessages

/// A reply only counted, never decoded: load loops measure the server, not our decoder.
public struct CountedReply<Message: ProtoMessage>: ProtoMessage {
    /// The reply's size in bytes.
    public var count = 0

    public init() {}
    public init(serializedBytes: UnsafeRawBufferPointer) throws(ProtoDecodingError) { count = serializedBytes.count }
    public func serialize(into buffer: inout [UInt8]) {}
    public static var protoMessageName: String { Message.protoMessageName }
}

extension ProtoMethod {
    /// The same method, its reply counted instead of decoded.
    public var counted: ProtoMethod<Request, CountedReply<Response>> {
        let kind: ProtoMethod<Request, CountedReply<Response>>.Kind = switch self.kind {
        case .unary: .unary
        case .serverStreaming: .serverStreaming
        case .clientStreaming: .clientStreaming
        case .bidirectionalStreaming: .bidirectionalStreaming
        }
        return ProtoMethod<Request, CountedReply<Response>>(path: path, kind: kind)
    }
}
