import STBEventLoop

/// One call of a `PreparedUnary` on a client connection: its request is framed already and
/// its one response is handed over once, to a continuation or a callback, when the status
/// arrives. Unlike `ClientCall` it has no response queue, no response metadata, and no
/// per-call header list: the call costs one object. Loop only.
final class UnaryExchange {
    /// What receives the outcome.
    enum Completion {
        case continuation(UnsafeContinuation<[UInt8], any Error>)
        case callback(@Sendable (Result<[UInt8], RPCError>) -> Void)
    }

    let headers: UnaryHeaders
    let request: FramedMessage
    /// Request bytes already handed to nghttp2.
    var requestOffset = 0
    /// The connection while the call is open (cleared when it ends, which breaks the cycle).
    var connection: ClientConnection?
    var streamID: Int32 = -1
    var deframer: MessageDeframer
    var response: [UInt8]?
    var extraResponses = false
    var receivedHeaders = false
    var responseStatus = ResponseStatus()
    private(set) var isFinished = false
    /// Set when the caller cancelled before the call started.
    var isCancelled = false
    /// Transparent retries left for streams the server refused unprocessed.
    var refusalRetries = 3
    var completion: Completion?

    init(headers: UnaryHeaders, request: FramedMessage, maxMessageSize: Int, completion: Completion?) {
        self.headers = headers
        self.request = request
        self.deframer = MessageDeframer(maxMessageSize: maxMessageSize)
        self.completion = completion
    }

    /// The outcome the response and trailers received so far describe (at END_STREAM).
    func receivedOutcome() -> Result<[UInt8], RPCError> {
        let status = responseStatus.status()
        guard status.code == .ok else { return .failure(status) }
        if extraResponses { return .failure(RPCError(code: .unimplemented, message: "the server sent more than one response message")) }
        guard let response else { return .failure(RPCError(code: .unimplemented, message: "the server sent no response message")) }
        return .success(response)
    }

    /// Hands the outcome over, once.
    func finish(_ outcome: Result<[UInt8], RPCError>) {
        guard !isFinished else { return }
        isFinished = true
        connection = nil
        let completion = self.completion
        self.completion = nil
        response = nil
        switch completion {
        case .continuation(let continuation)?:
            switch outcome {
            case .success(let bytes): continuation.resume(returning: bytes)
            case .failure(let error): continuation.resume(throwing: error)
            }
        case .callback(let body)?:
            body(outcome)
        case nil:
            break
        }
    }
}
