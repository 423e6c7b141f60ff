import STBEventLoop
import ServiceLifecycle
import Synchronization

/// "Something may have changed": a counter that readers wait on and wakers bump.
public final class ChangeSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var waiters: [Int: CheckedContinuation<UInt64, Never>] = [:]
        var nextWaiter = 0
    }
    private let state = Mutex(State())

    public init() {}

    public var generation: UInt64 { state.withLock { $0.generation } }

    /// Wakes every waiter.
    public func bump() {
        let (generation, waiters) = state.withLock { state in
            state.generation += 1
            defer { state.waiters.removeAll() }
            return (state.generation, Array(state.waiters.values))
        }
        for waiter in waiters { waiter.resume(returning: generation) }
    }

    /// Returns once the generation is past `seen` (at once if it already is), or when
    /// the task is cancelled; returns the current generation.
    @discardableResult
    public func wait(after seen: UInt64) async -> UInt64 {
        let id = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let current: UInt64? = state.withLock { state in
                    if state.generation > seen || Task.isCancelled { return state.generation }
                    state.waiters[id] = continuation
                    return nil
                }
                if let current { continuation.resume(returning: current) }
            }
        } onCancel: {
            let (waiter, generation) = state.withLock { state in (state.waiters.removeValue(forKey: id), state.generation) }
            waiter?.resume(returning: generation)
        }
    }
}

/// LISTENs on a dedicated connection (never a pooled one) and bumps `signal` on every
/// notification; reconnects and re-subscribes after the connection drops, bumping
/// `signal` once subscribed again so readers catch up on what they missed. A periodic
/// bump is the safety net for a wake-up lost anyway.
///
/// A `Service`: a service group runs it (`run()`) until shutdown; `start()` and `stop()`
/// run it on its own, for tests and tools.
public final class PostgresListener: Service, Sendable {
    public let signal = ChangeSignal()
    private let conninfo: String
    private let channels: [String]
    private let loop: EventLoop
    private let pollInterval: Duration
    private let standalone = Mutex<Task<Void, Never>?>(nil)
    private let counters = Mutex((subscriptions: 0, notifications: 0))

    /// `channels` are fixed lowercase identifiers chosen by the service.
    public init(conninfo: String, channels: [String], loop: EventLoop, pollInterval: Duration = .seconds(1)) {
        precondition(channels.allSatisfy(isPlainIdentifier), "channel names must be lowercase identifiers")
        self.conninfo = conninfo
        self.channels = channels
        self.loop = loop
        self.pollInterval = pollInterval
    }

    /// How many times the listener has (re)subscribed, and notifications received.
    public var statistics: (subscriptions: Int, notifications: Int) { counters.withLock { $0 } }

    /// Listens and polls until cancelled or the service group shuts down.
    public func run() async {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask(executorPreference: self.loop) { await self.listenForever() }
                group.addTask(executorPreference: self.loop) { [signal = self.signal, pollInterval = self.pollInterval] in
                    while !Task.isCancelled {
                        try? await Task.sleep(for: pollInterval)
                        signal.bump()
                    }
                }
            }
        }
    }

    /// Runs the listener outside a service group, until `stop()`.
    public func start() {
        let task = Task { await self.run() }
        standalone.withLock { $0 = task }
    }

    /// Stops a listener started with `start()`.
    public func stop() async {
        guard let task = standalone.withLock({ $0.take() }) else { return }
        task.cancel()
        await task.value
    }

    private func listenForever() async {
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled {
            let closed = OneShot()
            do {
                let connection = try await PostgresConnection.connect(
                    to: conninfo, on: loop, timeoutSeconds: 10, onClose: { closed.fire() }
                )
                connection.setNotificationHandler { [self] _ in
                    counters.withLock { $0.notifications += 1 }
                    signal.bump()
                }
                for channel in channels {
                    try await connection.execute(script: "LISTEN \(channel)")
                }
                counters.withLock { $0.subscriptions += 1 }
                signal.bump()
                delay = .milliseconds(100)
                await withTaskCancellationHandler {
                    await closed.wait()
                } onCancel: {
                    Task { await connection.close() }
                }
            } catch {
                // Server down or restarting: try again shortly.
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
        }
    }
}

extension PostgresConnection {
    /// Sets what runs (on the loop) for each notification received.
    func setNotificationHandler(_ handler: @escaping @Sendable (String) -> Void) {
        loop.runOnLoop { self.onNotification = handler }
    }
}

/// An event that happens once; waiters resume when it does.
final class OneShot: Sendable {
    private let state = Mutex<(fired: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func fire() {
        let waiters = state.withLock { state in
            state.fired = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let fired = state.withLock { state in
                if !state.fired { state.waiters.append(continuation) }
                return state.fired
            }
            if fired { continuation.resume() }
        }
    }
}

/// Tails an outbox: replays committed events after a cursor, then follows new ones as
/// they commit, in cursor order, each once. Woken by a `ChangeSignal` (from a
/// `PostgresListener`); rides out database restarts by retrying.
public struct OutboxFeed: Sendable {
    public let outbox: Outbox
    public let pool: PostgresPool
    public let signal: ChangeSignal
    public let batchSize: Int

    public init(outbox: Outbox, pool: PostgresPool, signal: ChangeSignal, batchSize: Int = 500) {
        self.outbox = outbox
        self.pool = pool
        self.signal = signal
        self.batchSize = batchSize
    }

    /// Batches of events after `cursor`; the stream pulls (a slow consumer is never
    /// buffered for) and ends when the consuming task is cancelled.
    ///
    /// A read shorter than `batchSize` saw everything committed before it began, so the
    /// next one waits for the signal to move on first instead of querying again for
    /// nothing: one read per wake-up, not two.
    public func batches(after cursor: OutboxCursor) -> AsyncThrowingStream<[OutboxEvent], any Error> {
        // Where the feed stands, and the signal's generation before its last read that
        // came back short (nil: more may be waiting, read at once).
        let state = Mutex<(position: OutboxCursor, caughtUpAt: UInt64?)>((cursor, nil))
        return AsyncThrowingStream(unfolding: { [outbox, pool, signal, batchSize] in
            while !Task.isCancelled {
                if let caughtUpAt = state.withLock({ $0.caughtUpAt }) {
                    await signal.wait(after: caughtUpAt)
                    state.withLock { $0.caughtUpAt = nil }
                    continue
                }
                let seen = signal.generation
                do {
                    let after = state.withLock { $0.position }
                    let batch = try await outbox.read(after: after, limit: batchSize, pool: pool)
                    state.withLock { state in
                        if let last = batch.last { state.position = last.cursor }
                        if batch.count < batchSize { state.caughtUpAt = seen }
                    }
                    if !batch.isEmpty { return batch }
                } catch let error as PostgresError where error.isRetryable {
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            return nil
        })
    }
}
