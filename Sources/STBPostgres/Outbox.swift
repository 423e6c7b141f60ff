import FoundationEssentials

/// A position in a service's outbox: the revision of the change that wrote the event,
/// and the row's id.
///
/// Every change transaction bumps the service's one-row revision, and that row stays
/// locked until the transaction ends, so revisions are handed out in commit order: a
/// feed ordered by `(revision, id)` follows commit order and never has to wait for, or
/// skip past, a transaction still running. The text form, `"<revision>:<id>"`, is what
/// clients hold as a resume token.
public struct OutboxCursor: Hashable, Comparable, Sendable, LosslessStringConvertible {
    public var revision: UInt64
    public var sequence: Int64

    public init(revision: UInt64, sequence: Int64) {
        self.revision = revision
        self.sequence = sequence
    }

    /// Before every event.
    public static let start = OutboxCursor(revision: 0, sequence: 0)

    /// Parses the text form; nil for anything else (including other spellings of the
    /// same numbers, so one position has one token).
    public init?(_ description: String) {
        let parts = description.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ isCanonicalNumber($0.utf8) }),
              let revision = UInt64(parts[0]), let sequence = Int64(parts[1])
        else { return nil }
        self.init(revision: revision, sequence: sequence)
    }

    public var description: String { "\(revision):\(sequence)" }

    public static func < (lhs: OutboxCursor, rhs: OutboxCursor) -> Bool {
        (lhs.revision, lhs.sequence) < (rhs.revision, rhs.sequence)
    }
}

/// Digits only, at most 20 of them (UInt64.max), no leading zero (but "0").
private func isCanonicalNumber(_ digits: Substring.UTF8View) -> Bool {
    guard let first = digits.first, digits.count <= 20 else { return false }
    return (first != UInt8(ascii: "0") || digits.count == 1) && digits.allSatisfy { $0 >= 48 && $0 <= 57 }
}

/// The revision a change transaction has taken: the key its events are ordered by. Only
/// `Outbox.nextRevision` makes one, so every event's revision comes from the locked bump.
public struct OutboxRevision: Sendable, Hashable {
    /// The service's new revision.
    public let value: UInt64
    /// The transaction's time (`now()`), in milliseconds since 1970.
    public let timeMs: Int64
}

/// An event to record with a change.
public struct NewOutboxEvent: Sendable {
    public var entity: String
    public var key: String
    public var action: String
    public var payload: [UInt8]
    public var actor: String

    public init(entity: String, key: String, action: String, payload: [UInt8] = [], actor: String = "") {
        self.entity = entity
        self.key = key
        self.action = action
        self.payload = payload
        self.actor = actor
    }
}

/// A committed event, as read back from the outbox.
public struct OutboxEvent: Sendable, Equatable {
    public let cursor: OutboxCursor
    public let entity: String
    public let key: String
    public let action: String
    public let payload: [UInt8]
    public let actor: String
    public let createdAt: Date
}

/// A service's transactional outbox: every change writes its event rows in the same
/// transaction, and readers tail them in commit order.
///
/// The tables (created by the service's own migration) must have this shape:
///
///     CREATE TABLE events (
///         id bigserial PRIMARY KEY,
///         revision bigint NOT NULL,
///         entity text NOT NULL,
///         entity_key text NOT NULL,
///         action text NOT NULL,
///         payload bytea NOT NULL,
///         actor text NOT NULL DEFAULT '',
///         created_at timestamptz NOT NULL DEFAULT now()
///     );
///     CREATE INDEX events_cursor ON events (revision, id);
///
///     -- the service's revision: one row, bumped by every change transaction
///     CREATE TABLE <service>_revision (revision bigint NOT NULL);
///     INSERT INTO <service>_revision (revision) VALUES (0);
///
/// Pruning (`prune`, `horizon`) also needs the table's horizon, one row:
///
///     CREATE TABLE events_horizon (
///         only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
///         revision bigint NOT NULL DEFAULT 0,
///         event_id bigint NOT NULL DEFAULT 0
///     );
///     INSERT INTO events_horizon DEFAULT VALUES;
///
/// Why this order: ids and transaction ids are taken before commit, so two concurrent
/// changes of one row can sort in the opposite order of their commits, and a subscriber
/// applying events in that order would end with the older value. The revision row's lock
/// serialises the bumps, so revision order is commit order, and an event is visible only
/// once every event with a lower revision is.
public struct Outbox: Sendable {
    /// The table's name.
    public let table: String
    /// The channel woken (without payload) when a transaction with events commits.
    public let channel: String
    /// The one-row revision table every change transaction bumps.
    public let revisionTable: String


    /// `table`, `channel` and `revisionTable` are fixed names chosen by the service, not input.
    public init(table: String = "events", channel: String, revisionTable: String) {
        precondition(
            isPlainIdentifier(table) && isPlainIdentifier(channel) && isPlainIdentifier(revisionTable),
            "outbox names must be lowercase identifiers"
        )
        self.table = table
        self.channel = channel
        self.revisionTable = revisionTable
    }

    /// Bumps the service's revision in `transaction` and returns it. The revision row stays
    /// locked until the transaction ends, so a concurrent change waits here for this one's
    /// commit (or rollback) and then takes the next revision.
    public func nextRevision(in transaction: PostgresTransaction) async throws(PostgresError) -> OutboxRevision {
        let rows = try await transaction.query("""
            UPDATE \(unescaped: revisionTable) SET revision = revision + 1
            RETURNING revision, (extract(epoch FROM now()) * 1000)::int8
            """)
        guard let row = rows.first else {
            throw PostgresError(code: .decodingFailed, message: "the revision table \(revisionTable) has no row")
        }
        let (revision, timeMs) = try row.decode(Int64.self, Int64.self)
        return OutboxRevision(value: UInt64(clamping: revision), timeMs: timeMs)
    }

    /// Records `events` in `transaction` at `revision` (taken in the same transaction); one
    /// wake-up is sent when it commits.
    public func append(_ events: [NewOutboxEvent], at revision: OutboxRevision, in transaction: PostgresTransaction) async throws(PostgresError) {
        guard !events.isEmpty else { return }
        // Big imports are sent in slices so a pipeline's buffers stay bounded.
        var start = 0
        while start < events.count {
            let end = min(start + 1000, events.count)
            let inserts = events[start..<end].map { event -> PostgresQuery in
                """
                INSERT INTO \(unescaped: table) (revision, entity, entity_key, action, payload, actor)
                VALUES (\(Int64(revision.value)), \(event.entity), \(event.key), \(event.action), \(event.payload), \(event.actor))
                """
            }
            _ = try await transaction.pipeline(inserts)
            start = end
        }
        transaction.notifyOnCommit(channel: channel)
    }

    /// Committed events after `cursor`, in commit order, at most `limit`.
    public func read(after cursor: OutboxCursor, limit: Int, on connection: PostgresConnection) async throws(PostgresError) -> [OutboxEvent] {
        let rows = try await connection.query("""
            SELECT revision, id, entity, entity_key, action, payload, actor, created_at FROM \(unescaped: table)
            WHERE (revision, id) > (\(Int64(clamping: cursor.revision)), \(cursor.sequence))
            ORDER BY revision, id LIMIT \(Int64(limit))
            """)
        var events: [OutboxEvent] = []
        events.reserveCapacity(rows.count)
        for row in rows {
            let (revision, sequence, entity, key, action, payload, actor, createdAt) =
                try row.decode(Int64.self, Int64.self, String.self, String.self, String.self, [UInt8].self, String.self, Date.self)
            events.append(OutboxEvent(
                cursor: OutboxCursor(revision: UInt64(clamping: revision), sequence: sequence),
                entity: entity, key: key, action: action, payload: payload, actor: actor, createdAt: createdAt
            ))
        }
        return events
    }

    public func read(after cursor: OutboxCursor, limit: Int, pool: PostgresPool) async throws -> [OutboxEvent] {
        try await pool.withConnection { try await read(after: cursor, limit: limit, on: $0) }
    }

    /// The newest committed event (the horizon when everything was pruned): where a reader
    /// that wants only what happens from now on starts, and the furthest cursor a client
    /// can legitimately hold.
    public func head(pool: PostgresPool) async throws -> OutboxCursor {
        let rows = try await pool.query("SELECT revision, id FROM \(unescaped: table) ORDER BY revision DESC, id DESC LIMIT 1")
        guard let row = rows.first else { return try await horizon(pool: pool) }
        return OutboxCursor(revision: UInt64(clamping: try row.decode(0, as: Int64.self)), sequence: try row.decode(1, as: Int64.self))
    }

    /// The newest cursor pruned away: a reader behind it has missed events.
    public func horizon(pool: PostgresPool) async throws -> OutboxCursor {
        let rows = try await pool.query("SELECT revision, event_id FROM \(unescaped: table)_horizon")
        return OutboxCursor(revision: UInt64(clamping: try rows[0].decode(0, as: Int64.self)), sequence: try rows[0].decode(1, as: Int64.self))
    }

    /// Deletes events older than `retentionSeconds` and moves the horizon past them;
    /// returns how many were deleted.
    public func prune(retentionSeconds: Int64, pool: PostgresPool) async throws -> Int {
        try await pool.withTransaction { transaction in
            let newest = try await transaction.query("""
                SELECT revision, id FROM \(unescaped: table)
                WHERE created_at < now() - make_interval(secs => \(Double(retentionSeconds)))
                ORDER BY revision DESC, id DESC LIMIT 1
                """)
            guard let row = newest.first else { return 0 }
            let (revision, id) = try row.decode(Int64.self, Int64.self)
            let deleted = try await transaction.query("DELETE FROM \(unescaped: table) WHERE (revision, id) <= (\(revision), \(id))")
            _ = try await transaction.query("UPDATE \(unescaped: table)_horizon SET revision = \(revision), event_id = \(id)")
            return deleted.affectedRows
        }
    }
}

/// Lowercase letters, digits and underscores, not starting with a digit.
func isPlainIdentifier(_ name: String) -> Bool {
    guard let first = name.utf8.first, first >= 97 && first <= 122 || first == 95, name.utf8.count <= 63 else { return false }
    return name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
}
