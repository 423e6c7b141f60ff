import STBEventLoop

/// A unary method prepared for many calls whose requests are framed already and whose
/// responses are wanted as bytes, once each: the header list (path, authority, timeout,
/// metadata) is encoded once, and each call costs one object and one continuation (or
/// one callback), with no response queue. Response metadata is not kept; a non-OK status
/// throws `RPCError` with its message and details, as the general API does.
///
/// Made by `RPCClient.prepareUnary(path:metadata:timeout:)`. Every call has the same
/// deadline from its start, enforced by one timer per prepared method.
public final class PreparedUnary: Sendable {
    /// The method's path, `/package.Service/Method`.
    public let path: String
    /// The loop the client's connection runs on; `start` is cheapest there.
    public var loop: EventLoop { client.loop }
    let client: RPCClient
    let headers: UnaryHeaders
    private let deadlines: DeadlineQueue?

    init(client: RPCClient, path: String, metadata: Metadata, timeout: Duration?) {
        self.client = client
        self.path = path
        let timeoutNanos = timeout.map(\.nanoseconds)
        self.headers = UnaryHeaders(
            path: path, authority: "\(client.host):\(client.port)", timeoutNanos: timeoutNanos, metadata: metadata)
        self.deadlines = timeoutNanos.map { DeadlineQueue(loop: client.loop, timeoutNanos: $0) }
    }

    /// Calls the method with `request`; returns the response message's bytes, or throws
    /// `RPCError` (CANCELLED when the task is cancelled).
    public func call(_ request: FramedMessage) async throws -> [UInt8] {
        if Task.isCancelled { throw RPCError(code: .cancelled, message: "the call was cancelled") }
        let exchange = UnaryExchange(
            headers: headers, request: request, maxMessageSize: client.configuration.maxReceiveMessageSize,
            completion: nil)
        let box = UncheckedSendableBox(exchange)
        let loop = client.loop
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<[UInt8], any Error>) in
                if loop.inEventLoop {
                    exchange.completion = .continuation(continuation)
                    begin(exchange)
                } else {
                    loop.execute {
                        box.value.completion = .continuation(continuation)
                        self.begin(box.value)
                    }
                }
            }
        } onCancel: {
            loop.execute { self.cancel(box.value) }
        }
    }

    /// Starts a call with `request`; `completion` runs on `loop` with the response message's
    /// bytes or the `RPCError`. From `loop` itself the call starts at once, with no hop.
    public func start(_ request: FramedMessage, completion: @escaping @Sendable (Result<[UInt8], RPCError>) -> Void) {
        let exchange = UnaryExchange(
            headers: headers, request: request, maxMessageSize: client.configuration.maxReceiveMessageSize,
            completion: .callback(completion))
        if client.loop.inEventLoop {
            begin(exchange)
        } else {
            let box = UncheckedSendableBox(exchange)
            client.loop.execute { self.begin(box.value) }
        }
    }

    /// Loop only.
    private func begin(_ exchange: UnaryExchange) {
        if exchange.isCancelled {
            exchange.finish(.failure(RPCError(code: .cancelled, message: "the call was cancelled")))
            return
        }
        let connection: ClientConnection
        do {
            connection = try client.connection()
        } catch {
            exchange.finish(.failure(RPCError(code: .unavailable, message: "could not connect to \(client.host):\(client.port): \(error)")))
            return
        }
        connection.start(exchange)
        if !exchange.isFinished { deadlines?.add(exchange) }
    }

    /// Loop only.
    private func cancel(_ exchange: UnaryExchange) {
        guard !exchange.isFinished else { return }
        guard exchange.completion != nil else {
            // Not started yet: `begin` ends it.
            exchange.isCancelled = true
            return
        }
        let status = RPCError(code: .cancelled, message: "the call was cancelled")
        if let connection = exchange.connection { connection.cancel(exchange, status: status) } else { exchange.finish(.failure(status)) }
    }
}
