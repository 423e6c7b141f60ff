import STBMessages
import STBPostgres
import STBRPC

extension CatalogService {
    /// Replays events after the request's cursor, then follows new ones until the caller
    /// goes away. A cursor older than the outbox's retention is refused with
    /// FAILED_PRECONDITION "resync required", never answered with a gap.
    func watch(_ request: Stb_Catalog_V1_WatchRequest, _ writer: RPCWriter<Stb_Catalog_V1_ChangeEvent>) async throws {
        let cursor: OutboxCursor
        if request.after.isEmpty {
            cursor = try await headCursor()
        } else {
            guard let parsed = OutboxCursor(request.after) else {
                throw invalid("after: \(Validation.quoted(request.after)) is not a cursor this service issued")
            }
            cursor = parsed
            let horizon = try await pool.query("SELECT txid, event_id FROM events_horizon")
            let pruned = OutboxCursor(transaction: try horizon[0].decode(0, as: UInt64.self), sequence: try horizon[0].decode(1, as: Int64.self))
            if cursor < pruned {
                throw RPCError(
                    code: .failedPrecondition,
                    message: "resync required: cursor \(cursor) is older than the change feed keeps (events up to \(pruned) were pruned); reload with GetConfig and watch from its cursor"
                )
            }
        }
        for try await batch in feed.batches(after: cursor) {
            var events: [Stb_Catalog_V1_ChangeEvent] = []
            events.reserveCapacity(batch.count)
            for stored in batch {
                var event = try stored.payload.withUnsafeBytes { try Stb_Catalog_V1_ChangeEvent(serializedBytes: $0) }
                event.cursor = stored.cursor.description
                events.append(event)
            }
            try await writer.write(contentsOf: events)
        }
    }

    /// The newest event every running transaction is known to be past.
    func headCursor() async throws -> OutboxCursor {
        let rows = try await pool.query("""
            SELECT txid, id FROM events WHERE txid < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY txid DESC, id DESC LIMIT 1
            """)
        guard let row = rows.first else { return .start }
        return OutboxCursor(transaction: try row.decode(0, as: UInt64.self), sequence: try row.decode(1, as: Int64.self))
    }

    /// Deletes events older than `retentionSeconds` (only ones every reader could have
    /// seen) and moves the horizon past them; returns how many were deleted.
    public func pruneEvents(retentionSeconds: Int64) async throws -> Int {
        try await pool.withTransaction { transaction in
            let newest = try await transaction.query("""
                SELECT txid, id FROM events
                WHERE created_at < now() - make_interval(secs => \(Double(retentionSeconds)))
                  AND txid < pg_snapshot_xmin(pg_current_snapshot())
                ORDER BY txid DESC, id DESC LIMIT 1
                """)
            guard let row = newest.first else { return 0 }
            let (txid, id) = try row.decode(UInt64.self, Int64.self)
            let deleted = try await transaction.query(PostgresQuery(
                sql: "DELETE FROM events WHERE (txid, id) <= ($1::text::xid8, $2)",
                bindings: PostgresBindings(String(txid), id)))
            _ = try await transaction.query(PostgresQuery(
                sql: "UPDATE events_horizon SET txid = $1::text::xid8, event_id = $2",
                bindings: PostgresBindings(String(txid), id)))
            return deleted.affectedRows
        }
    }
}
