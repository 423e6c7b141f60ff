import STBMessages
import STBEventLoop

/// The handler's side of a call: its response sink and completion. Methods may be called
/// from any thread; they run on the connection's loop (directly when already there).
final class ServerCall: MessageSink, @unchecked Sendable {
    // @unchecked: `connection` and `stream` are touched only on `loop`, enforced by `onLoop`.
    let loop: EventLoop
    /// Strong: a handler may outlive its connection (closed under it) and must still be
    /// able to report back safely; the connection ignores reports once closed.
    let connection: ServerConnection
    let stream: ServerStream
    let context: ServerContext
    /// The handler's task; set and cancelled on the loop.
    var task: Task<Void, Never>?

    init(connection: ServerConnection, stream: ServerStream, context: ServerContext) {
        self.loop = connection.loop
        self.connection = connection
        self.stream = stream
        self.context = context
    }

    func send(_ message: [UInt8]) async throws {
        if loop.inEventLoop {
            try await sendOnLoop(message)
        } else {
            // Rare: the handler moved to another executor. Hop, then continue there.
            let box = UncheckedSendableBox(self)
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                loop.execute {
                    do {
                        try box.value.connection.enqueueResponseMessage(message, on: box.value.stream)
                        if box.value.connection.needsDrain(box.value.stream) {
                            box.value.stream.outbound.drainWaiters.append(continuation)
                        } else {
                            continuation.resume()
                        }
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            }
        }
    }

    /// Queues `message` without waiting when on the loop and the stream's queued bytes
    /// are under the limit; false (nothing queued) otherwise.
    func sendNow(_ message: [UInt8]) throws -> Bool {
        guard loop.inEventLoop, !connection.needsDrain(stream) else { return false }
        try connection.enqueueResponseMessage(message, on: stream)
        return true
    }

    private func sendOnLoop(_ message: [UInt8]) async throws {
        try connection.enqueueResponseMessage(message, on: stream)
        if connection.needsDrain(stream) {
            // A handler cancelled while its peer does not read (a stream that ends a slow
            // consumer) stops waiting. The waiter is added on the loop before the cancel
            // hop can run there, so it is always found.
            let box = UncheckedSendableBox(self)
            try await withTaskCancellationHandler {
                try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                    stream.outbound.drainWaiters.append(continuation)
                }
            } onCancel: {
                box.value.loop.execute { box.value.stream.outbound.resumeWaiters(error: CancellationError()) }
            }
        }
    }

    /// Cancels the handler (client reset, deadline, shutdown). Loop only.
    func cancelTask() {
        task?.cancel()
    }

    /// Ends the call with the handler's outcome.
    func complete(response: [UInt8]?, error: (any Error)?) {
        if loop.inEventLoop {
            // The usual case: no closure to allocate.
            return connection.handlerFinished(stream, response: response, error: error)
        }
        onLoop { call in
            call.connection.handlerFinished(call.stream, response: response, error: error)
        }
    }

    func onLoop(_ body: @escaping (ServerCall) -> Void) {
        if loop.inEventLoop {
            body(self)
        } else {
            let box = UncheckedSendableBox(self)
            let work = UncheckedSendableBox(body)
            loop.execute { work.value(box.value) }
        }
    }
}

/// Carries a loop-confined value across a hop to its own loop.
struct UncheckedSendableBox<Value>: @unchecked Sendable {
    // @unchecked: used only to move a value to the loop that owns it.
    let value: Value
    init(_ value: Value) { self.value = value }
}
