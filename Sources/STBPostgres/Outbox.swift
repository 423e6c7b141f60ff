import FoundationEssentials

/// A position in a service's outbox: the writing transaction's id and the row's id.
///
/// Ids are handed out before commit, so `id` order is not commit order; `(txid, id)`
/// read below the oldest running transaction is (see `Outbox.read`). The text form,
/// `"<txid>.<id>"`, is what clients hold as a resume token.
public struct OutboxCursor: Hashable, Comparable, Sendable, LosslessStringConvertible {
    public var transaction: UInt64
    public var sequence: Int64

    public init(transaction: UInt64, sequence: Int64) {
        self.transaction = transaction
        self.sequence = sequence
    }

    /// Before every event.
    public static let start = OutboxCursor(transaction: 0, sequence: 0)

    public init?(_ description: String) {
        let parts = description.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let transaction = UInt64(parts[0]), let sequence = Int64(parts[1]), sequence >= 0 else {
            return nil
        }
        self.init(transaction: transaction, sequence: sequence)
    }

    public var description: String { "\(transaction).\(sequence)" }

    public static func < (lhs: OutboxCursor, rhs: OutboxCursor) -> Bool {
        (lhs.transaction, lhs.sequence) < (rhs.transaction, rhs.sequence)
    }
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
/// transaction, and readers tail them in commit-safe order.
///
/// The table (created by the service's own migration) must have this shape:
///
///     CREATE TABLE events (
///         id bigserial PRIMARY KEY,
///         txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
///         entity text NOT NULL,
///         entity_key text NOT NULL,
///         action text NOT NULL,
///         payload bytea NOT NULL,
///         actor text NOT NULL DEFAULT '',
///         created_at timestamptz NOT NULL DEFAULT now()
///     );
///     CREATE INDEX events_cursor ON events (txid, id);
///
/// Pruning (`prune`, `horizon`) also needs the table's horizon, one row:
///
///     CREATE TABLE events_horizon (
///         only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
///         txid xid8 NOT NULL DEFAULT '0',
///         event_id bigint NOT NULL DEFAULT 0
///     );
///     INSERT INTO events_horizon DEFAULT VALUES;
public struct Outbox: Sendable {
    /// The table's name.
    public let table: String
    /// The channel woken (without payload) when a transaction with events commits.
    public let channel: String

    private let insertSQL: String
    private let readSQL: String

    /// `table` and `channel` are fixed names chosen by the service, not input.
    public init(table: String = "events", channel: String) {
        precondition(isPlainIdentifier(table) && isPlainIdentifier(channel), "outbox names must be lowercase identifiers")
        self.table = table
        self.channel = channel
        insertSQL = "INSERT INTO \(table) (entity, entity_key, action, payload, actor) VALUES ($1, $2, $3, $4, $5)"
        // Rows of transactions still running (txid ≥ the snapshot's xmin) may commit later
        // with a lower cursor than rows already visible: stop below the oldest of them.
        readSQL = """
            SELECT txid, id, entity, entity_key, action, payload, actor, created_at FROM \(table)
            WHERE (txid, id) > ($1, $2) AND txid < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY txid, id LIMIT $3
            """
    }

    /// Records `events` in `transaction`; one wake-up is sent when it commits.
    public func append(_ events: [NewOutboxEvent], in transaction: PostgresTransaction) async throws(PostgresError) {
        guard !events.isEmpty else { return }
        // Big imports are sent in slices so a pipeline's buffers stay bounded.
        var start = 0
        while start < events.count {
            let end = min(start + 1000, events.count)
            let inserts = events[start..<end].map { event in
                var bindings = PostgresBindings()
                bindings.append(event.entity)
                bindings.append(event.key)
                bindings.append(event.action)
                bindings.append(event.payload)
                bindings.append(event.actor)
                return PostgresQuery(sql: insertSQL, bindings: bindings)
            }
            _ = try await transaction.pipeline(inserts)
            start = end
        }
        transaction.notifyOnCommit(channel: channel)
    }

    /// Committed events after `cursor`, oldest first, at most `limit`.
    ///
    /// Never skips a committed event: an event is returned only once every transaction
    /// that could still commit with a lower cursor has ended.
    public func read(after cursor: OutboxCursor, limit: Int, on connection: PostgresConnection) async throws(PostgresError) -> [OutboxEvent] {
        var bindings = PostgresBindings()
        bindings.append(TransactionID(cursor.transaction))
        bindings.append(cursor.sequence)
        bindings.append(Int64(limit))
        let rows = try await connection.query(PostgresQuery(sql: readSQL, bindings: bindings))
        var events: [OutboxEvent] = []
        events.reserveCapacity(rows.count)
        for row in rows {
            let (transaction, sequence, entity, key, action, payload, actor, createdAt) =
                try row.decode(UInt64.self, Int64.self, String.self, String.self, String.self, [UInt8].self, String.self, Date.self)
            events.append(OutboxEvent(
                cursor: OutboxCursor(transaction: transaction, sequence: sequence),
                entity: entity, key: key, action: action, payload: payload, actor: actor, createdAt: createdAt
            ))
        }
        return events
    }

    public func read(after cursor: OutboxCursor, limit: Int, pool: PostgresPool) async throws -> [OutboxEvent] {
        try await pool.withConnection { try await read(after: cursor, limit: limit, on: $0) }
    }

    /// The newest event every running transaction is known to be past: where a reader
    /// that wants only what happens from now on starts.
    public func head(pool: PostgresPool) async throws -> OutboxCursor {
        let rows = try await pool.query(PostgresQuery(sql: """
            SELECT txid, id FROM \(table) WHERE txid < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY txid DESC, id DESC LIMIT 1
            """))
        guard let row = rows.first else { return .start }
        return OutboxCursor(transaction: try row.decode(0, as: UInt64.self), sequence: try row.decode(1, as: Int64.self))
    }

    /// The newest cursor pruned away: a reader behind it has missed events.
    public func horizon(pool: PostgresPool) async throws -> OutboxCursor {
        let rows = try await pool.query(PostgresQuery(sql: "SELECT txid, event_id FROM \(table)_horizon"))
        return OutboxCursor(transaction: try rows[0].decode(0, as: UInt64.self), sequence: try rows[0].decode(1, as: Int64.self))
    }

    /// Deletes events older than `retentionSeconds` (only ones every reader could have
    /// seen) and moves the horizon past them; returns how many were deleted.
    public func prune(retentionSeconds: Int64, pool: PostgresPool) async throws -> Int {
        try await pool.withTransaction { transaction in
            let newest = try await transaction.query(PostgresQuery(sql: """
                SELECT txid, id FROM \(table)
                WHERE created_at < now() - make_interval(secs => $1)
                  AND txid < pg_snapshot_xmin(pg_current_snapshot())
                ORDER BY txid DESC, id DESC LIMIT 1
                """, bindings: PostgresBindings(Double(retentionSeconds))))
            guard let row = newest.first else { return 0 }
            let newestCursor = PostgresBindings(TransactionID(try row.decode(0, as: UInt64.self)), try row.decode(1, as: Int64.self))
            let deleted = try await transaction.query(PostgresQuery(
                sql: "DELETE FROM \(table) WHERE (txid, id) <= ($1, $2)", bindings: newestCursor))
            _ = try await transaction.query(PostgresQuery(
                sql: "UPDATE \(table)_horizon SET txid = $1, event_id = $2", bindings: newestCursor))
            return deleted.affectedRows
        }
    }
}

/// A transaction id bound as `xid8`.
struct TransactionID: PostgresEncodable {
    let value: UInt64
    init(_ value: UInt64) { self.value = value }

    static var postgresType: PostgresType { .xid8 }
    func encode(into buffer: inout [UInt8]) -> Bool {
        withUnsafeBytes(of: value.bigEndian) { buffer.append(contentsOf: $0) }
        return true
    }
}

/// Lowercase letters, digits and underscores, not starting with a digit.
func isPlainIdentifier(_ name: String) -> Bool {
    guard let first = name.utf8.first, first >= 97 && first <= 122 || first == 95, name.utf8.count <= 63 else { return false }
    return name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
}
