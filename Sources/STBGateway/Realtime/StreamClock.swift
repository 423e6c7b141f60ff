import ServiceLifecycle
import STBMessages
import STBRPC
import Synchronization

/// The timers of every stream on this gateway, in one task: a heartbeat to a stream that
/// sent nothing for `heartbeat`, and the end of a stream whose access token expired or
/// whose client left its queue over the limit for the queue's patience (a slow consumer).
/// Streams register their queue for their lifetime instead of running timers of their own.
public final class StreamClock: Service, Sendable {
    private struct Stream {
        let queue: OutboundQueue
        /// When the caller's access token expires (seconds since the epoch).
        let expiresAt: Int64
    }

    public let heartbeat: Duration
    /// How often the streams are looked at.
    public let tick: Duration
    private let streams = Mutex<(next: Int, table: [Int: Stream])>((0, [:]))

    public init(heartbeat: Duration, tick: Duration = .milliseconds(250)) {
        self.heartbeat = heartbeat
        self.tick = tick
    }

    /// Looks after `queue` until `unregister` with the returned id.
    func register(_ queue: OutboundQueue, expiresAt: Int64) -> Int {
        streams.withLock { state in
            state.next += 1
            state.table[state.next] = Stream(queue: queue, expiresAt: expiresAt)
            return state.next
        }
    }

    func unregister(_ id: Int) {
        streams.withLock { _ = $0.table.removeValue(forKey: id) }
    }

    /// Streams looked after (for tests).
    var count: Int { streams.withLock { $0.table.count } }

    public func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.tick)
                self.check()
            }
        }
    }

    /// One look at every stream: expired ones and slow consumers end, quiet ones get one
    /// shared heartbeat.
    func check() {
        let nowSeconds = GatewayService.nowSeconds()
        let now = ContinuousClock.now
        let current = streams.withLock { Array($0.table.values) }
        var beat: EncodedKind?
        for stream in current {
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
