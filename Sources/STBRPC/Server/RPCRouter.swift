import STBMessages
import STBEventLoop

/// The methods a server serves, by path (`/package.Service/Method`).
public struct RPCRouter: Sendable {
    enum Handler: Sendable {
        case unary(@Sendable ([UInt8], ServerContext) async throws -> [UInt8])
        case serverStreaming(@Sendable ([UInt8], any MessageSink, ServerContext) async throws -> Void)
        case clientStreaming(@Sendable (MessageQueue, ServerContext) async throws -> [UInt8])
        case bidirectionalStreaming(@Sendable (MessageQueue, any MessageSink, ServerContext) async throws -> Void)

        /// Whether the whole request is one message, read before the handler starts.
        var takesSingleRequest: Bool {
            switch self {
            case .unary, .serverStreaming: true
            case .clientStreaming, .bidirectionalStreaming: false
            }
        }
    }

    var handlers: [String: Handler] = [:]

    public init() {}

    /// The registered paths, sorted.
    public var paths: [String] { handlers.keys.sorted() }

    /// The fully qualified services with at least one registered method, sorted: the
    /// `package.Service` of each `/package.Service/Method` path.
    public var serviceNames: [String] {
        let names = handlers.keys.compactMap { path -> Substring? in
            let parts = path.split(separator: "/", omittingEmptySubsequences: false)
            return parts.count == 3 && parts[0].isEmpty && !parts[1].isEmpty ? parts[1] : nil
        }
        return Set(names.map(String.init)).sorted()
    }

    public mutating func register<Request, Response>(
        _ method: ProtoMethod<Request, Response>,
        unary handler: @escaping @Sendable (Request, ServerContext) async throws -> Response
    ) {
        precondition(method.kind == .unary, "\(method.path) is not a unary method")
        handlers[method.path] = .unary { bytes, context in
            try await handler(try decode(Request.self, bytes), context).serializedBytes()
        }
    }

    public mutating func register<Request, Response>(
        _ method: ProtoMethod<Request, Response>,
        serverStreaming handler: @escaping @Sendable (Request, RPCWriter<Response>, ServerContext) async throws -> Void
    ) {
        precondition(method.kind == .serverStreaming, "\(method.path) is not a server-streaming method")
        handlers[method.path] = .serverStreaming { bytes, sink, context in
            try await handler(try decode(Request.self, bytes), RPCWriter(sink: sink), context)
        }
    }

    public mutating func register<Request, Response>(
        _ method: ProtoMethod<Request, Response>,
        clientStreaming handler: @escaping @Sendable (RPCMessageStream<Request>, ServerContext) async throws -> Response
    ) {
        precondition(method.kind == .clientStreaming, "\(method.path) is not a client-streaming method")
        handlers[method.path] = .clientStreaming { queue, context in
            try await handler(RPCMessageStream(queue: queue, carriesRequests: true), context).serializedBytes()
        }
    }

    public mutating func register<Request, Response>(
        _ method: ProtoMethod<Request, Response>,
        bidirectionalStreaming handler: @escaping @Sendable (RPCMessageStream<Request>, RPCWriter<Response>, ServerContext) async throws -> Void
    ) {
        precondition(method.kind == .bidirectionalStreaming, "\(method.path) is not a bidirectional method")
        handlers[method.path] = .bidirectionalStreaming { queue, sink, context in
            try await handler(RPCMessageStream(queue: queue, carriesRequests: true), RPCWriter(sink: sink), context)
        }
    }

    func handler(for path: String) -> Handler? { handlers[path] }
}

/// A set of methods registered together, such as one proto `service`.
public protocol RPCService: Sendable {
    /// Adds this service's methods to `router`.
    func register(in router: inout RPCRouter)
}

/// The request of a unary or server-streaming call, decoded before its handler runs.
private func decode<Message: ProtoMessage>(_ type: Message.Type, _ bytes: [UInt8]) throws -> Message {
    do {
        return try Message(serializedBytes: bytes)
    } catch {
        throw RPCError(decodingRequest: error)
    }
}

extension RPCError {
    /// The status for a request message that did not decode: a string field that is not
    /// valid UTF-8 or holds a NUL is the caller's mistake, named by its field path
    /// (INVALID_ARGUMENT); bytes that are not protobuf at all are INTERNAL, as in gRPC.
    init(decodingRequest error: ProtoDecodingError) {
        switch error.code {
        case .invalidUTF8, .nulCharacter:
            self.init(code: .invalidArgument, message: error.description)
        default:
            self.init(code: .internal, message: "could not decode the request as \(error.messageName)")
        }
    }
}
