import STBMessages
import STBPostgres
import STBRPC
import Synchronization

/// A stream's writer as the fan-out uses it on the stream's event loop: a write that
/// queues a message on the transport at once or refuses it, the token of the last
/// message handed to the transport, and the connection the stream shares with others,
/// flushed to its socket once all of them have their message.
struct DirectWrite: Sendable {
    let loop: EventLoop
    let delivered: DeliveredToken
    /// Queues one message in protobuf wire form on the transport at once (on `loop`);
    /// false (nothing queued) when the transport holds too much; throws when the call
    /// has ended.
    let writeNow: @Sendable ([UInt8]) throws -> Bool
    /// The stream's connection (nil: unknown, flushed at the end of the loop's turn).
    let connection: ObjectIdentifier?
    /// Writes what the connection has queued to its socket now (on `loop`).
    let flush: @Sendable () -> Void

    /// The direct path of `writer`, when it has one (a server call in protobuf).
    init?(_ writer: RPCWriter<Stb_Gateway_V1_SubscribeEvent>, delivered: DeliveredToken) {
        guard let call = writer.serverCallDirect else { return nil }
        self.init(loop: call.loop, delivered: delivered, connection: call.connection, flush: call.flush) {
            try call.writeNow(encoded: $0)
        }
    }

    init(
        loop: EventLoop, delivered: DeliveredToken, connection: ObjectIdentifier? = nil, flush: @escaping @Sendable () -> Void = {},
        writeNow: @escaping @Sendable ([UInt8]) throws -> Bool
    ) {
        self.loop = loop
        self.delivered = delivered
        self.connection = connection
        self.flush = flush
        self.writeNow = writeNow
    }
}

/// The resume token of the last message handed to the transport.
final class DeliveredToken: Sendable {
    private let token = Mutex<String?>(nil)
    var value: String? { token.withLock { $0 } }
    func set(_ value: String) { token.withLock { $0 = value } }
}

/// One message of a stream: a shared, encoded body and the stream's resume token.
struct Outbound: Sendable {
    let body: EncodedKind
    let token: String
    /// The whole message in wire form when it was made once for every stream that sends
    /// the body with `token` (nil: made when written).
    let wire: [UInt8]?

    init(body: EncodedKind, token: String, wire: [UInt8]? = nil) {
        self.body = body
        self.token = token
        self.wire = wire
    }

    /// The message as a `SubscribeEvent`.
    var message: Stb_Gateway_V1_SubscribeEvent { body.message(token: token) }
    /// The message in protobuf wire form.
    var encoded: [UInt8] { wire ?? body.encoded(token: token) }
}

/// One stream's messages not yet sent, bounded in bytes, and where the stream stands.
///
/// Producers (one per upstream) push messages; each is stamped, under the lock, with the
/// resume token of the positions reached so far, so the token on a message names only
/// events delivered (or skipped as not for this caller) before it. A message's body is
/// shared (`EncodedKind`): queueing one costs its token, not a copy or an encoding. Passing `limit`
/// unsent bytes ends the stream as a slow consumer; nobody else waits for it.
final class OutboundQueue: Sendable {
    private struct State {
        var messages: [Outbound] = []
        var bytes = 0
        var positions: [Upstream: OutboxCursor]
        var failure: RPCError?
        /// `next()` waiting, resumed with what it takes.
        var waiter: CheckedContinuation<Taken, Never>?
        var lastPush = ContinuousClock.now
        /// Since when more than `limit` bytes are unsent (nil: not over it).
        var fullSince: ContinuousClock.Instant?
        /// Upstreams the fan-out stopped delivering, whose catch-up the writer restarts.
        var detached: [Upstream] = []

        /// Empties the queue: its messages, or the failure once there is one; nil when
        /// there is nothing to hand over (an empty list when only `detached` changed).
        mutating func takeAll() -> Taken? {
            if let failure { return .failed(failure) }
            guard !messages.isEmpty || !detached.isEmpty else { return nil }
            let taken = messages
            messages = []
            return .messages(taken)
        }

        /// The fan-out is writing a message itself (`offer`): the waiter is woken after,
        /// so that it cannot take later messages before that one.
        var writingDirectly = false

        /// The waiter, if any, with what it takes now (nothing is taken without one).
        mutating func wake() -> (CheckedContinuation<Taken, Never>, Taken)? {
            guard !writingDirectly, let waiter, let taken = takeAll() else { return nil }
            self.waiter = nil
            return (waiter, taken)
        }
    }

    let epoch: String
    let limit: Int
    /// Where the fan-out writes a message itself, on the stream's event loop, when the
    /// writer is waiting with nothing queued (nil: every message goes through the writer).
    let direct: DirectWrite?
    private let state: Mutex<State>

    init(epoch: String, positions: [Upstream: OutboxCursor], limit: Int, direct: DirectWrite? = nil) {
        self.epoch = epoch
        self.limit = limit
        self.direct = direct
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
        guard let kind = message.kind else { return state.withLock { $0.failure == nil } }
        return push(EncodedKind(kind), advancing: upstream, to: cursor)
    }

    /// Queues the shared `body` (with the token of the positions reached), first moving
    /// `upstream` to `cursor`; false once the stream has failed. `tokens`: the encodings of
    /// the event at `cursor`, which keep the tokens made for it.
    @discardableResult
    func push(_ body: EncodedKind, advancing upstream: Upstream? = nil, to cursor: OutboxCursor? = nil, tokens: DeltaEncodings? = nil) -> Bool {
        var pushed = false
        let woken = state.withLock { state -> (CheckedContinuation<Taken, Never>, Taken)? in
            guard state.failure == nil else { return nil }
            pushed = true
            if let upstream, let cursor { state.positions[upstream] = cursor }
            let token = tokens?.token(epoch: epoch, positions: state.positions) ?? Self.tokenText(epoch: epoch, positions: state.positions)
            let message = Outbound(body: body, token: token)
            state.bytes += body.size(token: message.token)
            state.messages.append(message)
            state.lastPush = .now
            if state.bytes > limit, state.fullSince == nil { state.fullSince = state.lastPush }
            return state.wake()
        }
        if let woken { woken.0.resume(returning: woken.1) }
        return pushed
    }

    /// Whether the stream takes a live event from the fan-out.
    enum Acceptance {
        /// It stands before the event and has room.
        case room
        /// The stream stands at or after the event already.
        case had
        /// More than `limit` bytes are unsent: the stream's catch-up, which waits for
        /// room, takes over.
        case full
        /// The stream has ended.
        case ended
    }

    /// Whether the fan-out may hand `cursor` to the stream, in one look: `.room` when it
    /// stands before it with room.
    func accepts(_ upstream: Upstream, _ cursor: OutboxCursor) -> Acceptance {
        state.withLock { state in
            if state.failure != nil { return .ended }
            if let position = state.positions[upstream], position >= cursor { return .had }
            return state.bytes > limit ? .full : .room
        }
    }

    /// The fan-out's delivery of the event at `cursor` in one look (one lock): when the
    /// stream stands before it with room (`.room`), moves `upstream` to `cursor` and queues
    /// `body` (nil: the event is not for the stream), its token `token` when the stream
    /// follows `upstream` alone (the same text for every such stream, and `wire` the whole
    /// message made once for all of them), else the one `tokens` (the event's encodings)
    /// keeps for the stream's positions.
    func offer(
        _ body: EncodedKind?, token single: String, wire: [UInt8]? = nil, tokens: DeltaEncodings, advancing upstream: Upstream,
        to cursor: OutboxCursor
    ) -> Acceptance {
        var now: Outbound?
        let (acceptance, woken) = state.withLock { state -> (Acceptance, (CheckedContinuation<Taken, Never>, Taken)?) in
            if state.failure != nil { return (.ended, nil) }
            if let position = state.positions[upstream], position >= cursor { return (.had, nil) }
            if state.bytes > limit { return (.full, nil) }
            state.positions[upstream] = cursor
            guard let body else { return (.room, nil) }
            let alone = state.positions.count == 1
            let token = alone ? single : tokens.token(epoch: epoch, positions: state.positions)
            let message = Outbound(body: body, token: token, wire: alone ? wire : nil)
            state.lastPush = .now
            // The writer waits with nothing queued, and this is its loop: it would only
            // write this one message, so it is written here instead of waking the writer.
            if let direct, state.waiter != nil, state.messages.isEmpty, state.detached.isEmpty, direct.loop.inEventLoop {
                state.writingDirectly = true
                now = message
                return (.room, nil)
            }
            state.bytes += body.size(token: token)
            state.messages.append(message)
            if state.bytes > limit, state.fullSince == nil { state.fullSince = state.lastPush }
            return (.room, state.wake())
        }
        if let woken { woken.0.resume(returning: woken.1) }
        if let now, let direct { write(now, direct) }
        return acceptance
    }

    /// Writes `message` to the transport at once; when the transport has too much queued,
    /// queues it first in line for the writer, which waits for room. What others pushed
    /// meanwhile waits behind it: the writer is woken only after (it runs on this same
    /// loop, so it cannot have run in between). A write that fails (the call ended) ends
    /// the stream with its reason.
    private func write(_ message: Outbound, _ direct: DirectWrite) {
        let written: Bool
        var failure: RPCError?
        do {
            written = try direct.writeNow(message.encoded)
        } catch {
            written = false
            failure = (error as? RPCError) ?? RPCError(code: .unavailable, message: "the stream could not be written")
        }
        if written { direct.delivered.set(message.token) }
        let woken = state.withLock { state -> (CheckedContinuation<Taken, Never>, Taken)? in
            state.writingDirectly = false
            if !written, state.failure == nil {
                if let failure {
                    state.failure = failure
                } else {
                    state.bytes += message.body.size(token: message.token)
                    state.messages.insert(message, at: 0)
                    if state.bytes > limit, state.fullSince == nil { state.fullSince = .now }
                }
            }
            return state.wake()
        }
        if let woken { woken.0.resume(returning: woken.1) }
    }

    /// The fan-out stops delivering `upstream` to this stream: the writer restarts its
    /// catch-up (`takeDetached`).
    func detach(_ upstream: Upstream) {
        let woken = state.withLock { state -> (CheckedContinuation<Taken, Never>, Taken)? in
            if !state.detached.contains(upstream) { state.detached.append(upstream) }
            return state.wake()
        }
        if let woken { woken.0.resume(returning: woken.1) }
    }

    /// The upstreams detached since the last call.
    func takeDetached() -> [Upstream] {
        state.withLock { state in
            defer { state.detached = [] }
            return state.detached
        }
    }

    /// The last token text made, reused while the positions stay the same (messages that
    /// are not an event's: heartbeats, snapshots, resyncs).
    private static let lastToken = Mutex<(epoch: String, positions: [Upstream: OutboxCursor], text: String)?>(nil)

    static func tokenText(epoch: String, positions: [Upstream: OutboxCursor]) -> String {
        if let last = lastToken.withLock({ $0 }), last.positions == positions, last.epoch == epoch { return last.text }
        let text = ResumeToken(epoch: epoch, positions: positions).text
        lastToken.withLock { $0 = (epoch, positions, text) }
        return text
    }

    /// The writer handed `message` to the transport: its bytes stop counting as unsent
    /// (taken but not yet written, they still count, so a client that does not read is
    /// found however large the batch the writer took).
    func written(_ message: Outbound) {
        state.withLock { state in
            state.bytes -= message.body.size(token: message.token)
            if state.bytes <= limit { state.fullSince = nil }
        }
    }

    /// How long a client may leave more than `limit` bytes unsent before it is ended as a
    /// slow consumer.
    static let patience = Duration.seconds(3)

    /// Ends the stream as a slow consumer when more than `limit` bytes have been unsent for
    /// `patience` (the streams' clock asks): a client that stops reading after the last
    /// message of a burst (a resync's snapshot) is found though nothing more is pushed.
    func endIfFull(for patience: Duration = OutboundQueue.patience, now: ContinuousClock.Instant) {
        guard let since = state.withLock({ $0.failure == nil ? $0.fullSince : nil }), now - since >= patience else { return }
        fail(slowConsumer)
    }

    private var slowConsumer: RPCError {
        RPCError(code: .resourceExhausted, message: "slow consumer: more than \(limit) bytes of messages were waiting for the client")
    }

    /// Queues `body` unless something was pushed within `quiet` (a heartbeat); true when
    /// it was queued.
    @discardableResult
    func push(_ body: EncodedKind, ifQuietFor quiet: Duration, now: ContinuousClock.Instant) -> Bool {
        guard state.withLock({ now - $0.lastPush >= quiet && $0.failure == nil }) else { return false }
        return push(body)
    }

    /// Waits while more than `limit` bytes are unsent; when the client has not taken them
    /// within `patience`, the stream ends as a slow consumer. A burst (a long replay) thus
    /// waits for a client that reads, and only a client that does not read is ended.
    func waitForRoom(patience: Duration = OutboundQueue.patience) async throws {
        let deadline = ContinuousClock.now + patience
        while true {
            let (bytes, failed) = state.withLock { ($0.bytes, $0.failure != nil) }
            if failed { throw StreamEnded() }
            if bytes <= limit { return }
            if ContinuousClock.now >= deadline {
                fail(slowConsumer)
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
    func next() async throws -> [Outbound] {
        switch await take() {
        case .messages(let messages): return messages
        case .failed(let failure): throw failure
        }
    }

    /// What `take()` hands over: the queued messages, or the stream's failure.
    private enum Taken: Sendable {
        case messages([Outbound])
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
