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
        var waiter: CheckedContinuation<Void, Never>?
        var lastPush = ContinuousClock.now
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
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.failure == nil else { return nil }
            if let upstream, let cursor { state.positions[upstream] = cursor }
            var stamped = message
            stamped.resumeToken = ResumeToken(epoch: epoch, positions: state.positions).text
            let size = stamped.encodedSize
            state.messages.append(stamped)
            state.sizes.append(size)
            state.bytes += size
            state.lastPush = .now
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
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
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.failure == nil { state.failure = error }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// The failure, once there is one.
    var failure: RPCError? { state.withLock { $0.failure } }

    /// The queued messages (waiting for some); throws the failure once the stream failed.
    func next() async throws -> [Stb_Gateway_V1_SubscribeEvent] {
        while true {
            try Task.checkCancellation()
            let taken = state.withLock { state -> Result<[Stb_Gateway_V1_SubscribeEvent], RPCError>? in
                if let failure = state.failure { return .failure(failure) }
                guard !state.messages.isEmpty else { return nil }
                defer {
                    state.messages.removeAll(keepingCapacity: true)
                    state.sizes.removeAll(keepingCapacity: true)
                    state.bytes = 0
                }
                return .success(state.messages)
            }
            if let taken { return try taken.get() }
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let ready = state.withLock { state -> Bool in
                        if state.failure != nil || !state.messages.isEmpty { return true }
                        state.waiter = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            } onCancel: {
                self.fail(RPCError(code: .cancelled, message: "the stream ended"))
            }
        }
    }
}

extension Stb_Gateway_V1_SubscribeEvent {
    /// The message's wire size.
    var encodedSize: Int { (try? serializedBytes().count) ?? 0 }
}
