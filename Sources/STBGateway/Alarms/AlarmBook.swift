import STBMessages
import STBPostgres
import STBRPC

/// The gateway's alarms: one open alarm per project whose draft is invalid, raised,
/// updated and cleared by the project service's `validity` events, acknowledged by
/// operators, pruned after retention. Every change writes an `alarm` event (payload an
/// `Alarm`) to the gateway's outbox in the same transaction.
public struct AlarmBook: Sendable {
    /// The gateway's outbox: `events`, woken on `gateway_events`, ordered by `gateway_revision`.
    public static let outbox = Outbox(table: "events", channel: "gateway_events", revisionTable: "gateway_revision")
    /// The outbox entity of alarm events.
    public static let entity = "alarm"

    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    /// Applies a project's validity (from the project change feed at `sourceRevision`):
    /// invalid raises an active alarm or updates the open one (an acknowledged alarm is
    /// active again when its severity rises); valid clears the open one. `cursor`, when
    /// given, is stored as the feed position in the same transaction. Returns the alarm
    /// it changed, if any.
    @discardableResult
    public func apply(
        projectKey: String, valid: Bool, violations: [Stb_Rules_V1_Violation], sourceRevision: UInt64, cursor: String? = nil
    ) async throws -> Stb_Gateway_V1_Alarm? {
        try await pool.withTransaction(maxAttempts: 3) { transaction in
            if let cursor {
                _ = try await transaction.query("UPDATE alarm_feed_cursor SET cursor = \(cursor)")
            }
            let open = try await transaction.query("""
                SELECT \(unescaped: StoredAlarm.columns) FROM alarms a
                WHERE a.project_key = \(projectKey) AND a.status <> 'cleared' FOR UPDATE
                """).first.map { try StoredAlarm(row: $0).message }
            let revision = Int64(clamping: sourceRevision)
            if let open, open.sourceRevision > sourceRevision { return nil }  // an older event replayed
            let changed: (Stb_Common_V1_ChangeAction, PostgresRows)
            if valid {
                guard let open else { return nil }
                changed = (.updated, try await transaction.query("""
                    WITH a AS (UPDATE alarms SET status = 'cleared', cleared_at = now(), updated_at = now(), source_revision = \(revision)
                               WHERE id = \(open.id) RETURNING *)
                    SELECT \(unescaped: StoredAlarm.columns) FROM a
                    """))
            } else {
                let severity = AlarmSeverityName.severity(of: violations)
                let severityName = AlarmSeverityName.name(severity) ?? "info"
                let stored = Stb_Rules_V1_ViolationList(violations: violations).serializedBytes()
                if let open {
                    if open.severity == severity, open.violations == violations { return nil }
                    let worse = AlarmSeverityName.rank(severity) > AlarmSeverityName.rank(open.severity)
                    let status = worse ? "active" : (AlarmStatusName.name(open.status) ?? "active")
                    changed = (.updated, try await transaction.query("""
                        WITH a AS (UPDATE alarms SET severity = \(severityName), violations = \(stored), status = \(status),
                                   updated_at = now(), source_revision = \(revision) WHERE id = \(open.id) RETURNING *)
                        SELECT \(unescaped: StoredAlarm.columns) FROM a
                        """))
                } else {
                    changed = (.created, try await transaction.query("""
                        WITH a AS (INSERT INTO alarms (project_key, status, severity, violations, source_revision)
                                   VALUES (\(projectKey), 'active', \(severityName), \(stored), \(revision)) RETURNING *)
                        SELECT \(unescaped: StoredAlarm.columns) FROM a
                        """))
                }
            }
            let alarm = try StoredAlarm(row: changed.1[0]).message
            try await Self.record([(changed.0, alarm)], actor: "project", in: transaction)
            return alarm
        }
    }

    /// Marks active alarm `id` acknowledged by `actor` with `note`; FAILED_PRECONDITION
    /// when it is not active, NOT_FOUND when it does not exist or `visible` refuses it.
    public func acknowledge(id: Int64, note: String, actor: String, visible: @Sendable (String) -> Bool) async throws -> Stb_Gateway_V1_Alarm {
        try await pool.withTransaction { transaction in
            let rows = try await transaction.query("SELECT \(unescaped: StoredAlarm.columns) FROM alarms a WHERE a.id = \(id) FOR UPDATE")
            guard let row = rows.first else { throw RPCError(code: .notFound, message: "alarm \(id) not found") }
            let alarm = try StoredAlarm(row: row).message
            guard visible(alarm.projectKey) else { throw RPCError(code: .notFound, message: "alarm \(id) not found") }
            guard alarm.status == .active else {
                let state = AlarmStatusName.name(alarm.status) ?? "unknown"
                throw RPCError(code: .failedPrecondition, message: "alarm \(id) is \(state); only an active alarm can be acknowledged")
            }
            let updated = try await transaction.query("""
                WITH a AS (UPDATE alarms SET status = 'acknowledged', acknowledged_by = \(actor), acknowledged_at = now(),
                           acknowledgement_note = \(note), updated_at = now() WHERE id = \(id) RETURNING *)
                SELECT \(unescaped: StoredAlarm.columns) FROM a
                """)
            let acknowledged = try StoredAlarm(row: updated[0]).message
            try await Self.record([(.updated, acknowledged)], actor: actor, in: transaction)
            return acknowledged
        }
    }

    /// Deletes cleared alarms cleared more than `days` days ago; returns how many.
    @discardableResult
    public func prune(olderThanDays days: Int) async throws -> Int {
        try await pool.withTransaction { transaction in
            let rows = try await transaction.query("""
                WITH a AS (DELETE FROM alarms WHERE status = 'cleared' AND cleared_at < now() - \(Int64(days)) * interval '1 day' RETURNING *)
                SELECT \(unescaped: StoredAlarm.columns) FROM a
                """)
            let pruned = try rows.map { try (Stb_Common_V1_ChangeAction.deleted, StoredAlarm(row: $0).message) }
            try await Self.record(pruned, actor: "gateway", in: transaction)
            return pruned.count
        }
    }

    /// Where the follower of the project feed stands ("" before its first event).
    public func cursor() async throws -> String {
        try await pool.query("SELECT cursor FROM alarm_feed_cursor")[0].decode(0, as: String.self)
    }

    /// Stores the follower's position (an event that changed no alarm).
    public func setCursor(_ cursor: String) async throws {
        _ = try await pool.query("UPDATE alarm_feed_cursor SET cursor = \(cursor)")
    }

    /// One outbox event per change, at a new gateway revision.
    static func record(_ changes: [(Stb_Common_V1_ChangeAction, Stb_Gateway_V1_Alarm)], actor: String, in transaction: PostgresTransaction) async throws {
        guard !changes.isEmpty else { return }
        let revision = try await outbox.nextRevision(in: transaction)
        let events = changes.map { action, alarm in
            NewOutboxEvent(
                entity: entity, key: "\(alarm.projectKey)/\(alarm.id)", action: action == .created ? "created" : action == .deleted ? "deleted" : "updated",
                payload: alarm.serializedBytes(), actor: actor)
        }
        try await outbox.append(events, at: revision, in: transaction)
    }
}
