import STBMessages
import STBPostgres
import STBRPC
import Synchronization

/// One stream's messages not yet sent, bounded in bytes, and where the stream stands.
///
/// Producers (one per upstream) push messages; each is stamped, under the lock, with the
/// resume token of the positions reached so far, so the token on a message names only
/// events delivered (or skipped as not for this caller) before it. Passing `limit`
/// unsent bytes ends the stream as a slow consumer; nobody else waits for it.
final class OutboundQueue: Sendable {
    private struct State {
        var messages: [Stb_Gateway_V1_SubscribeEvent] = []
        var sizes: [Int] = []
        var bytes = 0
        var positions: [Upstream: OutboxCursor]
        var failure: RPCError?
        /// `next()` waiting, resumed with what it takes.
        var waiter: CheckedContinuation<Taken, Never>?
        var lastPush = ContinuousClock.now

        /// Empties the queue: its messages, or the failure once there is one; nil when
        /// there is nothing to hand over.
        mutating func takeAll() -> Taken? {
            if let failure { return .failed(failure) }
            guard !messages.isEmpty else { return nil }
            let taken = messages
            messages.removeAll(keepingCapacity: true)
            sizes.removeAll(keepingCapacity: true)
            bytes = 0
            return .messages(taken)
        }

        /// The waiter, if any, with what it takes now (nothing is taken without one).
        mutating func wake() -> (CheckedContinuation<Taken, Never>, Taken)? {
            guard let waiter, let taken = takeAll() else { return nil }
            self.waiter = nil
            return (waiter, taken)
        }
    }

    let epoch: String
    let limit: Int
    private let state: Mutex<State>

    init(epoch: String, positions: [Upstream: OutboxCursor], limit: Int) {
        self.epoch = epoch
        self.limit = limit
        self.state = Mutex(State(positions: positions))
    }

    /// The token of the positions reached so far.
    var token: String { state.withLock { ResumeToken(epoch: epoch, positions: $0.positions).text } }

    /// When the last message was pushed.
    var lastPush: ContinuousClock.Instant { state.withLock { $0.lastPush } }

    /// Where `upstream` stands.
    func position(_ upstream: Upstream) -> OutboxCursor? { state.withLock { $0.positions[upstream] } }

    /// Moves `upstream` to `cursor` (events passed without a message).
    func advance(_ upstream: Upstream, to cursor: OutboxCursor) {
        state.withLock { $0.positions[upstream] = cursor }
    }

    /// Queues `message` (its token set here), first moving `upstream` to `cursor`; false
    /// once the stream has failed.
    @discardableResult
    func push(_ message: Stb_Gateway_V1_SubscribeEvent, advancing upstream: Upstream? = nil, to cursor: OutboxCursor? = nil) -> Bool {
        let woken = state.withLock { state -> (CheckedContinuation<Taken, Never>, Taken)? in
            guard state.failure == nil else { return nil }
            if let upstream, let cursor { state.positions[upstream] = cursor }
            var stamped = message
            stamped.resumeToken = ResumeToken(epoch: epoch, positions: state.positions).text
            let size = stamped.encodedSize
            state.messages.append(stamped)
            state.sizes.append(size)
            state.bytes += size
            state.lastPush = .now
            return state.wake()
        }
        if let woken { woken.0.resume(returning: woken.1) }
        return state.withLock { $0.failure == nil }
    }

    /// Waits while more than `limit` bytes are unsent; when the client has not taken them
    /// within `patience`, the stream ends as a slow consumer. A burst (a long replay) thus
    /// waits for a client that reads, and only a client that does not read is ended.
    func waitForRoom(patience: Duration = .seconds(3)) async throws {
        let deadline = ContinuousClock.now + patience
        while true {
            let (bytes, failed) = state.withLock { ($0.bytes, $0.failure != nil) }
            if failed { throw StreamEnded() }
            if bytes <= limit { return }
            if ContinuousClock.now >= deadline {
                fail(RPCError(code: .resourceExhausted, message: "slow consumer: more than \(limit) bytes of messages were waiting for the client"))
                throw StreamEnded()
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Ends the stream with `error` (the first failure wins).
    func fail(_ error: RPCError) {
        let woken = state.withLock { state -> (CheckedContinuation<Taken, Never>, Taken)? in
            if state.failure == nil { state.failure = error }
            return state.wake()
        }
        if let woken { woken.0.resume(returning: woken.1) }
    }

    /// The failure, once there is one.
    var failure: RPCError? { state.withLock { $0.failure } }

    /// The queued messages (waiting for some); throws the failure once the stream failed.
    func next() async throws -> [Stb_Gateway_V1_SubscribeEvent] {
        switch await take() {
        case .messages(let messages): return messages
        case .failed(let failure): throw failure
        }
    }

    /// What `take()` hands over: the queued messages, or the stream's failure.
    private enum Taken: Sendable {
        case messages([Stb_Gateway_V1_SubscribeEvent])
        case failed(RPCError)
    }

    /// Waits until there are messages or a failure (a cancelled task fails the stream).
    ///
    /// One non-throwing wait: the continuation is kept under the lock and `push` or `fail`
    /// resumes it with what it takes. (A throwing loop around a waiter resumed empty, the
    /// earlier shape, crashed Swift 6.3.1's optimiser splitting the coroutine.)
    private func take() async -> Taken {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Taken, Never>) in
                let taken = state.withLock { state -> Taken? in
                    if let taken = state.takeAll() { return taken }
                    state.waiter = continuation
                    return nil
                }
                if let taken { continuation.resume(returning: taken) }
            }
        } onCancel: {
            self.fail(RPCError(code: .cancelled, message: "the stream ended"))
        }
    }
}

extension Stb_Gateway_V1_SubscribeEvent {
    /// The message's wire size.
    var encodedSize: Int { (try? serializedBytes().count) ?? 0 }
}
