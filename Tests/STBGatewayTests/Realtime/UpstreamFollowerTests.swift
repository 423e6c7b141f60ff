import Logging
@testable import STBGateway
import STBEventLoop
import STBPostgres
import STBServiceTestSupport
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(1))) struct UpstreamFollowerTests {
    /// The cursors a feed was asked to follow after, in order.
    final class Asked: Sendable {
        let cursors = Mutex<[String]>([])
    }

    /// A catalog feed of three events after whatever cursor it is asked for; it records
    /// each cursor asked for, then stays open until cancelled.
    static func feed(asked: Asked) -> UpstreamSource {
        UpstreamSource(upstream: .catalog) { after, deliver in
            asked.cursors.withLock { $0.append(after) }
            let start = OutboxCursor(after)?.revision ?? 0
            for revision in start + 1...start + 3 {
                try await deliver([UpstreamEvent(
                    cursor: OutboxCursor(revision: revision, sequence: Int64(revision)), entity: "module", key: "m\(revision)",
                    action: "created", payload: [])])
            }
            try await Task.sleep(for: .seconds(3600))
        }
    }

    static func savedCursor(_ pool: PostgresPool) async throws -> String? {
        try await pool.query("SELECT cursor FROM realtime_cursors WHERE upstream = 'catalog'").first?.decode(0, as: String.self)
    }

    @Test("the follower saves its cursor while it follows, and a new one resumes after it")
    func savesItsCursorWhileFollowing() async throws {
        let group = try EventLoopGroup(count: 1, name: "follower-test")
        defer { group.shutdown() }
        let conninfo = try await TestDatabase.schema("gateway_test", group: group)
        let pool = PostgresPool(configuration: PostgresConfiguration(conninfo: conninfo, poolSize: 2), group: group)
        try await Migrator(directory: "\(TestDatabase.root)/services/gateway/migrations").migrate(pool)
        let asked = Asked()
        let logger = Logger(label: "follower-test")

        let ring = EventRing(maximumCount: 100, maximumBytes: 1 << 20)
        let follower = UpstreamFollower(source: Self.feed(asked: asked), ring: ring, pool: pool, logger: logger, executor: group.loops[0])
        let running = Task { await follower.run() }
        // Delivered to the ring, and saved while the follower still runs.
        let deadline = ContinuousClock.now + .seconds(20)
        while try await Self.savedCursor(pool) != "3:3", ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(ring.head == OutboxCursor(revision: 3, sequence: 3))
        #expect(try await Self.savedCursor(pool) == "3:3", "the cursor was not saved while following")
        running.cancel()
        await running.value

        // A restarted follower asks the upstream for what came after the saved cursor.
        let second = EventRing(maximumCount: 100, maximumBytes: 1 << 20)
        let restarted = UpstreamFollower(source: Self.feed(asked: asked), ring: second, pool: pool, logger: logger)
        let again = Task { await restarted.run() }
        while second.head != OutboxCursor(revision: 6, sequence: 6), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        while try await Self.savedCursor(pool) != "6:6", ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        again.cancel()
        await again.value
        #expect(asked.cursors.withLock { $0 } == ["0:0", "3:3"])
        #expect(try await Self.savedCursor(pool) == "6:6")
        await pool.close()
    }
}
