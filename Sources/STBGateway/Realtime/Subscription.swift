import Logging
import STBAuth
import STBMessages
import STBPostgres
import STBRPC
import Synchronization

/// The shared parts every stream reads: the rings and their fan-outs, the upstream feeds
/// (for replays), the snapshot fetcher, the membership directory, the streams' timers and
/// the limits.
public struct RealtimeHub: Sendable {
    public let epoch: String
    public let rings: [Upstream: EventRing]
    public let fanouts: [Upstream: RingFanout]
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
        self.fanouts = rings.reduce(into: [:]) { $0[$1.key] = RingFanout(upstream: $1.key, ring: $1.value) }
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
/// topic and by what the caller may see, into the stream's queue. Once caught up with the
/// ring, a producer hands its upstream to the ring's fan-out (`RingFanout`) and ends; the
/// fan-out hands it back (the queue's `detach`) when it needs more than a synchronous look.
struct Subscription: Sendable {
    let hub: RealtimeHub
    let claims: AccessClaims
    /// The caller's `authorization`, for calls made on its behalf.
    let callerMetadata: Metadata
    let topics: [Topic]
    let queue: OutboundQueue
    let logger: Logger
    /// The stream's place in each fan-out.
    let feeds: [Upstream: LiveFeed]
    /// The projects the caller may see, as last asked (nil: not asked yet).
    let visibleProjects: VisibleProjects

    init(hub: RealtimeHub, claims: AccessClaims, callerMetadata: Metadata, topics: [Topic], queue: OutboundQueue, logger: Logger) {
        self.hub = hub
        self.claims = claims
        self.callerMetadata = callerMetadata
        self.topics = topics
        self.queue = queue
        self.logger = logger
        self.visibleProjects = VisibleProjects()
        self.feeds = [:]
    }

    private init(_ base: Subscription, feeds: [Upstream: LiveFeed]) {
        hub = base.hub
        claims = base.claims
        callerMetadata = base.callerMetadata
        topics = base.topics
        queue = base.queue
        logger = base.logger
        visibleProjects = base.visibleProjects
        self.feeds = feeds
    }

    /// The subscription with its place in the fan-out of each of `upstreams`.
    func joining(_ upstreams: [Upstream]) -> Subscription {
        var feeds: [Upstream: LiveFeed] = [:]
        for upstream in upstreams {
            feeds[upstream] = LiveFeed(
                upstream: upstream, topics: topics.filter { $0.upstream == upstream }, queue: queue, privileged: privileged,
                visibleProjects: visibleProjects)
        }
        return Subscription(self, feeds: feeds)
    }

    /// Leaves every fan-out (the stream ended).
    func leave() {
        for (upstream, feed) in feeds { hub.fanouts[upstream]?.remove(feed) }
    }

    /// Where a producer starts.
    enum Start: Sendable {
        /// Snapshots of its topics at the ring's head.
        case fresh
        /// After a resume token's position.
        case resume(OutboxCursor)
        /// `resync_required` with the reason, then snapshots.
        case resync(String)
        /// From where the queue stands (the fan-out handed the upstream back).
        case continuing
    }

    private struct ReplayTooLong: Error {}
    private struct CaughtUp: Error {}

    var privileged: Bool { claims.role == .admin || claims.role == .service }

    /// Runs `upstream`'s part of the stream until it has caught up with the ring and the
    /// fan-out takes it, or it fails or is cancelled.
    func produce(_ upstream: Upstream, start: Start) async throws {
        let mine = topics.filter { $0.upstream == upstream }
        guard let ring = hub.rings[upstream], let source = hub.sources[upstream] else { return }
        switch start {
        case .resync(let reason): try await resynchronize(upstream, topics: mine, reason: reason, ring: ring)
        case .resume(let cursor): queue.advance(upstream, to: cursor)
        case .fresh: try await sendSnapshots(upstream, topics: mine, ring: ring)
        case .continuing: break
        }
        var retry = Duration.milliseconds(100)
        // One replay's count, kept across its retries: a replay that an upstream error
        // interrupts (or whose feed ends early) goes on from where the queue stands, bound
        // by the same limit. It starts again once the ring serves the stream (the replay is
        // over) or a resync has sent fresh snapshots.
        let replayed = ReplayCount(limit: hub.configuration.replayLimit)
        while !Task.isCancelled {
            guard let position = queue.position(upstream) else { return }
            let seen = ring.signal.generation
            switch ring.read(after: position, limit: 256) {
            case .events(let events):
                replayed.restart()
                if events.isEmpty {
                    // Caught up: the fan-out delivers from here, unless it has handed out
                    // events after the position already (read them first) or has not
                    // started (wait for the ring).
                    if let feed = feeds[upstream], let fanout = hub.fanouts[upstream], fanout.join(feed, at: position) { return }
                    if ring.signal.generation == seen { await ring.signal.wait(after: seen) }
                } else {
                    try await deliver(events, from: upstream, topics: mine)
                }
            case .behind:
                do {
                    try await replay(upstream, from: position, topics: mine, source: source, ring: ring, count: replayed)
                    retry = .milliseconds(100)
                } catch is ReplayTooLong {
                    replayed.restart()
                    try await resynchronize(upstream, topics: mine, reason: "more than \(hub.configuration.replayLimit) events were missed", ring: ring)
                } catch where UpstreamSource.isRefusedCursor(error) {
                    replayed.restart()
                    try await resynchronize(upstream, topics: mine, reason: "the \(upstream.rawValue) feed no longer holds the missed events", ring: ring)
                } catch where !Task.isCancelled && !(error is StreamEnded) {
                    logger.warning("replaying from an upstream failed; retrying", metadata: ["upstream": "\(upstream.rawValue)", "error": "\(error)"])
                    try await Task.sleep(for: retry)
                    retry = min(retry * 2, .seconds(5))
                }
            }
        }
    }

    /// Replays the events after `position` from the upstream's feed, delivering each batch
    /// as it arrives, until the ring covers the stream's position. Each delivered message
    /// carries the token of the events up to it, so a stream cut in the middle of a long
    /// replay resumes after what it got. Past `replayLimit` events (the first ones
    /// delivered; `replayed` counts them, with those of the attempts before an upstream
    /// error) the replay stops with `ReplayTooLong`.
    private func replay(
        _ upstream: Upstream, from position: OutboxCursor, topics: [Topic], source: UpstreamSource, ring: EventRing, count replayed: ReplayCount
    ) async throws {
        do {
            try await source.follow(position.description) { events in
                // Only what is after the stream's position: a batch may start before it.
                let reached = queue.position(upstream) ?? position
                let fresh = events.drop(while: { $0.cursor <= reached })
                let allowed = replayed.take(fresh.count)
                try await deliver(Array(fresh.prefix(allowed)), from: upstream, topics: topics)
                guard allowed == fresh.count else { throw ReplayTooLong() }
                if case .events = ring.read(after: queue.position(upstream) ?? position, limit: 1) { throw CaughtUp() }
            }
        } catch is CaughtUp {}
    }

    /// Queues the events that are for this caller and moves the position past every one.
    func deliver(_ events: [UpstreamEvent], from upstream: Upstream, topics: [Topic]) async throws {
        for event in events {
            var matched = false
            for topic in topics where try await shows(event, on: topic) {
                matched = true
                // Made and encoded by the first stream that sends it, shared by the rest.
                let message = event.encodings.delta(topic) { Self.delta(of: event, on: topic, from: upstream) }
                try await queue.waitForRoom()
                guard queue.push(message, advancing: upstream, to: event.cursor, tokens: event.encodings) else { throw StreamEnded() }
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
        if !refresh, let known = visibleProjects.value { return known.contains(project) }
        let projects = try await hub.memberships.projects(of: claims.subject, fresh: refresh)
        visibleProjects.value = projects
        return projects.contains(project)
    }

    /// The caller's projects as asked at the start of the stream (they are checked then).
    func knowVisible(_ projects: Set<String>) { visibleProjects.value = projects }

    /// The delta of `event` on `topic`.
    static func delta(of event: UpstreamEvent, on topic: Topic, from upstream: Upstream) -> Stb_Gateway_V1_Delta {
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

    /// Sends `resync_required` and fresh snapshots of `topics`.
    private func resynchronize(_ upstream: Upstream, topics: [Topic], reason: String, ring: EventRing) async throws {
        // The skipped events may have changed memberships: ask again before the next event.
        visibleProjects.value = nil
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

/// The projects a stream's caller may see, as last asked: used for `lifetime` (as long as the
/// membership directory keeps an answer), then asked again, so a removal whose `member`
/// event the stream never saw (it was inside a resync) still takes effect.
final class VisibleProjects: Sendable {
    private let lifetime: Duration
    private let projects = Mutex<(set: Set<String>, at: ContinuousClock.Instant)?>(nil)

    init(lifetime: Duration = .seconds(60)) { self.lifetime = lifetime }

    /// The projects; nil when not asked yet or asked more than `lifetime` ago.
    var value: Set<String>? {
        get {
            projects.withLock { stored in
                guard let stored, ContinuousClock.now - stored.at < lifetime else { return nil }
                return stored.set
            }
        }
        set { projects.withLock { $0 = newValue.map { (set: $0, at: ContinuousClock.now) } } }
    }
}

/// How many events a replay has delivered (over its attempts), against its limit.
private final class ReplayCount: @unchecked Sendable {
    // @unchecked: used by one producer at a time, inside the feed's sequential callbacks.
    private var count = 0
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    /// How many of `wanted` more events fit under the limit (counted as taken).
    func take(_ wanted: Int) -> Int {
        let allowed = min(wanted, max(0, limit - count))
        count += allowed
        return allowed
    }

    /// A new replay: nothing counted.
    func restart() { count = 0 }
}
