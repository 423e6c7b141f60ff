import STBJSON
import STBMessages
import STBPostgres
import STBRPC

/// What the activity log records of a call: where it came from.
struct CallOrigin: Sendable {
    /// The peer's address without its port (the throttle's key too).
    var peer: String
    /// The client's `stb-user-agent` metadata, at most 256 characters. (The RPC layer
    /// keeps the HTTP `user-agent` header out of a call's metadata.)
    var userAgent: String

    init(_ context: ServerContext) {
        var peer = context.peer
        if let colon = peer.lastIndex(of: ":") { peer = String(peer[..<colon]) }
        self.peer = peer
        self.userAgent = String((context.metadata.firstString(forKey: "stb-user-agent") ?? "").prefix(256))
    }

    init(peer: String, userAgent: String) {
        self.peer = peer
        self.userAgent = userAgent
    }
}

/// One row to append to the append-only `activity` table. `detail` must never hold a
/// password, token or secret.
struct ActivityEntry: Sendable {
    var kind: String
    var userID: String?
    var username: String
    var origin: CallOrigin
    var actorID: String = ""
    var detail: [String: JSONValue] = [:]

    var insert: PostgresQuery {
        """
        INSERT INTO activity (kind, user_id, username, peer, user_agent, actor_id, detail)
        VALUES (\(kind), \(userID)::uuid, \(username), \(origin.peer), \(origin.userAgent), \(actorID),
                \(PostgresJSON(JSONValue.object(detail).canonicalText)))
        """
    }
}

extension PostgresConnection {
    /// Appends `entry` to the activity log.
    func record(_ entry: ActivityEntry) async throws {
        _ = try await query(entry.insert)
    }
}

extension PostgresTransaction {
    func record(_ entry: ActivityEntry) async throws {
        _ = try await query(entry.insert)
    }
}

/// Reads activity rows.
enum ActivityRow {
    static let columns = """
        a.id, a.kind, coalesce(a.user_id::text, ''), a.username, a.peer, a.user_agent, a.actor_id, a.detail::text,
        (extract(epoch FROM a.at) * 1000)::int8
        """

    static func message(_ row: PostgresRow) throws(PostgresError) -> Stb_Gateway_V1_Activity {
        let (id, kind, userID, username, peer, userAgent, actorID, detail, at) = try row.decode(
            Int64.self, String.self, String.self, String.self, String.self, String.self, String.self, String.self, Int64.self)
        var activity = Stb_Gateway_V1_Activity()
        activity.id = id
        activity.kind = kind
        activity.userID = userID
        activity.username = username
        activity.peer = peer
        activity.userAgent = userAgent
        activity.actorID = actorID
        activity.detailJson = detail
        activity.atMs = at
        return activity
    }
}
