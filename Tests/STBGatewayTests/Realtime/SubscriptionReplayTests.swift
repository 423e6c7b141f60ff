import Logging
import STBAuth
import STBMessages
@testable import STBGateway
import STBPostgres
import STBRPC
import Synchronization
import Testing

/// A stream behind the ring replays from the upstream's feed: what it replays reaches the
/// stream's queue as it arrives (with the token of the events up to it), and the ring
/// takes over where the replay reaches it, nothing lost or repeated.
@Suite(.timeLimit(.minutes(1))) struct SubscriptionReplayTests {
    static func cursor(_ sequence: Int64) -> OutboxCursor { OutboxCursor(revision: UInt64(sequence), sequence: sequence) }

    static func event(_ sequence: Int64) -> UpstreamEvent {
        UpstreamEvent(cursor: cursor(sequence), entity: "module", key: "m\(sequence)", action: "created", payload: [1, 2, 3])
    }

    /// A catalog feed that sends the events `sequences` after the cursor it is asked for,
    /// one at a time, then waits (as a `Watch` with nothing newer does) until cancelled.
    static func feed(_ sequences: ClosedRange<Int64>) -> UpstreamSource {
        UpstreamSource(upstream: .catalog) { after, deliver in
            let from = OutboxCursor(after) ?? .start
            for sequence in sequences where cursor(sequence) > from { try await deliver([event(sequence)]) }
            try await Task.sleep(for: .seconds(3600))
        }
    }

    /// A stream of an admin on `catalog` standing at `position`, behind `ring`, whose
    /// replays read `source`; `body` runs while its producer runs. The snapshot client
    /// points nowhere: a resume needs no snapshot.
    static func withStream(
        at position: Int64, ring: EventRing, source: UpstreamSource, replayLimit: Int = 1000,
        _ body: (OutboundQueue) async throws -> Void
    ) async throws {
        let nowhere = try RPCClient(host: "127.0.0.1", port: 9)
        let configuration = try RealtimeConfiguration(environment: ["GATEWAY_REPLAY_LIMIT": "\(replayLimit)"])
        let hub = RealtimeHub(
            epoch: "e1", rings: [.catalog: ring], sources: [.catalog: source],
            snapshots: Snapshots(catalog: nowhere, rules: nowhere, project: nowhere),
            memberships: MembershipDirectory { _ in [] }, clock: StreamClock(heartbeat: .seconds(60)), configuration: configuration)
        let claims = AccessClaims(
            issuer: "stb-gateway", audience: "stb", subject: "u1", name: "root", role: .admin,
            issuedAt: 0, notBefore: 0, expiresAt: Int64.max, tokenID: "t1")
        let queue = OutboundQueue(epoch: "e1", positions: [.catalog: cursor(position)], limit: 1 << 20)
        let subscription = Subscription(
            hub: hub, claims: claims, callerMetadata: Metadata(), topics: [.catalog], queue: queue, logger: Logger(label: "test"))
        let producer = Task { try await subscription.produce(.catalog, start: .resume(cursor(position))) }
        do {
            try await body(queue)
        } catch {
            producer.cancel()
            await nowhere.close()
            throw error
        }
        producer.cancel()
        await nowhere.close()
    }

    /// Takes queued messages until `count` deltas have come: their cursors, each with the
    /// token it carries.
    static func deltas(_ count: Int, from queue: OutboundQueue) async throws -> [(cursor: OutboxCursor, token: String)] {
        var got: [(cursor: OutboxCursor, token: String)] = []
        while got.count < count {
            for message in try await queue.next() {
                guard case .delta(let delta)? = message.message.kind, let cursor = OutboxCursor(delta.cursor) else { continue }
                got.append((cursor, message.token))
            }
        }
        return got
    }

    @Test("a replay that has not reached the ring yet delivers what it has replayed so far, each with its token")
    func deliversAsItReplays() async throws {
        // The ring starts at 100: a stream at 5 is behind it, and the feed stops at 10.
        let ring = EventRing(maximumCount: 10, maximumBytes: 1 << 20)
        ring.reset(base: Self.cursor(100))
        try await Self.withStream(at: 5, ring: ring, source: Self.feed(6...10)) { queue in
            let got = try await Self.deltas(5, from: queue)
            #expect(got.map(\.cursor) == (6...10).map(Self.cursor))
            for (cursor, token) in got {
                #expect(token == ResumeToken(epoch: "e1", positions: [.catalog: cursor]).text)
            }
            #expect(queue.position(.catalog) == Self.cursor(10))
        }
    }

    @Test("the ring takes over where the replay reaches it: every event once, in order")
    func handsOverToTheRing() async throws {
        // The ring holds 16...20 (base 15); the feed has 6...20 and more it never gets to.
        let ring = EventRing(maximumCount: 5, maximumBytes: 1 << 20)
        ring.reset(base: Self.cursor(10))
        ring.append((11...20).map(Self.event))
        #expect(ring.read(after: Self.cursor(14), limit: 1) == .behind)
        try await Self.withStream(at: 5, ring: ring, source: Self.feed(6...30)) { queue in
            let got = try await Self.deltas(15, from: queue)
            #expect(got.map(\.cursor) == (6...20).map(Self.cursor))
            // Nothing more: the feed's 21...30 were not read past the ring's reach.
            try await Task.sleep(for: .milliseconds(200))
            #expect(queue.position(.catalog) == Self.cursor(20))
        }
    }

    @Test("past the replay bound the first part is delivered, then resync_required")
    func deliversTheFirstPartThenResyncs() async throws {
        let ring = EventRing(maximumCount: 10, maximumBytes: 1 << 20)
        ring.reset(base: Self.cursor(100))
        try await Self.withStream(at: 5, ring: ring, source: Self.feed(6...50), replayLimit: 3) { queue in
            let kinds = try await Self.deltasUntilResync(queue, atMost: 8)
            #expect(kinds == ["6:6", "7:7", "8:8", "resync"])
        }
    }

    /// The deltas' cursors the stream sends, then "resync" for its `resync_required`: until
    /// that, or `atMost` of them.
    static func deltasUntilResync(_ queue: OutboundQueue, atMost limit: Int) async throws -> [String] {
        var kinds: [String] = []
        while !kinds.contains("resync") && kinds.count < limit {
            for message in try await queue.next() {
                switch message.message.kind {
                case .delta(let delta)?: kinds.append(delta.cursor)
                case .resyncRequired?: kinds.append("resync")
                default: break
                }
            }
        }
        return kinds
    }

    /// A catalog feed like `feed`, except that each follow fails (as an upstream that
    /// restarts does) after sending `perAttempt` events.
    static func failingFeed(_ sequences: ClosedRange<Int64>, perAttempt: Int) -> UpstreamSource {
        UpstreamSource(upstream: .catalog) { after, deliver in
            let from = OutboxCursor(after) ?? .start
            for sequence in sequences.filter({ cursor($0) > from }).prefix(perAttempt) { try await deliver([event(sequence)]) }
            throw RPCError(code: .unavailable, message: "the upstream restarted")
        }
    }

    @Test("the replay bound counts across the retries after an upstream error")
    func boundCountsAcrossRetries() async throws {
        let ring = EventRing(maximumCount: 10, maximumBytes: 1 << 20)
        ring.reset(base: Self.cursor(100))
        // Each attempt sends 2 events, under the bound of 3: only the sum passes it.
        try await Self.withStream(at: 5, ring: ring, source: Self.failingFeed(6...50, perAttempt: 2), replayLimit: 3) { queue in
            let kinds = try await Self.deltasUntilResync(queue, atMost: 8)
            #expect(kinds == ["6:6", "7:7", "8:8", "resync"])
        }
    }
}
