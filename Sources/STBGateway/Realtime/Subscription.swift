import Logging
import STBAuth
import STBMessages
import STBPostgres
import STBRPC

/// The shared parts every stream reads: the rings, the upstream feeds (for replays), the
/// snapshot fetcher, the membership directory, the streams' timers and the limits.
public struct RealtimeHub: Sendable {
    public let epoch: String
    public let rings: [Upstream: EventRing]
    public let sources: [Upstream: UpstreamSource]
    public let snapshots: Snapshots
    public let memberships: MembershipDirectory
    public let clock: StreamClock
    public let configuration: RealtimeConfiguration

    public init(
        epoch: String, rings: [Upstream: EventRing], sources: [Upstream: UpstreamSource], snapshots: Snapshots,
        memberships: MembershipDirectory, clock: StreamClock, configuration: RealtimeConfiguration
    ) {
        self.epoch = epoch
        self.rings = rings
        self.sources = sources
        self.snapshots = snapshots
        self.memberships = memberships
        self.clock = clock
        self.configuration = configuration
    }
}

/// One `Subscribe` stream's producers: per upstream, snapshots (fresh, or after a
/// resync), then the events after the stream's position, from the ring, else replayed from
/// the upstream's feed (at most `replayLimit` of them, else `resync_required`), filtered by
/// topic and by what the caller may see, into the stream's queue.
struct Subscription: Sendable {
    let hub: RealtimeHub
    let claims: AccessClaims
    /// The caller's `authorization`, for calls made on its behalf.
    let callerMetadata: Metadata
    let topics: [Topic]
    let queue: OutboundQueue
    let logger: Logger

    private struct ReplayTooLong: Error {}
    private struct CaughtUp: Error {}

    var privileged: Bool { claims.role == .admin || claims.role == .service }

    /// Runs `upstream`'s part of the stream until it fails or is cancelled. `resync` says
    /// why the stream starts with `resync_required` (nil: it starts from `start`, or
    /// fresh with snapshots when `start` is nil).
    func produce(_ upstream: Upstream, start: OutboxCursor?, resync: String?) async throws {
        let mine = topics.filter { $0.upstream == upstream }
        guard let ring = hub.rings[upstream], let source = hub.sources[upstream] else { return }
        if let resync {
            try await resynchronize(upstream, topics: mine, reason: resync, ring: ring)
        } else if let start {
            queue.advance(upstream, to: start)
        } else {
            try await sendSnapshots(upstream, topics: mine, ring: ring)
        }
        var retry = Duration.milliseconds(100)
        while !Task.isCancelled {
            guard let position = queue.position(upstream) else { return }
            let seen = ring.signal.generation
            switch ring.read(after: position, limit: 256) {
            case .events(let events):
                if events.isEmpty {
                    await ring.signal.wait(after: seen)
                } else {
                    try await deliver(events, from: upstream, topics: mine)
                }
            case .behind:
                do {
                    try await replay(upstream, from: position, topics: mine, source: source, ring: ring)
                    retry = .milliseconds(100)
                } catch is ReplayTooLong {
                    try await resynchronize(upstream, topics: mine, reason: "more than \(hub.configuration.replayLimit) events were missed", ring: ring)
                } catch where UpstreamSource.isRefusedCursor(error) {
                    try await resynchronize(upstream, topics: mine, reason: "the \(upstream.rawValue) feed no longer holds the missed events", ring: ring)
                } catch where !Task.isCancelled && !(error is StreamEnded) {
                    logger.warning("replaying from an upstream failed; retrying", metadata: ["upstream": "\(upstream.rawValue)", "error": "\(error)"])
                    try await Task.sleep(for: retry)
                    retry = min(retry * 2, .seconds(5))
                }
            }
        }
    }

    /// Replays the events after `position` from the upstream's feed until the ring covers
    /// the stream's position. The events are held until then, so a replay that turns out
    /// too long delivers nothing and becomes a resync.
    private func replay(_ upstream: Upstream, from position: OutboxCursor, topics: [Topic], source: UpstreamSource, ring: EventRing) async throws {
        let limit = hub.configuration.replayLimit
        let held = HeldEvents()
        do {
            try await source.follow(position.description) { events in
                for event in events where event.cursor > held.last(or: position) {
                    guard held.count < limit else { throw ReplayTooLong() }
                    held.append(event)
                }
                if case .events = ring.read(after: held.last(or: position), limit: 1) { throw CaughtUp() }
            }
        } catch is CaughtUp {}
        try await deliver(held.events, from: upstream, topics: topics)
    }

    /// Queues the events that are for this caller and moves the position past every one.
    func deliver(_ events: [UpstreamEvent], from upstream: Upstream, topics: [Topic]) async throws {
        for event in events {
            var matched = false
            for topic in topics where try await shows(event, on: topic) {
                matched = true
                // Made and encoded by the first stream that sends it, shared by the rest.
                let message = event.encodings.delta(topic) {
                    var delta = Stb_Gateway_V1_Delta()
                    delta.topic = topic.description
                    delta.upstream = upstream.rawValue
                    delta.cursor = event.cursor.description
                    delta.entity = event.entity
                    delta.key = event.key
                    delta.action = event.action
                    delta.event = event.payload
                    return delta
                }
                try await queue.waitForRoom()
                guard queue.push(message, advancing: upstream, to: event.cursor) else { throw StreamEnded() }
            }
            if !matched { queue.advance(upstream, to: event.cursor) }
        }
    }

    /// Whether `event` goes to `topic` for this caller. Membership is asked again at every
    /// `member` event, so a removed member stops receiving the project from there on.
    private func shows(_ event: UpstreamEvent, on topic: Topic) async throws -> Bool {
        switch topic {
        case .catalog, .rules, .alarms:
            return true
        case .project(let key):
            guard event.projectKey == key else { return false }
            return try await visible(key, refresh: event.entity == "member")
        case .projects:
            guard event.entity == "project" || event.entity == "member" else { return false }
            return try await visible(event.projectKey, refresh: event.entity == "member")
        }
    }

    func visible(_ project: String, refresh: Bool) async throws -> Bool {
        if privileged { return true }
        return try await hub.memberships.projects(of: claims.subject, fresh: refresh).contains(project)
    }

    /// Sends `resync_required` and fresh snapshots of `topics`.
    private func resynchronize(_ upstream: Upstream, topics: [Topic], reason: String, ring: EventRing) async throws {
        var resync = Stb_Gateway_V1_ResyncRequired()
        resync.reason = reason
        resync.topics = topics.map(\.description)
        var message = Stb_Gateway_V1_SubscribeEvent()
        message.kind = .resyncRequired(resync)
        guard queue.push(message) else { throw StreamEnded() }
        try await sendSnapshots(upstream, topics: topics, ring: ring)
    }

    /// Snapshots of `topics` at the ring's head: the position is taken first, so a change
    /// committed while the snapshot is read comes again as a delta (each delta carries the
    /// entity's whole state), never missed.
    private func sendSnapshots(_ upstream: Upstream, topics: [Topic], ring: EventRing) async throws {
        var head = ring.head
        let deadline = ContinuousClock.now + .seconds(10)
        while head == nil {
            guard ContinuousClock.now < deadline else {
                throw RPCError(code: .unavailable, message: "the \(upstream.rawValue) feed is not available yet; retry")
            }
            try await Task.sleep(for: .milliseconds(50))
            head = ring.head
        }
        guard let head else { return }
        for (index, topic) in topics.enumerated() {
            var snapshot = Stb_Gateway_V1_Snapshot()
            snapshot.topic = topic.description
            do {
                snapshot.payload = try await hub.snapshots.payload(of: topic, caller: callerMetadata)
            } catch let error as RPCError where error.code == .notFound || error.code == .permissionDenied {
                throw RPCError(code: .permissionDenied, message: "\(topic): no such project, or it is not visible to you")
            } catch let error as RPCError {
                logger.warning("a snapshot failed", metadata: ["topic": "\(topic)", "error": "\(error.code): \(error.message)"])
                throw RPCError(code: .unavailable, message: "\(topic): the snapshot could not be read (\(error.code)); retry")
            }
            var message = Stb_Gateway_V1_SubscribeEvent()
            message.kind = .snapshot(snapshot)
            // Only the last snapshot moves the position: a token taken before it has no
            // position for this feed, and resuming with it resyncs the feed's topics.
            let last = index == topics.count - 1
            guard last ? queue.push(message, advancing: upstream, to: head) : queue.push(message) else { throw StreamEnded() }
        }
        if topics.isEmpty { queue.advance(upstream, to: head) }
    }
}

/// The stream has ended (its queue failed); producers stop.
struct StreamEnded: Error {}

/// Events a replay holds until it is complete.
private final class HeldEvents: @unchecked Sendable {
    // @unchecked: used by one replay at a time, inside the feed's sequential callbacks.
    var events: [UpstreamEvent] = []
    var count: Int { events.count }
    func append(_ event: UpstreamEvent) { events.append(event) }
    func last(or fallback: OutboxCursor) -> OutboxCursor { events.last?.cursor ?? fallback }
}
