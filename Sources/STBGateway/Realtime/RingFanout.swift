import ServiceLifecycle
import STBPostgres
import Synchronization

/// One upstream's live delivery: one task takes each new event of the ring once and hands
/// its shared, encoded delta to every stream that has caught up with the ring, instead of
/// a task per stream waiting on the ring.
///
/// A stream catches up on its own (snapshots, replays, the ring) and then joins
/// (`join`) at its position; the fan-out leaves a stream (`LiveFeed.leave`) whose next
/// event needs more than a synchronous look (a membership to ask again, a queue over its
/// limit, a ring that no longer covers the fan-out's position). The stream's own
/// catch-up then takes over from where its queue stands, with the waits it may need.
///
/// The fan-out's position is where it has handed out up to: a stream joins only at or
/// after it (it read the rest from the ring itself), so nothing falls between the two,
/// and the fan-out skips what a stream already has.
public final class RingFanout: Service, Sendable {
    private struct State {
        /// Handed out up to here (nil: not started, or the ring lost its base).
        var position: OutboxCursor?
        var members: ContiguousArray<any FanoutMember> = []
        var index: [ObjectIdentifier: Int] = [:]

        mutating func remove(_ feed: any FanoutMember) -> Bool {
            guard let at = index.removeValue(forKey: ObjectIdentifier(feed)) else { return false }
            let last = members.removeLast()
            if at < members.count {
                members[at] = last
                index[ObjectIdentifier(last)] = at
            }
            return true
        }
    }

    public let upstream: Upstream
    public let ring: EventRing
    private let state = Mutex(State())
    /// How many events one pass takes from the ring.
    static let batch = 256

    public init(upstream: Upstream, ring: EventRing) {
        self.upstream = upstream
        self.ring = ring
    }

    /// Adds `feed`, which stands at `position` having read the ring up to there; false
    /// when the fan-out has handed out events after `position` already (read them first)
    /// or has no position yet.
    func join(_ feed: any FanoutMember, at position: OutboxCursor) -> Bool {
        state.withLock { state in
            guard let handed = state.position, handed <= position else { return false }
            guard state.index[ObjectIdentifier(feed)] == nil else { return true }
            state.index[ObjectIdentifier(feed)] = state.members.count
            state.members.append(feed)
            return true
        }
    }

    /// Removes `feed` (its stream ended); nothing is handed to it afterwards except what a
    /// pass already under way hands out, which its ended queue refuses.
    func remove(_ feed: any FanoutMember) {
        _ = state.withLock { $0.remove(feed) }
    }

    /// Streams delivered by the fan-out (for tests and metrics).
    var memberCount: Int { state.withLock { $0.members.count } }

    public func run() async {
        await cancelWhenGracefulShutdown { await self.deliverForever() }
    }

    private func deliverForever() async {
        while !Task.isCancelled {
            let seen = ring.signal.generation
            if !pass() { await ring.signal.wait(after: seen) }
        }
    }

    /// Hands out what the ring holds after the fan-out's position (one batch); false when
    /// there was nothing new.
    @discardableResult
    func pass() -> Bool {
        guard let position = state.withLock({ $0.position }) else {
            // Starts at the ring's head: streams catch up to it on their own.
            guard let head = ring.head else { return false }
            state.withLock { if $0.position == nil { $0.position = head } }
            return true
        }
        switch ring.read(after: position, limit: Self.batch) {
        case .events(let events):
            guard let last = events.last else { return false }
            // The members are taken with the position moved in one step: a stream that
            // joins later stands at or after `last`.
            let members = state.withLock { state -> ContiguousArray<any FanoutMember> in
                state.position = last.cursor
                return state.members
            }
            var leaving: [any FanoutMember] = []
            for member in members {
                for event in events where !member.offer(event) {
                    leaving.append(member)
                    break
                }
            }
            if !leaving.isEmpty { release(leaving) }
            return true
        case .behind:
            // The ring started over (its follower restarted from the upstream's head) or
            // dropped what the fan-out had not handed out: every stream replays on its own.
            let members = state.withLock { state -> ContiguousArray<any FanoutMember> in
                state.position = ring.head
                defer { state.members = []; state.index = [:] }
                return state.members
            }
            for member in members { member.leave() }
            return true
        }
    }

    private func release(_ feeds: [any FanoutMember]) {
        let removed = state.withLock { state in feeds.filter { state.remove($0) } }
        for feed in removed { feed.leave() }
    }
}

/// What a fan-out delivers to: one stream's part on one upstream.
protocol FanoutMember: AnyObject, Sendable {
    /// Takes `event` (queued, or passed as not for the stream) without waiting; false
    /// when the stream must take it on its own from here (the fan-out leaves it).
    func offer(_ event: UpstreamEvent) -> Bool
    /// The fan-out no longer delivers to it.
    func leave()
}

/// A stream's part on one upstream while the fan-out delivers it: what the fan-out asks
/// of the stream for each event, synchronously.
final class LiveFeed: FanoutMember {
    let upstream: Upstream
    /// The stream's topics on `upstream`.
    let topics: [Topic]
    let queue: OutboundQueue
    /// An admin or a service account: every project is visible.
    let privileged: Bool
    let visibleProjects: VisibleProjects

    init(upstream: Upstream, topics: [Topic], queue: OutboundQueue, privileged: Bool, visibleProjects: VisibleProjects) {
        self.upstream = upstream
        self.topics = topics
        self.queue = queue
        self.privileged = privileged
        self.visibleProjects = visibleProjects
    }

    /// The fan-out no longer delivers the stream: its catch-up takes over.
    func leave() {
        queue.detach(upstream)
    }

    /// The fan-out's look at `event`: queues its delta on each of `topics` it goes to (or
    /// passes it), synchronously; false when the stream's own producer must take it from
    /// here: the queue is over its limit, or the event needs a membership asked again.
    func offer(_ event: UpstreamEvent) -> Bool {
        switch queue.accepts(upstream, event.cursor) {
        case .had: return true
        case .full, .ended: return false
        case .room: break
        }
        // Every topic is decided before anything is queued: a message moves the position
        // past the event, so the producer taking over could not send it on another topic.
        var shown = 0
        for topic in topics {
            guard let shows = quickShows(event, on: topic) else { return false }
            if shows { shown += 1 }
        }
        guard shown > 0 else {
            queue.advance(upstream, to: event.cursor)
            return true
        }
        for topic in topics where quickShows(event, on: topic) == true {
            let message = event.encodings.delta(topic) { Subscription.delta(of: event, on: topic, from: upstream) }
            guard queue.push(message, advancing: upstream, to: event.cursor) else { return false }
        }
        return true
    }

    /// `shows` without waiting: nil when the answer needs the project service.
    private func quickShows(_ event: UpstreamEvent, on topic: Topic) -> Bool? {
        let project: String
        switch topic {
        case .catalog, .rules, .alarms:
            return true
        case .project(let key):
            guard event.projectKey == key else { return false }
            project = key
        case .projects:
            guard event.entity == "project" || event.entity == "member" else { return false }
            project = event.projectKey
        }
        if privileged { return true }
        guard event.entity != "member", let known = visibleProjects.value else { return nil }
        return known.contains(project)
    }
}
