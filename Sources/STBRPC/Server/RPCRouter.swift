import STBMessages
import STBEventLoop

/// The methods a server serves, by path (`/package.Service/Method`).
public struct RPCRouter: Sendable {
    /// One method, as the connection calls it: request and response messages are bytes
    /// in the call's codec (protobuf or JSON), which the handler decodes and encodes.
    enum Handler: Sendable {
        case unary(@Sendable ([UInt8], MessageCodec, ServerContext) async throws -> [UInt8])
        case serverStreaming(@Sendable ([UInt8], MessageCodec, any MessageSink, ServerContext) async throws -> Void)
        case clientStreaming(@Sendable (MessageQueue, MessageCodec, ServerContext) async throws -> [UInt8])
        case bidirectionalStreaming(@Sendable (MessageQueue, MessageCodec, any MessageSink, ServerContext) async throws -> Void)

        /// Whether the whole request is one message, read before the handler starts.
        var takesSingleRequest: Bool {
            switch self {
            case .unary, .serverStreaming: true
            case .clientStreaming, .bidirectionalStreaming: false
            }
        }

        /// Whether one message goes each way (Connect's unary form).
        var isUnary: Bool {
            if case .unary = self { true } else { false }
        }
    }

    /// A unary method's answer given at once, on the connection's thread, without a task:
    /// the request and response in the call's codec; nil when it cannot answer without
    /// waiting, and the method's `unary` handler takes the call instead.
    typealias Immediate = @Sendable ([UInt8], MessageCodec, ServerContext) throws -> [UInt8]?

    var handlers: [String: Handler] = [:]
    /// The unary methods that can often answer at once (from memory), by path.
    var immediateHandlers: [String: Immediate] = [:]

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
        handlers[method.path] = .unary { bytes, codec, context in
            try await handler(try decode(Request.self, bytes, codec), context).encoded(codec)
        }
    }

    /// Lets a unary method answer at once when it can, besides its `unary` handler: when the
    /// request is in, `handler` runs on the connection's thread without a task or a hop,
    /// and its response (or the status it throws) is the call's. It returns nil when the
    /// answer needs waiting (a database, a peer, a lock held long); the method's `unary`
    /// handler then takes the call as usual. For answers from memory only: it must never
    /// block, since the connection's other calls wait while it runs. Interceptors run
    /// around it through `ServerInterceptor.interceptImmediately`; one that cannot sends
    /// every call to the `unary` handler.
    public mutating func register<Request, Response>(
        _ method: ProtoMethod<Request, Response>,
        immediate handler: @escaping @Sendable (Request, ServerContext) throws -> Response?
    ) {
        precondition(method.kind == .unary, "\(method.path) is not a unary method")
        immediateHandlers[method.path] = { bytes, codec, context in
            try handler(try decode(Request.self, bytes, codec), context)?.encoded(codec)
        }
    }

    public mutating func register<Request, Response>(
        _ method: ProtoMethod<Request, Response>,
        serverStreaming handler: @escaping @Sendable (Request, RPCWriter<Response>, ServerContext) async throws -> Void
    ) {
        precondition(method.kind == .serverStreaming, "\(method.path) is not a server-streaming method")
        handlers[method.path] = .serverStreaming { bytes, codec, sink, context in
            try await handler(try decode(Request.self, bytes, codec), RPCWriter(sink: sink, codec: codec), context)
        }
    }

    public mutating func register<Request, Response>(
        _ method: ProtoMethod<Request, Response>,
        clientStreaming handler: @escaping @Sendable (RPCMessageStream<Request>, ServerContext) async throws -> Response
    ) {
        precondition(method.kind == .clientStreaming, "\(method.path) is not a client-streaming method")
        handlers[method.path] = .clientStreaming { queue, codec, context in
            try await handler(RPCMessageStream(queue: queue, carriesRequests: true, codec: codec), context).encoded(codec)
        }
    }

    public mutating func register<Request, Response>(
        _ method: ProtoMethod<Request, Response>,
        bidirectionalStreaming handler: @escaping @Sendable (RPCMessageStream<Request>, RPCWriter<Response>, ServerContext) async throws -> Void
    ) {
        precondition(method.kind == .bidirectionalStreaming, "\(method.path) is not a bidirectional method")
        handlers[method.path] = .bidirectionalStreaming { queue, codec, sink, context in
            try await handler(
                RPCMessageStream(queue: queue, carriesRequests: true, codec: codec), RPCWriter(sink: sink, codec: codec), context)
        }
    }

    func handler(for path: String) -> Handler? { handlers[path] }

    /// The immediate answer of the unary method at `path`, when it has one.
    func immediateHandler(for path: String) -> Immediate? {
        guard case .unary? = handlers[path] else { return nil }
        return immediateHandlers[path]
    }
}

/// A set of methods registered together, such as one proto `service`.
public protocol RPCService: Sendable {
    /// Adds this service's methods to `router`.
    func register(in router: inout RPCRouter)
}

/// The request of a unary or server-streaming call, decoded before its handler runs.
private func decode<Message: ProtoMessage>(_ type: Message.Type, _ bytes: [UInt8], _ codec: MessageCodec) throws -> Message {
    switch codec {
    case .proto:
        do {
            return try Message(serializedBytes: bytes)
        } catch {
            throw RPCError(decodingRequest: error)
        }
    case .json:
        do {
            return try Message(jsonUTF8: bytes)
        } catch {
            throw RPCError(decodingJSONRequest: error)
        }
    }
}

extension ProtoMessage {
    /// The message in `codec`'s encoding.
    func encoded(_ codec: MessageCodec) -> [UInt8] {
        switch codec {
        case .proto: serializedBytes()
        case .json: jsonUTF8Bytes()
        }
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

    /// The status for a JSON request that is not the JSON form of its message: the
    /// caller's mistake (INVALID_ARGUMENT), with the field path in the message and, when
    /// a field is to blame, in a `BadRequest`.
    init(decodingJSONRequest error: ProtoJSONError) {
        let details: [ErrorDetail] = error.path.isEmpty ? [] : [.badRequest(fields: [(field: error.path, description: error.reason)])]
        self.init(code: .invalidArgument, message: error.description, details: details)
    }
}
