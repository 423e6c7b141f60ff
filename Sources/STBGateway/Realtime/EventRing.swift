import STBPostgres
import Synchronization

/// One committed change of an upstream, as the gateway keeps and forwards it.
public struct UpstreamEvent: Sendable, Equatable {
    public var cursor: OutboxCursor
    public var entity: String
    public var key: String
    public var action: String
    /// The project the event belongs to (project feed), else empty.
    public var projectKey: String
    /// The upstream's own event message, serialized.
    public var payload: [UInt8]
    /// Its deltas as the streams send them, encoded once (every copy of the event shares them).
    let encodings = DeltaEncodings()

    public init(cursor: OutboxCursor, entity: String, key: String, action: String, projectKey: String = "", payload: [UInt8]) {
        self.cursor = cursor
        self.entity = entity
        self.key = key
        self.action = action
        self.projectKey = projectKey
        self.payload = payload
    }

    public static func == (a: UpstreamEvent, b: UpstreamEvent) -> Bool {
        a.cursor == b.cursor && a.entity == b.entity && a.key == b.key && a.action == b.action && a.projectKey == b.projectKey
            && a.payload == b.payload
    }

    /// What the ring charges for the event itself; its encodings, made later, are charged
    /// as they are made (`RingCharge`).
    var cost: Int { payload.count + entity.utf8.count + key.utf8.count + projectKey.utf8.count + 64 }
}

/// The bytes a ring's events keep in the encodings made of them while the ring holds them
/// (a delta per topic, whole messages, tokens: together larger than the payload), which
/// the ring's byte budget counts beside the events' own cost.
final class RingCharge: Sendable {
    private let bytes = Atomic<Int>(0)

    var value: Int { bytes.load(ordering: .relaxed) }
    func add(_ count: Int) { bytes.add(count, ordering: .relaxed) }
}

/// The recent events of one upstream, in order, bounded by count and bytes: the bytes of
/// the events and of the encodings made of them (made after an event came in, they count
/// from then on, and the next append drops older events to make room).
///
/// The ring covers the positions from `base` on: it holds every event after `base` that
/// the follower has seen, without a gap, so a reader at a cursor at or after `base` reads
/// what it missed here; a reader behind `base` must replay from the upstream. `base` is
/// nil until the follower knows where it started (a restart from the upstream's head).
public final class EventRing: Sendable {
    /// What a reader gets.
    public enum Read: Sendable, Equatable {
        /// Events after the reader's cursor (empty: nothing newer yet).
        case events([UpstreamEvent])
        /// The ring no longer (or not yet) holds the events after the reader's cursor.
        case behind
    }

    private struct State {
        var events: [UpstreamEvent] = []
        var first = 0
        var bytes = 0
        var base: OutboxCursor?
    }

    public let maximumCount: Int
    public let maximumBytes: Int
    private let state = Mutex(State())
    /// The encodings of the held events.
    private let encodings = RingCharge()
    /// Bumped with every append (and reset).
    public let signal = ChangeSignal()

    public init(maximumCount: Int, maximumBytes: Int) {
        self.maximumCount = max(1, maximumCount)
        self.maximumBytes = max(1, maximumBytes)
    }

    /// Starts the ring over at `base` (everything before it is the upstream's business).
    public func reset(base: OutboxCursor?) {
        state.withLock { state in
            for event in state.events[state.first...] { event.encodings.detach() }
            state = State(base: base)
        }
        signal.bump()
    }

    /// The newest position the ring knows (its last event, else its base).
    public var head: OutboxCursor? {
        state.withLock { $0.events.count > $0.first ? $0.events[$0.events.count - 1].cursor : $0.base }
    }

    /// Adds events the follower received, in order; older ones leave when the bounds are
    /// passed (the base moves to the newest that left). An event not after the head is
    /// ignored (a follower that replays what it has already seen).
    public func append(_ incoming: [UpstreamEvent]) {
        guard !incoming.isEmpty else { return }
        state.withLock { state in
            for event in incoming {
                let head = state.events.count > state.first ? state.events[state.events.count - 1].cursor : state.base
                if let head, event.cursor <= head { continue }
                if head == nil { state.base = event.cursor; continue }  // the first event after an unknown base
                state.events.append(event)
                state.bytes += event.cost
                event.encodings.attach(encodings)
            }
            while state.events.count - state.first > maximumCount
                || (state.bytes + encodings.value > maximumBytes && state.events.count - state.first > 1)
            {
                let dropped = state.events[state.first]
                state.first += 1
                state.bytes -= dropped.cost
                dropped.encodings.detach()
                state.base = dropped.cursor
            }
            if state.first > 1024 && state.first * 2 > state.events.count {
                state.events.removeFirst(state.first)
                state.first = 0
            }
        }
        signal.bump()
    }

    /// Events after `cursor`, at most `limit`.
    public func read(after cursor: OutboxCursor, limit: Int) -> Read {
        state.withLock { state in
            guard let base = state.base, cursor >= base else { return .behind }
            // Binary search for the first event after the cursor.
            var low = state.first
            var high = state.events.count
            while low < high {
                let middle = (low + high) / 2
                if state.events[middle].cursor <= cursor { low = middle + 1 } else { high = middle }
            }
            let end = min(state.events.count, low + max(1, limit))
            return .events(Array(state.events[low..<end]))
        }
    }

    /// Events held (for metrics and tests).
    public var count: Int { state.withLock { $0.events.count - $0.first } }

    /// The bytes the held events keep, with their encodings (for metrics and tests).
    public var bytes: Int { state.withLock { $0.bytes } + encodings.value }
}
