import Synchronization
import STBEventLoop

/// A single-consumer queue of received messages, filled by a connection's loop and
/// drained by a handler (server) or a caller (client), possibly on another thread.
final class MessageQueue: Sendable {
    private struct State {
        var items: [[UInt8]] = []
        var head = 0
        var queuedBytes = 0
        var end: Result<Void, RPCError>?
        var waiter: UnsafeContinuation<[UInt8]?, any Error>?
        var cancelled = false
    }

    private let state = Mutex(State())
    /// Called after a message is taken, with its size: flow-control credit for the sender.
    private let onConsume: (@Sendable (Int) -> Void)?

    init(onConsume: (@Sendable (Int) -> Void)? = nil) {
        self.onConsume = onConsume
    }

    /// Bytes received and not yet taken by the consumer.
    var queuedBytes: Int { state.withLock { $0.queuedBytes } }

    /// Adds a message, or hands it straight to a waiting consumer.
    func push(_ message: [UInt8]) {
        let waiter = state.withLock { state -> UnsafeContinuation<[UInt8]?, any Error>? in
            guard state.end == nil else { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.items.append(message)
            state.queuedBytes += message.count
            return nil
        }
        if let waiter {
            waiter.resume(returning: message)
            onConsume?(message.count)
        }
    }

    /// Ends the queue: the consumer gets the queued messages, then nil (or the error).
    func finish(_ result: Result<Void, RPCError> = .success(())) {
        let waiter = state.withLock { state -> UnsafeContinuation<[UInt8]?, any Error>? in
            guard state.end == nil else { return nil }
            state.end = result
            defer { state.waiter = nil }
            return state.waiter
        }
        guard let waiter else { return }
        switch result {
        case .success: waiter.resume(returning: nil)
        case .failure(let error): waiter.resume(throwing: error)
        }
    }

    /// The next message; nil at the end; throws the failure or `CancellationError`.
    func next() async throws -> [UInt8]? {
        if let immediate = try takeImmediately() { return immediate.message }
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<[UInt8]?, any Error>) in
                let outcome = state.withLock { state -> Result<[UInt8]?, any Error>? in
                    if state.cancelled { return .failure(CancellationError()) }
                    if let message = Self.pop(&state) { return .success(message) }
                    switch state.end {
                    case .success?: return .success(nil)
                    case .failure(let error)?: return .failure(error)
                    case nil:
                        state.waiter = continuation
                        return nil
                    }
                }
                if let outcome {
                    if case .success(let message?) = outcome { onConsume?(message.count) }
                    continuation.resume(with: outcome)
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> UnsafeContinuation<[UInt8]?, any Error>? in
                state.cancelled = true
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// A message or the end, if available without waiting.
    private func takeImmediately() throws -> (message: [UInt8]?, Void)? {
        let outcome = state.withLock { state -> Result<[UInt8]?, RPCError>? in
            if let message = Self.pop(&state) { return .success(message) }
            switch state.end {
            case .success?: return .success(nil)
            case .failure(let error)?: return .failure(error)
            case nil: return nil
            }
        }
        switch outcome {
        case nil: return nil
        case .success(let message)?:
            if let message { onConsume?(message.count) }
            return (message, ())
        case .failure(let error)?: throw error
        }
    }

    private static func pop(_ state: inout State) -> [UInt8]? {
        guard state.head < state.items.count else { return nil }
        let message = state.items[state.head]
        state.items[state.head] = []
        state.head += 1
        state.queuedBytes -= message.count
        if state.head == state.items.count {
            state.items.removeAll(keepingCapacity: true)
            state.head = 0
        }
        return message
    }
}
