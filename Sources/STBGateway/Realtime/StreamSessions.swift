import Logging
import STBAuth
import STBMessages
import STBPostgres
import STBRPC
import ServiceLifecycle
import Synchronization

/// Every `Subscribe` stream as a row of `stream_sessions`, the per-role quota of
/// concurrent streams, and the streams this gateway runs (so an admin can end one).
///
/// As a `Service` it marks this gateway instance as alive every 5 s and closes the
/// sessions of instances not seen for 30 s (a crashed gateway's streams), at start and
/// then periodically; and every second it ends the streams of its own whose rows another
/// instance marked (`EndSession` for a stream running elsewhere).
public final class StreamSessions: Service, Sendable {
    public let instance: String
    private let pool: PostgresPool
    private let quotas: [Role: Int]
    private let logger: Logger
    private let running = Mutex<[Int64: @Sendable (RPCError) -> Void]>([:])

    public init(pool: PostgresPool, quotas: [Role: Int], logger: Logger) {
        self.pool = pool
        self.quotas = quotas
        self.logger = logger
        // A random UUID (version 4 layout) naming this process.
        var bytes = Crypto.randomBytes(16)
        bytes[6] = bytes[6] & 0x0f | 0x40
        bytes[8] = bytes[8] & 0x3f | 0x80
        let hex = bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        let parts = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { range in
            String(hex[hex.index(hex.startIndex, offsetBy: range.lowerBound)..<hex.index(hex.startIndex, offsetBy: range.upperBound)])
        }
        self.instance = parts.joined(separator: "-")
    }

    /// Registers this instance and closes orphaned sessions (before serving).
    public func prepare() async throws {
        _ = try await pool.query("INSERT INTO realtime_instances (id) VALUES (\(instance)::uuid)")
        try await closeOrphans()
    }

    public func run() async {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.endRequested() }
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(5))
                    do {
                        _ = try await self.pool.query("UPDATE realtime_instances SET seen_at = now() WHERE id = \(self.instance)::uuid")
                        try await self.closeOrphans()
                    } catch {
                        self.logger.warning("stream session upkeep failed", metadata: ["error": "\(error)"])
                    }
                }
                group.cancelAll()
            }
        }
        _ = try? await pool.query("DELETE FROM realtime_instances WHERE id = \(instance)::uuid")
    }

    private func closeOrphans() async throws {
        let rows = try await pool.query("""
            UPDATE stream_sessions SET status = 'ended', ended_at = now(), end_reason = 'gateway stopped'
            WHERE status = 'open' AND instance <> \(instance)::uuid AND instance NOT IN (
                SELECT id FROM realtime_instances WHERE seen_at > now() - interval '30 seconds')
            RETURNING id
            """)
        if rows.count > 0 { logger.notice("closed stream sessions left open by a stopped gateway", metadata: ["count": "\(rows.count)"]) }
        _ = try await pool.query("DELETE FROM realtime_instances WHERE seen_at < now() - interval '1 hour'")
    }

    /// Opens a session for the caller, or RESOURCE_EXHAUSTED when the role's quota of
    /// concurrent streams is used up. `end` stops the stream (EndSession).
    public func open(
        claims: AccessClaims, topics: [Topic], peer: String, userAgent: String, end: @escaping @Sendable (RPCError) -> Void
    ) async throws -> Int64 {
        let limit = quotas[claims.role] ?? 0
        let topicNames = topics.map(\.description)
        let id = try await pool.withTransaction { transaction -> Int64? in
            // One user's concurrent opens take turns, so the count stays exact.
            _ = try await transaction.query("SELECT pg_advisory_xact_lock(hashtext(\(claims.subject)))")
            let open = try await transaction.query(
                "SELECT count(*) FROM stream_sessions WHERE user_id = \(claims.subject) AND status = 'open'")[0].decode(0, as: Int64.self)
            guard open < Int64(limit) else { return nil }
            let rows = try await transaction.query("""
                INSERT INTO stream_sessions (instance, user_id, username, role, topics, peer, user_agent)
                VALUES (\(instance)::uuid, \(claims.subject), \(claims.name), \(claims.role.claim), \(topicNames), \(peer), \(userAgent))
                RETURNING id
                """)
            return try rows[0].decode(0, as: Int64.self)
        }
        guard let id else {
            throw RPCError(
                code: .resourceExhausted,
                message: "quota exceeded: streams_per_user for role \(claims.role.claim) is \(limit) concurrent streams; end one first")
        }
        running.withLock { $0[id] = end }
        return id
    }

    /// Records how a session ended.
    public func close(_ id: Int64, reason: String) async {
        running.withLock { _ = $0.removeValue(forKey: id) }
        do {
            _ = try await pool.query("""
                UPDATE stream_sessions SET status = 'ended', ended_at = now(), end_reason = \(reason)
                WHERE id = \(id) AND status = 'open'
                """)
        } catch {
            logger.warning("recording the end of a stream session failed", metadata: ["session": "\(id)", "error": "\(error)"])
        }
    }

    /// Ends the streams of this instance that another instance asked to end, every second.
    private func endRequested() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            guard running.withLock({ !$0.isEmpty }) else { continue }
            do {
                let rows = try await pool.query("""
                    SELECT id FROM stream_sessions WHERE instance = \(instance)::uuid AND end_requested AND status = 'open'
                    """)
                for row in rows { _ = end(try row.decode(0, as: Int64.self)) }
            } catch {
                logger.warning("reading the stream sessions to end failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Asks the instance running an open session to end it (it does within about a
    /// second); false when the session is not open.
    public func requestEnd(_ id: Int64) async throws -> Bool {
        let rows = try await pool.query("""
            UPDATE stream_sessions SET end_requested = true WHERE id = \(id) AND status = 'open' RETURNING id
            """)
        return rows.count > 0
    }

    /// Ends a stream this gateway runs; false when it runs none with that id.
    public func end(_ id: Int64) -> Bool {
        guard let end = running.withLock({ $0[id] }) else { return false }
        end(RPCError(code: .cancelled, message: "ended by an admin"))
        return true
    }

    /// Sessions, newest first.
    public func list(openOnly: Bool, limit: Int) async throws -> [Stb_Gateway_V1_StreamSession] {
        let rows = try await pool.query("""
            SELECT id, user_id, username, topics, peer, user_agent,
                   (extract(epoch FROM started_at) * 1000)::int8, coalesce((extract(epoch FROM ended_at) * 1000)::int8, 0),
                   status, end_reason
            FROM stream_sessions WHERE \(!openOnly) OR status = 'open'
            ORDER BY started_at DESC, id DESC LIMIT \(Int64(limit))
            """)
        return try rows.map { row in try Self.session(row) }
    }

    /// One session.
    public func find(_ id: Int64) async throws -> Stb_Gateway_V1_StreamSession? {
        let rows = try await pool.query("""
            SELECT id, user_id, username, topics, peer, user_agent,
                   (extract(epoch FROM started_at) * 1000)::int8, coalesce((extract(epoch FROM ended_at) * 1000)::int8, 0),
                   status, end_reason
            FROM stream_sessions WHERE id = \(id)
            """)
        return try rows.first.map { try Self.session($0) }
    }

    private static func session(_ row: PostgresRow) throws -> Stb_Gateway_V1_StreamSession {
        var session = Stb_Gateway_V1_StreamSession()
        session.id = try row.decode(0, as: Int64.self)
        session.userID = try row.decode(1, as: String.self)
        session.username = try row.decode(2, as: String.self)
        session.topics = try row.decode(3, as: [String].self)
        session.peer = try row.decode(4, as: String.self)
        session.userAgent = try row.decode(5, as: String.self)
        session.startedAtMs = try row.decode(6, as: Int64.self)
        session.endedAtMs = try row.decode(7, as: Int64.self)
        session.status = try row.decode(8, as: String.self)
        session.endReason = try row.decode(9, as: String.self)
        return session
    }
}
