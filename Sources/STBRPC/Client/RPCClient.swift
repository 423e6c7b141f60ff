import STBMessages
import Synchronization
import STBEventLoop

/// A gRPC client over one HTTP/2 connection (h2c) that multiplexes concurrent calls.
///
/// The connection opens on first use and again after it is lost (for example when the
/// server restarts): calls in flight then fail with UNAVAILABLE, later calls reconnect.
public final class RPCClient: Sendable {
    /// Client settings.
    public struct Configuration: Sendable {
        /// Largest response message accepted.
        public var maxReceiveMessageSize = 4 * 1024 * 1024
        /// Deadline applied to calls that pass none; nil for none.
        public var defaultTimeout: Duration?
        /// Added to every call's metadata (an access token), unless the call carries its own
        /// `authorization`.
        public var credentials: (any CallCredentials)?

        public init() {}
    }

    public let host: String
    public let port: Int
    public let configuration: Configuration
    private let group: EventLoopGroup
    private let ownsGroup: Bool
    let loop: EventLoop
    private let holder: ConnectionHolder

    /// A client for `host:port`. Without `group`, the client runs its own one-thread loop.
    public init(host: String, port: Int, configuration: Configuration = Configuration(), group: EventLoopGroup? = nil) throws {
        self.host = host
        self.port = port
        self.configuration = configuration
        if let group {
            self.group = group
            self.ownsGroup = false
        } else {
            self.group = try EventLoopGroup(count: 1, name: "stb-rpc-client")
            self.ownsGroup = true
        }
        self.loop = self.group.next()
        self.holder = ConnectionHolder()
    }

    /// Closes the connection; calls in flight fail with UNAVAILABLE.
    public func close() async {
        let holder = self.holder
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            loop.execute {
                holder.connection?.close(reason: "client closed")
                holder.connection = nil
                continuation.resume()
            }
        }
        if ownsGroup { group.shutdown() }
    }

    // MARK: - Typed calls

    /// A unary call; throws `RPCError` for a non-OK status.
    public func unary<Request, Response>(
        _ method: ProtoMethod<Request, Response>, request: Request,
        metadata: Metadata = Metadata(), timeout: Duration? = nil
    ) async throws -> Response {
        try await unaryCall(method, request: request, metadata: metadata, timeout: timeout).message
    }

    /// A unary call that also returns the response metadata.
    public func unaryCall<Request, Response>(
        _ method: ProtoMethod<Request, Response>, request: Request,
        metadata: Metadata = Metadata(), timeout: Duration? = nil
    ) async throws -> ClientResponse<Response> {
        let call = try await start(path: method.path, metadata: metadata, timeout: timeout, request: request.serializedBytes())
        return try await withCallCancellation(call) {
            try await singleResponse(call, Response.self)
        }
    }

    /// A server-streaming call: `body` reads the responses; leaving `body` early cancels the call.
    public func serverStreaming<Request, Response, Result: Sendable>(
        _ method: ProtoMethod<Request, Response>, request: Request,
        metadata: Metadata = Metadata(), timeout: Duration? = nil,
        _ body: (ClientResponseStream<Response>) async throws -> Result
    ) async throws -> Result {
        let call = try await start(path: method.path, metadata: metadata, timeout: timeout, request: request.serializedBytes())
        return try await withCallCancellation(call) {
            try await body(ClientResponseStream(call: call))
        }
    }

    /// A client-streaming call: `body` writes the requests; the call half-closes when it returns.
    public func clientStreaming<Request, Response>(
        _ method: ProtoMethod<Request, Response>,
        metadata: Metadata = Metadata(), timeout: Duration? = nil,
        _ body: (RPCWriter<Request>) async throws -> Void
    ) async throws -> ClientResponse<Response> {
        let call = try await start(path: method.path, metadata: metadata, timeout: timeout, request: nil)
        return try await withCallCancellation(call) {
            try await body(RPCWriter(sink: call))
            call.finishSending()
            return try await singleResponse(call, Response.self)
        }
    }

    /// A bidirectional call: `body` gets a writer and the responses; when it returns the
    /// request side half-closes, and unread responses are discarded.
    public func bidirectionalStreaming<Request, Response, Result: Sendable>(
        _ method: ProtoMethod<Request, Response>,
        metadata: Metadata = Metadata(), timeout: Duration? = nil,
        _ body: (ClientRequestWriter<Request>, ClientResponseStream<Response>) async throws -> Result
    ) async throws -> Result {
        let call = try await start(path: method.path, metadata: metadata, timeout: timeout, request: nil)
        return try await withCallCancellation(call) {
            let result = try await body(ClientRequestWriter(call: call), ClientResponseStream(call: call))
            call.finishSending()
            return result
        }
    }

    // MARK: - Prepared calls

    /// Prepares `path` (`/package.Service/Method`, a unary method) for many calls with framed
    /// requests and byte responses (see `PreparedUnary`): the headers, with `metadata`, the
    /// client's credentials (fetched now, once) and the `grpc-timeout` of `timeout` (else the
    /// default timeout), are encoded once for all of them.
    public func prepareUnary(path: String, metadata: Metadata = Metadata(), timeout: Duration? = nil) async throws -> PreparedUnary {
        var metadata = metadata
        if let credentials = configuration.credentials, metadata.firstString(forKey: Metadata.authorizationKey) == nil {
            metadata.add(contentsOf: try await credentials.metadata())
        }
        return PreparedUnary(client: self, path: path, metadata: metadata, timeout: timeout ?? configuration.defaultTimeout)
    }

    /// The open connection, or a new one. Loop only.
    func connection() throws -> ClientConnection {
        try holder.connection(loop: loop, host: host, port: port)
    }

    // MARK: - Internals

    private func singleResponse<Response: ProtoMessage>(_ call: ClientCall, _ type: Response.Type) async throws -> ClientResponse<Response> {
        guard let bytes = try await call.responses.next() else {
            throw RPCError(code: .unimplemented, message: "the server sent no response message")
        }
        let message: Response
        do {
            message = try Response(serializedBytes: bytes)
        } catch {
            throw RPCError(code: .internal, message: "could not decode \(Response.protoMessageName)")
        }
        // Drain to the status: a second message or a failing status is an error.
        if try await call.responses.next() != nil {
            throw RPCError(code: .unimplemented, message: "the server sent more than one response message")
        }
        return ClientResponse(message: message, initialMetadata: call.initialMetadata, trailingMetadata: call.trailingMetadata)
    }

    /// Cancels the call (RST_STREAM) if the task is cancelled or `body` exits early.
    private func withCallCancellation<Result>(_ call: ClientCall, _ body: () async throws -> Result) async throws -> Result {
        try await withTaskCancellationHandler {
            do {
                let result = try await body()
                if !Task.isCancelled { return result }
                call.cancel()
                return result
            } catch {
                call.cancel()
                throw (error as? RPCError) ?? (error is CancellationError ? RPCError(code: .cancelled, message: "the call was cancelled") : error)
            }
        } onCancel: {
            call.cancel()
        }
    }

    private func start(path: String, metadata: Metadata, timeout: Duration?, request: [UInt8]?) async throws -> ClientCall {
        let timeout = timeout ?? configuration.defaultTimeout
        var metadata = metadata
        if let credentials = configuration.credentials, metadata.firstString(forKey: Metadata.authorizationKey) == nil {
            metadata.add(contentsOf: try await credentials.metadata())
        }
        let credit = CreditBox()
        let call = ClientCall(
            loop: loop, path: path, metadata: metadata, timeoutNanos: timeout.map(\.nanoseconds),
            maxMessageSize: configuration.maxReceiveMessageSize,
            onConsume: { _ in credit.returnCredit() })
        credit.call = call
        if let request {
            call.outbound.append(message: request)
            call.sendingFinished = true
            call.singleRequest = request
        }
        let holder = self.holder
        let (host, port) = (self.host, self.port)
        let loop = self.loop
        if loop.inEventLoop {
            // Already on the client's loop (a task preferring it as its executor): start
            // the stream here, without a hop and a continuation per call.
            do {
                try holder.connection(loop: loop, host: host, port: port).start(call)
            } catch {
                throw RPCError(code: .unavailable, message: "could not connect to \(host):\(port): \(error)")
            }
            return call
        }
        let box = UncheckedSendableBox(call)
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
            loop.execute {
                do {
                    let connection = try holder.connection(loop: loop, host: host, port: port)
                    connection.start(box.value)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: RPCError(code: .unavailable, message: "could not connect to \(host):\(port): \(error)"))
                }
            }
        }
        return call
    }
}

/// The connection a client is using. Loop only.
private final class ConnectionHolder: @unchecked Sendable {
    // @unchecked: touched only on the client's loop.
    var connection: ClientConnection?

    func connection(loop: EventLoop, host: String, port: Int) throws -> ClientConnection {
        if let connection, connection.isUsable, !connection.isClosed { return connection }
        let fresh = try ClientConnection(loop: loop, host: host, port: port) { [weak self] closed in
            if self?.connection === closed { self?.connection = nil }
        }
        connection = fresh
        return fresh
    }
}

/// Returns window credit when the caller reads a response message.
private final class CreditBox: @unchecked Sendable {
    // @unchecked: `call` is set once before the call starts; credit runs on the call's loop.
    weak var call: ClientCall?

    func returnCredit() {
        guard let call else { return }
        if call.loop.inEventLoop {
            call.connection?.returnCredit(call)
        } else {
            let box = UncheckedSendableBox(call)
            call.loop.execute { box.value.connection?.returnCredit(box.value) }
        }
    }
}

/// A unary or client-streaming response with its metadata.
public struct ClientResponse<Message: ProtoMessage>: Sendable {
    public let message: Message
    public let initialMetadata: Metadata
    public let trailingMetadata: Metadata
}

/// The responses of a streaming call; iteration throws `RPCError` for a non-OK status.
public struct ClientResponseStream<Message: ProtoMessage>: AsyncSequence, Sendable {
    public typealias Element = Message
    let call: ClientCall

    public func makeAsyncIterator() -> RPCMessageStream<Message>.AsyncIterator {
        RPCMessageStream<Message>(queue: call.responses).makeAsyncIterator()
    }

    /// Response header metadata (complete once a message or the end has arrived).
    public var initialMetadata: Metadata { call.initialMetadata }
    /// Trailer metadata (complete once iteration has ended).
    public var trailingMetadata: Metadata { call.trailingMetadata }
}

/// Writes requests on a bidirectional call and half-closes it.
public struct ClientRequestWriter<Message: ProtoMessage>: Sendable {
    let call: ClientCall

    /// Sends one request; suspends while the server is slow to read.
    public func write(_ message: Message) async throws {
        try await call.send(message.serializedBytes())
    }

    /// Half-closes: no more requests. Safe to call more than once.
    public func finish() {
        call.finishSending()
    }
}
