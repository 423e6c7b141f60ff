import ServiceLifecycle
import STBPostgres
import STBRPC
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
        /// Counts the changes of `members`: the plan made for one version serves every
        /// pass until the next change.
        var version = 0
        var plan: (version: Int, plan: LoopPlan)?

        /// `members` changed: the plan goes (it would keep the streams that left).
        mutating func changed() {
            version += 1
            plan = nil
        }

        mutating func remove(_ feed: any FanoutMember) -> Bool {
            guard let at = index.removeValue(forKey: ObjectIdentifier(feed)) else { return false }
            changed()
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
            state.changed()
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
            if !(await pass(onLoops: true)) { await ring.signal.wait(after: seen) }
        }
    }

    /// Hands out what the ring holds after the fan-out's position (one batch), here;
    /// false when there was nothing new.
    @discardableResult
    func pass() -> Bool {
        switch take() {
        case .nothing: return false
        case .done: return true
        case .deliver(let events, let members, _):
            let leaving = Self.offer(events, to: members)
            if !leaving.isEmpty { release(leaving) }
            return true
        }
    }

    /// `pass()`, each member offered the events on its stream's event loop (`onLoops`),
    /// where a stream waiting with nothing queued is written to at once instead of being
    /// woken; the pass ends when every loop has done its part. On a loop, the members
    /// that share a connection are offered one after the other and the connection is
    /// flushed then: one write carries all of its streams' messages, and its client reads
    /// them while the loop goes on with the next connection.
    func pass(onLoops: Bool) async -> Bool {
        switch take() {
        case .nothing: return false
        case .done: return true
        case .deliver(let events, let members, let version):
            guard onLoops else {
                let leaving = Self.offer(events, to: members)
                if !leaving.isEmpty { release(leaving) }
                return true
            }
            let plan = self.plan(members, version: version)
            var leaving = Self.offer(events, to: plan.here)
            if !plan.loops.isEmpty { leaving += await Self.offer(events, on: plan.loops) { self.release($0) } }
            if !leaving.isEmpty { release(leaving) }
            return true
        }
    }

    /// The plan of `members` (the members at `version`), made again only after a change.
    private func plan(_ members: ContiguousArray<any FanoutMember>, version: Int) -> LoopPlan {
        if let known = state.withLock({ $0.plan }), known.version == version { return known.plan }
        let plan = LoopPlan(members)
        state.withLock { state in
            if state.version == version { state.plan = (version, plan) }
        }
        return plan
    }

    private enum Taken {
        /// Nothing new.
        case nothing
        /// The position moved without events to hand out.
        case done
        /// Events for the members (at the version given), the position already past them.
        case deliver([UpstreamEvent], ContiguousArray<any FanoutMember>, Int)
    }

    /// The next batch and the members to hand it to, the position moved past it.
    private func take() -> Taken {
        guard let position = state.withLock({ $0.position }) else {
            // Starts at the ring's head: streams catch up to it on their own.
            guard let head = ring.head else { return .nothing }
            state.withLock { if $0.position == nil { $0.position = head } }
            return .done
        }
        switch ring.read(after: position, limit: Self.batch) {
        case .events(let events):
            guard let last = events.last else { return .nothing }
            // The members are taken with the position moved in one step: a stream that
            // joins later stands at or after `last`.
            let (members, version) = state.withLock { state -> (ContiguousArray<any FanoutMember>, Int) in
                state.position = last.cursor
                return (state.members, state.version)
            }
            return .deliver(events, members, version)
        case .behind:
            // The ring started over (its follower restarted from the upstream's head) or
            // dropped what the fan-out had not handed out: every stream replays on its own.
            let members = state.withLock { state -> ContiguousArray<any FanoutMember> in
                state.position = ring.head
                state.changed()
                defer { state.members = []; state.index = [:] }
                return state.members
            }
            for member in members { member.leave() }
            return .done
        }
    }

    /// Offers `events` to each of `members` in turn; the members that must leave.
    private static func offer(_ events: [UpstreamEvent], to members: some Collection<any FanoutMember>) -> [any FanoutMember] {
        var leaving: [any FanoutMember] = []
        for member in members {
            for event in events where !member.offer(event) {
                leaving.append(member)
                break
            }
        }
        return leaving
    }

    /// `offer` for each loop's members on the loop, all loops at once, each connection
    /// flushed once its members are done; waits for every loop (or for the fan-out's
    /// cancellation, at shutdown, when a loop may have stopped). Members that must leave
    /// after the wait ended (a loop still at work when the fan-out was cancelled) go to
    /// `late`.
    private static func offer(
        _ events: [UpstreamEvent], on loops: [LoopPlan.Loop], late: @escaping @Sendable ([any FanoutMember]) -> Void
    ) async -> [any FanoutMember] {
        let gather = LoopGather(parts: loops.count, late: late)
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                gather.start(continuation)
                for part in loops {
                    part.loop.execute {
                        var leaving: [any FanoutMember] = []
                        for connection in part.connections {
                            leaving += offer(events, to: connection)
                            connection.first?.flush()
                        }
                        gather.add(leaving)
                    }
                }
            }
        } onCancel: {
            gather.cancel()
        }
        return gather.leaving
    }

    private func release(_ feeds: [any FanoutMember]) {
        let removed = state.withLock { state in feeds.filter { state.remove($0) } }
        for feed in removed { feed.leave() }
    }
}

/// Where a pass offers each member: on its stream's loop, next to the members that share
/// its connection; or anywhere (`here`), for members without a loop.
struct LoopPlan: Sendable {
    struct Loop: Sendable {
        let loop: EventLoop
        /// The loop's members, by connection (a member without one is alone).
        let connections: [[any FanoutMember]]
    }
    let here: [any FanoutMember]
    let loops: [Loop]

    init(_ members: some Collection<any FanoutMember>) {
        var here: [any FanoutMember] = []
        var loops: [(loop: EventLoop, connections: [[any FanoutMember]], at: [ObjectIdentifier: Int])] = []
        for member in members {
            guard let loop = member.loop else {
                here.append(member)
                continue
            }
            let place: Int
            if let found = loops.firstIndex(where: { $0.loop === loop }) {
                place = found
            } else {
                loops.append((loop, [], [:]))
                place = loops.count - 1
            }
            if let connection = member.connection, let at = loops[place].at[connection] {
                loops[place].connections[at].append(member)
            } else {
                if let connection = member.connection { loops[place].at[connection] = loops[place].connections.count }
                loops[place].connections.append([member])
            }
        }
        self.here = here
        self.loops = loops.map { Loop(loop: $0.loop, connections: $0.connections) }
    }
}

/// The loops' parts of one pass: the members that must leave, and the pass's waiter,
/// resumed when every part is in (or the fan-out is cancelled). A part that comes in
/// after that hands its leaving members to `late`, so none is left without its stream
/// knowing.
private final class LoopGather: Sendable {
    private struct State {
        var remaining: Int
        var leaving: [any FanoutMember] = []
        var waiter: CheckedContinuation<Void, Never>?
        var done = false
    }
    private let state: Mutex<State>
    private let late: @Sendable ([any FanoutMember]) -> Void

    init(parts: Int, late: @escaping @Sendable ([any FanoutMember]) -> Void) {
        state = Mutex(State(remaining: parts))
        self.late = late
    }

    func start(_ continuation: CheckedContinuation<Void, Never>) {
        let resume = state.withLock { state -> Bool in
            if state.done { return true }
            state.waiter = continuation
            return false
        }
        if resume { continuation.resume() }
    }

    func add(_ leaving: [any FanoutMember]) {
        let (waiter, isLate) = state.withLock { state -> (CheckedContinuation<Void, Never>?, Bool) in
            if state.done { return (nil, true) }
            state.leaving += leaving
            state.remaining -= 1
            guard state.remaining == 0 else { return (nil, false) }
            state.done = true
            defer { state.waiter = nil }
            return (state.waiter, false)
        }
        if isLate, !leaving.isEmpty { late(leaving) }
        waiter?.resume()
    }

    func cancel() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.done else { return nil }
            state.done = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    var leaving: [any FanoutMember] { state.withLock { $0.leaving } }
}

/// What a fan-out delivers to: one stream's part on one upstream.
protocol FanoutMember: AnyObject, Sendable {
    /// The event loop the stream writes on, where the fan-out offers it events (nil:
    /// anywhere).
    var loop: EventLoop? { get }
    /// The stream's connection on `loop`: the members that share one are offered one after
    /// the other, then `flush`ed once (nil: alone).
    var connection: ObjectIdentifier? { get }
    /// Writes what the stream's connection holds to its socket now (on `loop`).
    func flush()
    /// Takes `event` (queued, or passed as not for the stream) without waiting; false
    /// when the stream must take it on its own from here (the fan-out leaves it).
    func offer(_ event: UpstreamEvent) -> Bool
    /// The fan-out no longer delivers to it.
    func leave()
}

extension FanoutMember {
    var loop: EventLoop? { nil }
    var connection: ObjectIdentifier? { nil }
    func flush() {}
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

    var loop: EventLoop? { queue.direct?.loop }
    var connection: ObjectIdentifier? { queue.direct?.connection }
    func flush() { queue.direct?.flush() }

    /// The fan-out no longer delivers the stream: its catch-up takes over.
    func leave() {
        queue.detach(upstream)
    }

    /// The fan-out's look at `event`: queues its delta on each of `topics` it goes to (or
    /// passes it), synchronously; false when the stream's own producer must take it from
    /// here: the queue is over its limit, or the event needs a membership asked again.
    ///
    /// Every topic is decided before anything is queued (a message moves the position
    /// past the event, so the producer taking over could not send it on another topic);
    /// the usual case, one topic, then takes one lock of the queue.
    func offer(_ event: UpstreamEvent) -> Bool {
        var shown: Topic?
        var others: [Topic] = []
        for topic in topics {
            guard let shows = quickShows(event, on: topic) else {
                // Needs the project service: the producer takes over (unless it has the event).
                return queue.accepts(upstream, event.cursor) == .had
            }
            guard shows else { continue }
            if shown == nil { shown = topic } else { others.append(topic) }
        }
        let first = shown.map { topic in
            event.encodings.delta(topic, token: queue.epoch, at: upstream, event.cursor) {
                Subscription.delta(of: event, on: topic, from: upstream)
            }
        }
        let single = first?.token ?? ""
        switch queue.offer(first?.body, token: single, wire: first?.wire, tokens: event.encodings, advancing: upstream, to: event.cursor) {
        case .had: return true
        case .full, .ended: return false
        case .room: break
        }
        for topic in others {
            let message = event.encodings.delta(topic) { Subscription.delta(of: event, on: topic, from: upstream) }
            guard queue.push(message, advancing: upstream, to: event.cursor, tokens: event.encodings) else { return false }
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
