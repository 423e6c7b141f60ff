import Logging
import STBPostgres
import STBRPC
import ServiceLifecycle
import Synchronization

/// Follows one upstream's change feed into its ring, as the gateway's service account,
/// and keeps its cursor in `realtime_cursors` so a restarted gateway resumes where it
/// stood. A cursor the upstream refuses (pruned, another database) starts the follower
/// over from the upstream's head; the ring then has no base until the first event, and
/// subscribers behind it replay from the upstream. Reconnects with backoff.
///
/// Given the loop its upstream client reads on (`executor`), the follower runs there: a
/// change received is in the ring within the same turn of that loop, instead of waiting in
/// the shared task queue behind the streams' own work.
///
/// The cursor is saved beside the delivery (twice a second while it moves, and at
/// shutdown), never in its way: an event reaches the ring without waiting for a write to
/// the gateway's database.
public final class UpstreamFollower: Service, Sendable {
    public let source: UpstreamSource
    public let ring: EventRing
    private let pool: PostgresPool
    private let logger: Logger
    private let executor: (any TaskExecutor)?
    /// Where the follower stands (nil before the first event when it started from the head).
    private let position = Mutex<OutboxCursor?>(nil)
    /// The cursor last saved (nil: none yet, or the last save failed).
    private let persisted = Mutex<OutboxCursor?>(nil)
    /// How often the cursor is saved while it moves.
    static let persistInterval = Duration.milliseconds(500)

    /// `executor`: the loop the source's client reads on, if it has one of its own.
    public init(source: UpstreamSource, ring: EventRing, pool: PostgresPool, logger: Logger, executor: (any TaskExecutor)? = nil) {
        self.source = source
        self.ring = ring
        self.pool = pool
        self.logger = logger
        self.executor = executor
    }

    public func run() async {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.persistPeriodically() }
                await withTaskExecutorPreference(self.executor) { await self.followForever() }
                group.cancelAll()
            }
        }
        await persist()
    }

    private func followForever() async {
        let upstream = source.upstream.rawValue
        var start: OutboxCursor?
        while !Task.isCancelled {
            do {
                let rows = try await pool.query("SELECT cursor FROM realtime_cursors WHERE upstream = \(upstream)")
                start = try rows.first.flatMap { OutboxCursor(try $0.decode(0, as: String.self)) }
                break
            } catch {
                logger.warning("reading the realtime cursor failed; retrying", metadata: ["upstream": "\(upstream)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
        // The first start follows from the feed's beginning, so the ring knows where it
        // stands from the first event on.
        position.withLock { $0 = start ?? .start }
        ring.reset(base: start ?? .start)
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled {
            let after = position.withLock { $0 }
            do {
                try await source.follow(after?.description ?? "") { events in
                    self.ring.append(events)
                    if let last = events.last { self.position.withLock { $0 = last.cursor } }
                }
            } catch {
                if Task.isCancelled { return }
                if UpstreamSource.isRefusedCursor(error) {
                    logger.error("the upstream refused the follower's cursor; following from its head", metadata: [
                        "upstream": "\(upstream)", "error": "\(error)"])
                    position.withLock { $0 = nil }
                    ring.reset(base: nil)
                } else {
                    logger.warning("following the upstream failed; retrying", metadata: ["upstream": "\(upstream)", "error": "\(error)"])
                }
            }
            // Progress since the last attempt: the connection worked, so retry soon.
            if position.withLock({ $0 }) != after { delay = .milliseconds(100) }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }

    /// Saves the cursor every `persistInterval` until cancelled.
    private func persistPeriodically() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.persistInterval)
            await persist()
        }
    }

    /// Writes the cursor when it moved since the last write.
    private func persist() async {
        guard let cursor = position.withLock({ $0 }) else { return }
        let due = persisted.withLock { saved -> Bool in
            guard saved != cursor else { return false }
            saved = cursor
            return true
        }
        guard due else { return }
        do {
            _ = try await pool.query("""
                INSERT INTO realtime_cursors (upstream, cursor) VALUES (\(source.upstream.rawValue), \(cursor.description))
                ON CONFLICT (upstream) DO UPDATE SET cursor = excluded.cursor, updated_at = now()
                """)
        } catch {
            persisted.withLock { $0 = nil }
            logger.warning("saving the realtime cursor failed", metadata: ["upstream": "\(source.upstream.rawValue)", "error": "\(error)"])
        }
    }
}

/// The gateway's own service-account token for its calls to upstreams, signed with its
/// current key (it issues tokens, so it needs no sign-in); renewed when a fifth of its
/// life is left.
public final class GatewayServiceCredentials: CallCredentials {
    private let sign: @Sendable () -> (token: String, expiresAtMs: Int64)
    private let token = Mutex<(value: String, renewAtMs: Int64)?>(nil)

    public init(sign: @escaping @Sendable () -> (token: String, expiresAtMs: Int64)) {
        self.sign = sign
    }

    public func metadata() async throws -> Metadata {
        let now = GatewayService.nowSeconds() * 1000
        if let token = token.withLock({ $0 }), now < token.renewAtMs { return Metadata.bearer(token.value) }
        let fresh = sign()
        let renewAt = fresh.expiresAtMs - max(30_000, (fresh.expiresAtMs - now) / 5)
        token.withLock { $0 = (fresh.token, renewAt) }
        return Metadata.bearer(fresh.token)
    }
}
