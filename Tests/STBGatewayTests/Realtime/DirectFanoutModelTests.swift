@testable import STBGateway
import STBEventLoop
import STBMessages
import STBPostgres
import STBRPC
import Synchronization
import Testing

/// One stream on two upstreams, delivered by two fan-outs that share its queue, whose
/// direct writer is a fake transport on a real event loop (no sockets): what the transport
/// receives, in order, must carry on every message a resume token naming exactly the
/// deltas handed to it before (never ahead of them), with no event twice and none missed,
/// through direct writes, refused writes (backpressure), a full queue that hands an
/// upstream back to the stream's catch-up, and pushes from other threads.
@Suite(.serialized, .timeLimit(.minutes(1))) struct DirectFanoutModelTests {
    /// The transport: what it was handed, in order, always on its loop. It refuses every
    /// `refuseEvery`-th direct write (too much queued) and fails the direct write number
    /// `failAt` (the call ended).
    final class Transport: Sendable {
        struct State {
            var received: [Stb_Gateway_V1_SubscribeEvent] = []
            var directCalls = 0
            var offLoop = 0
        }
        let loop: EventLoop
        let refuseEvery: Int
        let failAt: Int?
        let state = Mutex(State())
        static let ended = RPCError(code: .unavailable, message: "the connection closed")

        init(loop: EventLoop, refuseEvery: Int, failAt: Int? = nil) {
            self.loop = loop
            self.refuseEvery = refuseEvery
            self.failAt = failAt
        }

        var received: [Stb_Gateway_V1_SubscribeEvent] { state.withLock { $0.received } }

        /// The direct write (`DirectWrite.writeNow`).
        func writeNow(_ bytes: [UInt8]) throws -> Bool {
            let verdict = state.withLock { state -> Bool? in
                if !loop.inEventLoop { state.offLoop += 1 }
                state.directCalls += 1
                if state.directCalls == failAt { return nil }
                if state.directCalls % refuseEvery == 0 { return false }
                record(bytes, in: &state)
                return true
            }
            guard let verdict else { throw Self.ended }
            return verdict
        }

        /// The stream's writer's path: onto the loop, then queued there.
        func send(_ bytes: [UInt8]) async {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                loop.execute {
                    self.state.withLock { self.record(bytes, in: &$0) }
                    done.resume()
                }
            }
        }

        private func record(_ bytes: [UInt8], in state: inout State) {
            guard let message = try? Stb_Gateway_V1_SubscribeEvent(serializedBytes: bytes) else {
                Issue.record("a message that does not decode")
                return
            }
            state.received.append(message)
        }
    }

    final class Flag: Sendable {
        let value = Atomic<Bool>(false)
        var isSet: Bool { value.load(ordering: .relaxed) }
        func set() { value.store(true, ordering: .relaxed) }
    }

    static let upstreams: [Upstream] = [.catalog, .rules]

    func event(_ n: Int) -> UpstreamEvent {
        UpstreamEvent(cursor: cursor(n), entity: "module", key: "m\(n)", action: "created", payload: Array(repeating: 7, count: 40))
    }

    func cursor(_ n: Int) -> OutboxCursor { OutboxCursor(revision: UInt64(n), sequence: Int64(n)) }

    func delta(_ event: UpstreamEvent, _ upstream: Upstream) -> EncodedKind {
        let topic: Topic = upstream == .catalog ? .catalog : .rules
        return event.encodings.delta(topic) { Subscription.delta(of: event, on: topic, from: upstream) }
    }

    /// What a stream's producer does once the fan-out hands its upstream back
    /// (`Subscription.produce(_:start: .continuing)`): reads the ring from where the
    /// queue stands, queueing each delta, until nothing is newer; then joins the fan-out.
    func catchUp(_ upstream: Upstream, queue: OutboundQueue, ring: EventRing, fanout: RingFanout, feed: LiveFeed) async {
        while !Task.isCancelled {
            guard let position = queue.position(upstream) else { return }
            let seen = ring.signal.generation
            guard case .events(let events) = ring.read(after: position, limit: 256) else {
                Issue.record("the ring no longer covers the stream")
                return
            }
            if events.isEmpty {
                if fanout.join(feed, at: position) { return }
                if ring.signal.generation == seen { try? await Task.sleep(for: .microseconds(200)) }
                continue
            }
            for event in events {
                // Patient: a loaded machine may hold the writer back for seconds.
                do { try await queue.waitForRoom(patience: .seconds(40)) } catch { return }
                guard queue.push(delta(event, upstream), advancing: upstream, to: event.cursor) else { return }
            }
        }
    }

    /// Checks what the transport received: deltas of each upstream numbered 1, 2, … in
    /// order, and each message's token naming, per upstream, the last delta received
    /// before it (or the message itself). Returns the last delta per upstream.
    func check(_ received: [Stb_Gateway_V1_SubscribeEvent]) -> [Upstream: Int] {
        var last: [Upstream: Int] = [.catalog: 0, .rules: 0]
        for (index, message) in received.enumerated() {
            if case .delta(let delta) = message.kind {
                guard let upstream = Upstream(rawValue: delta.upstream), let cursor = OutboxCursor(delta.cursor) else {
                    Issue.record("message \(index): a delta without its upstream or cursor")
                    return last
                }
                let expected = (last[upstream] ?? 0) + 1
                guard cursor == self.cursor(expected) else {
                    Issue.record("message \(index): \(upstream) delta \(cursor) where \(expected) was next (a gap or a duplicate)")
                    return last
                }
                last[upstream] = expected
            }
            guard let token = ResumeToken(text: message.resumeToken) else {
                Issue.record("message \(index): no valid resume token")
                return last
            }
            for upstream in Self.upstreams {
                let delivered = last[upstream] ?? 0
                let named = token.positions[upstream]
                guard named == (delivered == 0 ? .start : cursor(delivered)) else {
                    Issue.record("message \(index): its token names \(upstream) at \(named.map { "\($0)" } ?? "nothing") after delta \(delivered)")
                    return last
                }
            }
        }
        return last
    }

    /// The stream: two rings and their fan-outs, one queue whose direct writer is
    /// `transport`, and the stream's writer (which also restarts a handed-back upstream's
    /// catch-up), run until `total` events of each upstream reached the transport or the
    /// stream failed. Returns the stream's failure, if any.
    func runStream(total: Int, transport: Transport, limit: Int) async -> RPCError? {
        let rings = Dictionary(uniqueKeysWithValues: Self.upstreams.map { ($0, EventRing(maximumCount: 100_000, maximumBytes: 1 << 26)) })
        for ring in rings.values { ring.reset(base: .start) }
        let fanouts = Dictionary(uniqueKeysWithValues: Self.upstreams.map { ($0, RingFanout(upstream: $0, ring: rings[$0]!)) })
        let delivered = DeliveredToken()
        let direct = DirectWrite(loop: transport.loop, delivered: delivered, writeNow: transport.writeNow)
        let queue = OutboundQueue(epoch: "0123abcd", positions: [.catalog: .start, .rules: .start], limit: limit, direct: direct)
        let feeds = Dictionary(uniqueKeysWithValues: Self.upstreams.map { upstream in
            let topic: Topic = upstream == .catalog ? .catalog : .rules
            return (upstream, LiveFeed(upstream: upstream, topics: [topic], queue: queue, privileged: false, visibleProjects: VisibleProjects()))
        })
        for upstream in Self.upstreams {
            #expect(fanouts[upstream]!.pass())  // starts at the ring's head
            #expect(fanouts[upstream]!.join(feeds[upstream]!, at: .start))
        }
        let stop = Flag()
        var failure: RPCError?
        await withTaskGroup(of: Void.self) { group in
            // The fan-outs: catalog's on the stream's loop (direct writes); rules' there
            // and, every other pass, here on another thread (queued, the writer woken).
            group.addTask {
                while !stop.isSet {
                    if !(await fanouts[.catalog]!.pass(onLoops: true)) { try? await Task.sleep(for: .milliseconds(1)) }
                }
            }
            group.addTask {
                var round = 0
                while !stop.isSet {
                    round += 1
                    let moved = round % 2 == 0 ? fanouts[.rules]!.pass() : await fanouts[.rules]!.pass(onLoops: true)
                    if !moved { try? await Task.sleep(for: .milliseconds(1)) }
                }
            }
            // The upstreams' followers, in bursts of uneven sizes.
            for (offset, upstream) in Self.upstreams.enumerated() {
                group.addTask {
                    var next = 1
                    while next <= total, !stop.isSet {
                        let count = min(1 + (next * (offset + 3)) % 23, total - next + 1)
                        rings[upstream]!.append((next..<next + count).map { event($0) })
                        next += count
                        try? await Task.sleep(for: .microseconds(1500 + 700 * offset))
                    }
                }
            }
            // Heartbeats pushed from another thread.
            group.addTask {
                var beat = 0
                while !stop.isSet {
                    beat += 1
                    var heartbeat = Stb_Gateway_V1_Heartbeat()
                    heartbeat.atMs = Int64(beat)
                    queue.push(EncodedKind(.heartbeat(heartbeat)))
                    try? await Task.sleep(for: .milliseconds(3))
                }
            }
            // The stream's writer (`RealtimeService.run`).
            group.addTask {
                await withTaskGroup(of: Void.self) { producers in
                    do {
                        while true {
                            let messages = try await queue.next()
                            for upstream in queue.takeDetached() {
                                producers.addTask {
                                    await catchUp(upstream, queue: queue, ring: rings[upstream]!, fanout: fanouts[upstream]!, feed: feeds[upstream]!)
                                }
                            }
                            for message in messages {
                                await transport.send(message.encoded)
                                queue.written(message)
                                delivered.set(message.token)
                            }
                        }
                    } catch {
                        producers.cancelAll()
                    }
                }
            }
            // Until everything arrived (or the stream failed).
            while !stop.isSet {
                let received = transport.received
                let done = Self.upstreams.allSatisfy { upstream in
                    received.contains { message in
                        if case .delta(let delta) = message.kind { delta.upstream == upstream.rawValue && delta.cursor == cursor(total).description } else { false }
                    }
                }
                if done || queue.failure != nil { stop.set() }
                try? await Task.sleep(for: .milliseconds(5))
            }
            failure = queue.failure
            queue.fail(RPCError(code: .cancelled, message: "the test ended"))
        }
        for upstream in Self.upstreams {
            fanouts[upstream]!.remove(feeds[upstream]!)
        }
        // The trailer's token is the last message's.
        let received = transport.received
        if let last = received.last { #expect(delivered.value == last.resumeToken) }
        return failure
    }

    @Test func everyMessageCarriesATokenOfExactlyTheDeltasBeforeItThroughDirectRefusedAndQueuedWrites() async throws {
        let group = try EventLoopGroup(count: 1, name: "fanout-model")
        defer { group.shutdown() }
        let transport = Transport(loop: group.loops[0], refuseEvery: 5)
        let total = 3000
        // A small queue: bursts fill it, the fan-out hands the upstream back and the
        // stream's catch-up takes over, then joins again.
        let failure = await runStream(total: total, transport: transport, limit: 4096)
        #expect(failure == nil)
        let last = check(transport.received)
        #expect(last == [.catalog: total, .rules: total])
        // Every direct write (how many depends on the threads' timing) ran on the loop.
        #expect(transport.state.withLock { $0.offLoop } == 0)
    }

    @Test func aWaitingWriterWithNothingQueuedIsWrittenToOnItsLoop() async throws {
        let group = try EventLoopGroup(count: 1, name: "fanout-model")
        defer { group.shutdown() }
        let transport = Transport(loop: group.loops[0], refuseEvery: 2)
        let (queue, feed) = catalogFeed(writingTo: transport, at: .start)
        let writer = Task { try await queue.next() }
        try await Task.sleep(for: .milliseconds(50))
        _ = await offer(event(1), to: feed, on: transport)
        #expect(transport.received.count == 1)
        writer.cancel()
        _ = try? await writer.value
    }

    @Test func aDirectWriteThatFailsEndsTheStreamWithItsReason() async throws {
        let group = try EventLoopGroup(count: 1, name: "fanout-model")
        defer { group.shutdown() }
        let transport = Transport(loop: group.loops[0], refuseEvery: 100, failAt: 2)
        let (queue, feed) = catalogFeed(writingTo: transport, at: .start)
        let waiting = Task { try await queue.next() }
        try await Task.sleep(for: .milliseconds(50))
        let taken = await offer(event(1), to: feed, on: transport)
        // Written at once; the writer still waits (cancelled here, which ends that queue).
        #expect(taken)
        #expect(transport.received.count == 1)
        waiting.cancel()
        _ = try? await waiting.value
        // The transport fails the next direct write.
        let (failing, failingFeed) = catalogFeed(writingTo: transport, at: cursor(1))
        let writer = Task { try await failing.next() }
        try await Task.sleep(for: .milliseconds(50))
        _ = await offer(event(2), to: failingFeed, on: transport)
        // The transport's reason ends the stream; nothing more is offered or written.
        await #expect(throws: Transport.ended) { try await writer.value }
        #expect(failing.failure == Transport.ended)
        #expect(!failingFeed.offer(event(3)))
        #expect(transport.received.count == 1)
    }

    @Test func streamsOnOneUpstreamAreWrittenOneMessageMadeOnceWithTheirToken() async throws {
        let group = try EventLoopGroup(count: 1, name: "fanout-model")
        defer { group.shutdown() }
        let ring = EventRing(maximumCount: 1000, maximumBytes: 1 << 20)
        ring.reset(base: .start)
        let fanout = RingFanout(upstream: .catalog, ring: ring)
        #expect(fanout.pass())  // starts at the ring's head
        let written = Mutex<[[UInt8]]>([])
        var writers: [Task<[Outbound], any Error>] = []
        for _ in 0..<3 {
            let direct = DirectWrite(loop: group.loops[0], delivered: DeliveredToken()) { bytes in
                written.withLock { $0.append(bytes) }
                return true
            }
            let queue = OutboundQueue(epoch: "0123abcd", positions: [.catalog: .start], limit: 1 << 20, direct: direct)
            let feed = LiveFeed(upstream: .catalog, topics: [.catalog], queue: queue, privileged: false, visibleProjects: VisibleProjects())
            #expect(fanout.join(feed, at: .start))
            writers.append(Task { try await queue.next() })
        }
        // The writers wait with nothing queued: the fan-out writes to each directly.
        try await Task.sleep(for: .milliseconds(50))
        ring.append([event(1)])
        #expect(await fanout.pass(onLoops: true))
        let bytes = written.withLock { $0 }
        #expect(bytes.count == 3)
        for message in bytes {
            let event = try Stb_Gateway_V1_SubscribeEvent(serializedBytes: message)
            guard case .delta(let delta) = event.kind else {
                Issue.record("not a delta: \(event)")
                continue
            }
            #expect(delta.key == "m1")
            #expect(ResumeToken(text: event.resumeToken)?.positions == [.catalog: cursor(1)])
        }
        // One array for the three: no copy, no encoding per stream.
        let storages = Set(bytes.map { $0.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) } })
        #expect(storages.count == 1)
        for writer in writers { writer.cancel() }
        for writer in writers { _ = try? await writer.value }
    }

    /// A stream's queue on the catalog alone, at `position`, writing directly to `transport`,
    /// and the live feed that offers it events.
    private func catalogFeed(writingTo transport: Transport, at position: OutboxCursor) -> (OutboundQueue, LiveFeed) {
        let queue = OutboundQueue(
            epoch: "0123abcd", positions: [.catalog: position], limit: 1 << 20,
            direct: DirectWrite(loop: transport.loop, delivered: DeliveredToken(), writeNow: transport.writeNow))
        return (queue, LiveFeed(upstream: .catalog, topics: [.catalog], queue: queue, privileged: false, visibleProjects: VisibleProjects()))
    }

    /// Offers `event` to `feed` on the transport's loop, as the fan-out does; whether it was taken.
    private func offer(_ event: UpstreamEvent, to feed: LiveFeed, on transport: Transport) async -> Bool {
        await withCheckedContinuation { (done: CheckedContinuation<Bool, Never>) in
            transport.loop.execute { done.resume(returning: feed.offer(event)) }
        }
    }
}
