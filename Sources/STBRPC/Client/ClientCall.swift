import Synchronization
import STBEventLoop

/// One call on a client connection. The request side (`send`, `finishSending`, `cancel`)
/// may be used from any thread; connection-facing state is touched only on the loop.
final class ClientCall: MessageSink, @unchecked Sendable {
    // @unchecked: loop-only fields are marked; the rest is immutable or in `results`.
    let loop: EventLoop
    let path: String
    let responses: MessageQueue
    let requestMetadata: Metadata
    let timeoutNanos: UInt64?

    // Loop only.
    /// Weak: a call can outlive its connection (cancelled after the connection failed).
    weak var connection: ClientConnection?
    var streamID: Int32 = -1
    var outbound = OutboundBody()
    var sendingFinished = false
    var isFinished = false
    var deframer: MessageDeframer
    var deadlineTimer: TimerHandle?
    var unconsumedBytes = 0
    var receivedHeaders = false
    var responseStatus = ResponseStatus()
    var headerMetadata = Metadata()
    var trailerMetadata = Metadata()
    /// The outcome, once known.
    var finalStatus: RPCError?
    /// The whole request when it is one message: a refused stream can be retried with it.
    var singleRequest: [UInt8]?
    /// Transparent retries left for streams the server refused unprocessed.
    var refusalRetries = 3

    private struct Results {
        var initialMetadata = Metadata()
        var trailingMetadata = Metadata()
    }
    private let results = Mutex(Results())

    init(loop: EventLoop, path: String, metadata: Metadata, timeoutNanos: UInt64?, maxMessageSize: Int, onConsume: @escaping @Sendable (Int) -> Void) {
        self.loop = loop
        self.path = path
        self.requestMetadata = metadata
        self.timeoutNanos = timeoutNanos
        self.deframer = MessageDeframer(maxMessageSize: maxMessageSize)
        self.responses = MessageQueue(onConsume: onConsume)
    }

    /// Response headers' metadata (available once the first response message or the end arrives).
    var initialMetadata: Metadata { results.withLock { $0.initialMetadata } }
    /// Trailers' metadata (available once the response stream has ended).
    var trailingMetadata: Metadata { results.withLock { $0.trailingMetadata } }

    func send(_ message: [UInt8]) async throws {
        let box = UncheckedSendableBox(self)
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
            onLoop {
                let call = box.value
                guard !call.isFinished, !call.sendingFinished, let connection = call.connection else {
                    // A server that ended the call early explains why in its status.
                    let status = call.finalStatus.flatMap { $0.code == .ok ? nil : $0 }
                    continuation.resume(throwing: status ?? RPCError(code: .cancelled, message: "the call has ended"))
                    return
                }
                call.outbound.append(message: message)
                connection.bodyUpdated(call)
                if call.outbound.pending > ClientConnection.maxQueuedRequestBytes {
                    call.outbound.drainWaiters.append(continuation)
                } else {
                    continuation.resume()
                }
            }
        }
    }

    /// Half-closes the request side (END_STREAM after the queued messages).
    func finishSending() {
        let box = UncheckedSendableBox(self)
        onLoop {
            let call = box.value
            guard !call.sendingFinished else { return }
            call.sendingFinished = true
            call.connection?.bodyUpdated(call)
        }
    }

    /// Cancels the call: RST_STREAM(CANCEL) and CANCELLED for the caller.
    func cancel() {
        let box = UncheckedSendableBox(self)
        onLoop { box.value.connection?.cancel(box.value, status: RPCError(code: .cancelled, message: "the call was cancelled")) }
    }

    /// Records the outcome; the response queue ends with it. Loop only.
    func finish(_ status: RPCError) {
        guard !isFinished else { return }
        isFinished = true
        finalStatus = status
        deadlineTimer?.cancel()
        let headers = headerMetadata
        let trailers = trailerMetadata
        results.withLock {
            $0.initialMetadata = headers
            $0.trailingMetadata = trailers
        }
        outbound.resumeWaiters(error: status.code == .ok ? RPCError(code: .cancelled, message: "the call has ended") : status)
        responses.finish(status.code == .ok ? .success(()) : .failure(status))
    }

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if loop.inEventLoop { body() } else { loop.execute(body) }
    }
}
