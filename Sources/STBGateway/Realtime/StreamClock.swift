import ServiceLifecycle
import STBMessages
import STBRPC
import Synchronization

/// The timers of every stream on this gateway, in one task: a heartbeat to a stream that
/// sent nothing for `heartbeat`, and the end of a stream whose access token expired or
/// whose client left its queue over the limit for the queue's patience (a slow consumer).
/// Streams register their queue for their lifetime instead of running timers of their own.
///
/// Each tick looks at a part of the streams, so that every stream is looked at once per
/// `round`: a tick's work (and the time the task holds a thread) is a share of the streams,
/// not all of them, however many there are. A stream's timers are thus late by up to a
/// round, or two when a removal moves it behind the tick's position (each move lowers its
/// place, so it is looked at in the round after): a heartbeat comes after `heartbeat` to
/// `heartbeat + 2 × round` of quiet.
public final class StreamClock: Service, Sendable {
    private struct Stream {
        let id: Int
        let queue: OutboundQueue
        /// When the caller's access token expires (seconds since the epoch).
        let expiresAt: Int64
    }

    private struct State {
        var next = 0
        /// Every stream, in no particular order: a removal moves the last one into its place.
        var streams: ContiguousArray<Stream> = []
        /// Where each stream (by id) stands in `streams`.
        var slots: [Int: Int] = [:]
        /// Where the next tick's part starts.
        var cursor = 0

        /// The next `count` streams from `cursor` on (wrapping), the cursor moved past them.
        mutating func take(_ count: Int) -> [Stream] {
            let total = streams.count
            guard total > 0 else { return [] }
            let count = min(count, total)
            if cursor >= total { cursor = 0 }
            var part: [Stream] = []
            part.reserveCapacity(count)
            let end = cursor + count
            if end <= total {
                part.append(contentsOf: streams[cursor..<end])
            } else {
                part.append(contentsOf: streams[cursor..<total])
                part.append(contentsOf: streams[0..<(end - total)])
            }
            cursor = end % total
            return part
        }
    }

    public let heartbeat: Duration
    /// How often a part of the streams is looked at.
    public let tick: Duration
    /// Ticks per round: each tick looks at this share of the streams.
    let parts: Int
    private let state = Mutex(State())

    /// `round`: how often each stream is looked at (a whole number of ticks, at least one).
    public init(heartbeat: Duration, tick: Duration = .milliseconds(250), round: Duration = .seconds(1)) {
        self.heartbeat = heartbeat
        self.tick = tick
        self.parts = max(1, Int((round / tick).rounded()))
    }

    /// Looks after `queue` until `unregister` with the returned id.
    func register(_ queue: OutboundQueue, expiresAt: Int64) -> Int {
        state.withLock { state in
            state.next += 1
            state.slots[state.next] = state.streams.count
            state.streams.append(Stream(id: state.next, queue: queue, expiresAt: expiresAt))
            return state.next
        }
    }

    func unregister(_ id: Int) {
        state.withLock { state in
            guard let slot = state.slots.removeValue(forKey: id) else { return }
            let last = state.streams.removeLast()
            // The last stream takes the place: when that place was already looked at in this
            // round, the moved stream waits for the next round (at most a round later).
            guard slot < state.streams.count else { return }
            state.streams[slot] = last
            state.slots[last.id] = slot
        }
    }

    /// Streams looked after (for tests).
    var count: Int { state.withLock { $0.streams.count } }

    public func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.tick)
                self.checkPart()
            }
        }
    }

    /// One tick: the next share of the streams (`1 / parts` of them, at least one).
    func checkPart() {
        let parts = self.parts
        check(state.withLock { $0.take(($0.streams.count + parts - 1) / parts) })
    }

    /// One look at every stream (a whole round at once).
    func check() {
        check(state.withLock { $0.take($0.streams.count) })
    }

    /// One look at `streams`: expired ones and slow consumers end, quiet ones get one
    /// shared heartbeat.
    private func check(_ streams: [Stream]) {
        guard !streams.isEmpty else { return }
        let nowSeconds = GatewayService.nowSeconds()
        let now = ContinuousClock.now
        var beat: EncodedKind?
        for stream in streams {
            if stream.expiresAt <= nowSeconds {
                stream.queue.fail(RPCError(code: .unauthenticated, message: "the access token expired; refresh it and resume with the last resume token"))
                continue
            }
            stream.queue.endIfFull(now: now)
            if beat == nil {
                var heartbeat = Stb_Gateway_V1_Heartbeat()
                heartbeat.atMs = nowSeconds * 1000
                beat = EncodedKind(.heartbeat(heartbeat))
            }
            if let beat { stream.queue.push(beat, ifQuietFor: heartbeat, now: now) }
        }
    }
}
