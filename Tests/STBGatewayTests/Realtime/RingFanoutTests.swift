import Glibc
@testable import STBGateway
import STBPostgres
import STBRPC
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(1))) struct RingFanoutTests {
    /// A stream as the fan-out sees it: where it stands, what it received, and whether it
    /// was left; it refuses the event at `refuse` (a look that needs to wait).
    final class Recorder: FanoutMember {
        struct State {
            var position: OutboxCursor
            var received: [OutboxCursor] = []
            var left = 0
            var refuse: OutboxCursor?
        }
        let state: Mutex<State>

        init(at position: OutboxCursor, refuse: OutboxCursor? = nil) {
            state = Mutex(State(position: position, refuse: refuse))
        }

        var position: OutboxCursor { state.withLock { $0.position } }
        var received: [OutboxCursor] { state.withLock { $0.received } }
        var left: Int { state.withLock { $0.left } }

        func take(_ cursor: OutboxCursor) {
            state.withLock { state in
                state.received.append(cursor)
                state.position = cursor
            }
        }

        func offer(_ event: UpstreamEvent) -> Bool {
            state.withLock { state in
                if event.cursor <= state.position { return true }
                if event.cursor == state.refuse { return false }
                state.received.append(event.cursor)
                state.position = event.cursor
                return true
            }
        }

        func leave() { state.withLock { $0.left += 1 } }
    }

    /// A `Recorder` on an event loop: it also notes whether each offer ran on its loop.
    final class LoopRecorder: FanoutMember {
        let recorder: Recorder
        let loop: EventLoop?
        let offLoop = Atomic<Int>(0)

        init(at position: OutboxCursor, loop: EventLoop, refuse: OutboxCursor? = nil) {
            recorder = Recorder(at: position, refuse: refuse)
            self.loop = loop
        }

        func offer(_ event: UpstreamEvent) -> Bool {
            if loop?.inEventLoop != true { offLoop.add(1, ordering: .relaxed) }
            // A loop busy for a while: the pass must still wait for it.
            usleep(2000)
            return recorder.offer(event)
        }

        func leave() { recorder.leave() }
    }

    /// A member on a loop and a connection, noting in `log` (shared by the members) each
    /// offer it takes and each flush of its connection, as "offer NAME" and "flush
    /// CONNECTION".
    final class ConnectionRecorder: FanoutMember {
        let name: String
        let loop: EventLoop?
        let connectionName: String
        let connection: ObjectIdentifier?
        let log: Log

        init(_ name: String, loop: EventLoop, connection: Done, named connectionName: String, log: Log) {
            self.name = name
            self.loop = loop
            self.connectionName = connectionName
            self.connection = ObjectIdentifier(connection)
            self.log = log
        }

        func offer(_ event: UpstreamEvent) -> Bool {
            log.add("offer \(name)")
            return true
        }

        func flush() { log.add("flush \(connectionName)") }
        func leave() {}
    }

    final class Log: Sendable {
        private let entries = Mutex<[String]>([])
        func add(_ entry: String) { entries.withLock { $0.append(entry) } }
        /// The entries so far, and none after.
        func take() -> [String] { entries.withLock { entries in defer { entries = [] }; return entries } }
    }

    final class Done: Sendable {
        let value = Atomic<Bool>(false)
    }

    func event(_ n: Int) -> UpstreamEvent {
        UpstreamEvent(cursor: cursor(n), entity: "module", key: "m\(n)", action: "created", payload: [1, 2, 3])
    }

    func cursor(_ n: Int) -> OutboxCursor { OutboxCursor(revision: UInt64(n), sequence: Int64(n)) }

    /// What a stream's producer does: reads the ring from where the member stands until
    /// nothing is newer, then joins the fan-out there (else reads again).
    func catchUp(_ member: Recorder, ring: EventRing, fanout: RingFanout) async {
        var attempt = 0
        while true {
            let position = member.position
            guard case .events(let events) = ring.read(after: position, limit: 7) else { Issue.record("behind"); return }
            if events.isEmpty {
                // A producer may be suspended between its read and its join, while the
                // fan-out hands out more.
                attempt += 1
                if attempt % 2 == 1 { try? await Task.sleep(for: .milliseconds(1)) } else { await Task.yield() }
                if fanout.join(member, at: position) { return }
                await Task.yield()
            } else {
                for event in events { member.take(event.cursor) }
            }
        }
    }

    @Test func streamsJoiningWhileEventsArriveGetEveryEventOnceInOrder() async throws {
        let ring = EventRing(maximumCount: 100_000, maximumBytes: 1 << 26)
        ring.reset(base: .start)
        let fanout = RingFanout(upstream: .catalog, ring: ring)
        let total = 3000
        let members = (0..<40).map { Recorder(at: cursor($0 * 37)) }
        let done = Done()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !done.value.load(ordering: .relaxed) {
                    if !fanout.pass() { await Task.yield() }
                }
            }
            group.addTask {
                for start in stride(from: 1, through: total, by: 10) {
                    ring.append((start..<start + 10).map { event($0) })
                    try? await Task.sleep(for: .microseconds(300))
                }
            }
            for (index, member) in members.enumerated() {
                group.addTask {
                    try? await Task.sleep(for: .milliseconds(index * 2))
                    await catchUp(member, ring: ring, fanout: fanout)
                }
            }
            // Every member has everything after where it started.
            while members.contains(where: { $0.position != cursor(total) }) || ring.head != cursor(total) {
                try? await Task.sleep(for: .milliseconds(5))
            }
            done.value.store(true, ordering: .relaxed)
        }
        for (index, member) in members.enumerated() {
            #expect(member.received == ((index * 37 + 1)...total).map(cursor), "member \(index)")
        }
        #expect(fanout.memberCount == members.count)
    }

    @Test func aMemberThatRefusesAnEventIsLeftAndGetsNothingMore() {
        let ring = EventRing(maximumCount: 1000, maximumBytes: 1 << 20)
        ring.reset(base: .start)
        let fanout = RingFanout(upstream: .catalog, ring: ring)
        #expect(fanout.pass())  // starts at the ring's head
        let refusing = Recorder(at: .start, refuse: cursor(3))
        let other = Recorder(at: .start)
        #expect(fanout.join(refusing, at: .start))
        #expect(fanout.join(other, at: .start))
        ring.append((1...5).map(event))
        #expect(fanout.pass())
        #expect(refusing.received == [cursor(1), cursor(2)])
        #expect(refusing.left == 1)
        #expect(other.received == (1...5).map(cursor))
        #expect(fanout.memberCount == 1)
        // A stream behind the fan-out's position must read the ring first.
        #expect(!fanout.join(refusing, at: cursor(2)))
        #expect(fanout.join(refusing, at: cursor(5)))
    }

    @Test func membersOnLoopsAreOfferedThereAndThePassEndsWhenEveryLoopIsDone() async throws {
        let (group, ring, fanout) = try await fanoutOnLoops(count: 2)
        defer { group.shutdown() }
        let members = (0..<6).map { LoopRecorder(at: .start, loop: group.loops[$0 % 2], refuse: $0 == 3 ? cursor(2) : nil) }
        let anywhere = Recorder(at: .start)
        for member in members { #expect(fanout.join(member, at: .start)) }
        #expect(fanout.join(anywhere, at: .start))
        ring.append((1...3).map(event))
        #expect(await fanout.pass(onLoops: true))
        // Everything was handed out (and the refusing member left) when the pass returned.
        for (index, member) in members.enumerated() {
            #expect(member.recorder.received == (index == 3 ? [cursor(1)] : (1...3).map(cursor)), "member \(index)")
            #expect(member.offLoop.load(ordering: .relaxed) == 0, "member \(index)")
        }
        #expect(members[3].recorder.left == 1)
        #expect(anywhere.received == (1...3).map(cursor))
        #expect(fanout.memberCount == members.count)
    }

    @Test func membersSharingAConnectionAreOfferedTogetherAndTheConnectionFlushedOnceAfterThem() async throws {
        let (group, ring, fanout) = try await fanoutOnLoops(count: 1)
        defer { group.shutdown() }
        let log = Log()
        let connections = (0..<3).map { _ in Done() }
        // Joined in turn across the connections, as a client's streams come.
        let members = (0..<9).map { index in
            ConnectionRecorder("m\(index)", loop: group.loops[0], connection: connections[index % 3], named: "c\(index % 3)", log: log)
        }
        for member in members { #expect(fanout.join(member, at: .start)) }
        for round in 1...2 {
            ring.append([event(round)])
            #expect(await fanout.pass(onLoops: true))
            // Per connection: its three members, then one flush, before the next connection.
            let entries = log.take()
            #expect(entries.count == 12, "round \(round)")
            for block in stride(from: 0, to: entries.count, by: 4) {
                let connection = entries[block + 3]
                #expect(connection.hasPrefix("flush c"), "round \(round): \(entries)")
                let expected = members.filter { "flush \($0.connectionName)" == connection }.map { "offer \($0.name)" }
                #expect(Set(entries[block..<block + 3]) == Set(expected), "round \(round): \(entries)")
            }
            #expect(Set(entries.filter { $0.hasPrefix("flush") }).count == 3, "round \(round): \(entries)")
        }
        // A member that leaves is no longer offered anything, and its connection is
        // flushed after the two left on it.
        fanout.remove(members[4])
        ring.append([event(3)])
        #expect(await fanout.pass(onLoops: true))
        let entries = log.take()
        #expect(!entries.contains("offer m4"))
        #expect(entries.count == 11)
        #expect(entries.filter { $0 == "flush c1" }.count == 1)
    }

    @Test func aMemberThatRefusesOnALoopStillBusyWhenTheFanoutIsCancelledIsLeft() async throws {
        let (group, ring, fanout) = try await fanoutOnLoops(count: 1)
        defer { group.shutdown() }
        let member = LoopRecorder(at: .start, loop: group.loops[0], refuse: cursor(2))
        #expect(fanout.join(member, at: .start))
        // The loop is busy until released: the pass waits for it until cancelled (shutdown).
        let busy = Done()
        group.loops[0].execute { while !busy.value.load(ordering: .relaxed) { usleep(1000) } }
        ring.append((1...3).map(event))
        let pass = Task { await fanout.pass(onLoops: true) }
        try await Task.sleep(for: .milliseconds(50))
        pass.cancel()
        _ = await pass.value
        #expect(member.recorder.left == 0)
        // The loop gets to the member after the pass ended: it refuses event 2 and is left.
        busy.value.store(true, ordering: .relaxed)
        let deadline = ContinuousClock.now + .seconds(10)
        while member.recorder.left == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(member.recorder.left == 1)
        #expect(member.recorder.received == [cursor(1)])
        #expect(fanout.memberCount == 0)
    }

    @Test func aRingThatStartsOverLeavesEveryMember() {
        let ring = EventRing(maximumCount: 1000, maximumBytes: 1 << 20)
        ring.reset(base: .start)
        let fanout = RingFanout(upstream: .catalog, ring: ring)
        fanout.pass()
        let member = Recorder(at: .start)
        #expect(fanout.join(member, at: .start))
        ring.reset(base: nil)
        fanout.pass()
        #expect(member.left == 1)
        #expect(fanout.memberCount == 0)
        // No position until the ring has one again.
        #expect(!fanout.join(member, at: .start))
    }

    /// `count` event loops and a fan-out over an empty ring whose first pass (on loops) has
    /// started it at the ring's head.
    private func fanoutOnLoops(count: Int) async throws -> (EventLoopGroup, EventRing, RingFanout) {
        let group = try EventLoopGroup(count: count, name: "fanout-test")
        let ring = EventRing(maximumCount: 1000, maximumBytes: 1 << 20)
        ring.reset(base: .start)
        let fanout = RingFanout(upstream: .catalog, ring: ring)
        #expect(await fanout.pass(onLoops: true))
        return (group, ring, fanout)
    }
}

@Suite(.timeLimit(.minutes(1))) struct LiveFeedVisibilityTests {
    func event(_ sequence: Int64, project: String) -> UpstreamEvent {
        UpstreamEvent(cursor: OutboxCursor(revision: 1, sequence: sequence), entity: "project", key: project, action: "updated", projectKey: project, payload: [1])
    }

    @Test func theCallersProjectsAreUsedForTheirLifetimeThenAskedAgain() async throws {
        let queue = OutboundQueue(epoch: "e", positions: [.project: .start], limit: 1 << 20)
        // Long enough that the first offer comes within it on a loaded machine.
        let visible = VisibleProjects(lifetime: .seconds(1))
        visible.value = ["p"]
        let feed = LiveFeed(upstream: .project, topics: [.project("p")], queue: queue, privileged: false, visibleProjects: visible)
        #expect(feed.offer(event(1, project: "p")))
        #expect(try await queue.next().count == 1)
        // Past the lifetime the fan-out does not decide on the old answer: the stream's
        // producer asks the project service again.
        try await Task.sleep(for: .milliseconds(1100))
        #expect(visible.value == nil)
        #expect(!feed.offer(event(2, project: "p")))
    }
}
