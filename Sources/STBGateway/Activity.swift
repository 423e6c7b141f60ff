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

    /// The caller of `context`. When the peer is one of `trustedProxies` (the edge), the
    /// client is the last address of its `x-forwarded-for` (the one the edge appended;
    /// earlier ones come from the client and prove nothing); a missing or malformed one
    /// leaves the peer.
    init(_ context: ServerContext, trustedProxies: Set<String> = []) {
        var peer = context.peer
        if let colon = peer.lastIndex(of: ":") { peer = String(peer[..<colon]) }
        if peer.hasPrefix("["), peer.hasSuffix("]") { peer = String(peer.dropFirst().dropLast()) }
        if trustedProxies.contains(peer), let forwarded = context.metadata.strings(forKey: "x-forwarded-for").last,
            let last = forwarded.split(separator: ",").last, let client = Self.address(last.trimmingSpaces)
        {
            peer = client
        }
        self.peer = peer
        self.userAgent = String((context.metadata.firstString(forKey: "stb-user-agent") ?? "").prefix(256))
    }

    /// `text` when it reads as an IPv4 or IPv6 address (digits, hex letters, dots and
    /// colons, at most 45 characters), lowercased; nil otherwise.
    static func address(_ text: Substring) -> String? {
        guard !text.isEmpty, text.utf8.count <= 45,
            text.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) || ($0 >= 0x41 && $0 <= 0x46) || $0 == 0x2E || $0 == 0x3A }),
            text.contains(".") || text.contains(":")
        else { return nil }
        return text.lowercased()
    }

    init(peer: String, userAgent: String) {
        self.peer = peer
        self.userAgent = userAgent
    }
}

/// One row to append to the append-only `activity` table. `detail` must never hold a
/// password, token or secret.
extension Substring {
    /// Without leading and trailing spaces.
    var trimmingSpaces: Substring {
        var trimmed = drop { $0 == " " }
        while trimmed.last == " " { trimmed = trimmed.dropLast() }
        return trimmed
    }
}

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
