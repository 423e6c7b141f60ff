/// An RPC method as declared in a .proto `service`.
///
/// Generated service enums hold one per method, so the RPC layer can route by
/// `path` and know the message types without stringly-typed lookups.
public struct ProtoMethod<Request: ProtoMessage, Response: ProtoMessage>: Sendable {
    /// Whether each side sends one message or a stream of them.
    public enum Kind: Sendable {
        /// One request, one response.
        case unary
        /// One request, a stream of responses.
        case serverStreaming
        /// A stream of requests, one response.
        case clientStreaming
        /// Streams both ways.
        case bidirectionalStreaming
    }

    /// The HTTP/2 `:path`, e.g. "/stb.testing.v1.Echo/Get".
    public let path: String
    /// How many messages each side sends.
    public let kind: Kind

    /// Creates a method description; generated code is the usual caller.
    public init(path: String, kind: Kind) {
        self.path = path
        self.kind = kind
    }
}
