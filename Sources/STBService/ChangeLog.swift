import STBJSON
import STBMessages
import STBPostgres
import STBRPC

/// What one transaction of a service changed. At the end of the transaction `write`
/// records an audit row and an outbox event per change and bumps the service's revision,
/// so a change, its audit row and its event commit together or not at all.
///
/// Every service's database has the same three tables for this: `audit_log` (actor,
/// actor_id, entity, entity_key, action, before, after, revision), the outbox, and the outbox's
/// one-row revision table (`revision bigint`).
public final class ChangeLog {
    struct Change {
        let entity: String
        let key: String
        let action: Stb_Common_V1_ChangeAction
        let before: JSONValue?
        let after: JSONValue?
        /// The outbox payload: the service's change event, given the revision and the time.
        let event: (_ revision: UInt64, _ atMs: Int64) -> [UInt8]
    }

    /// The caller's name (a username, a service name), as audit rows and events show it.
    public let actor: String
    /// The caller's verified subject (a user id, `service:<name>`); empty when unknown.
    public let actorID: String
    private var changes: [Change] = []

    public init(actor: String, actorID: String = "") {
        self.actor = actor
        self.actorID = actorID
    }

    /// A log of changes made by `caller` (the call's verified identity).
    public convenience init(caller: CallerIdentity) {
        self.init(actor: caller.name, actorID: caller.subject)
    }

    public var isEmpty: Bool { changes.isEmpty }

    /// Records a change: `before` is nil for a creation, `after` nil for a deletion.
    public func record(
        entity: String, key: String, action: Stb_Common_V1_ChangeAction, before: JSONValue?, after: JSONValue?,
        event: @escaping (_ revision: UInt64, _ atMs: Int64) -> [UInt8]
    ) {
        changes.append(Change(entity: entity, key: key, action: action, before: before, after: after, event: event))
    }

    /// Writes the audit rows and events and bumps the revision; returns the new revision,
    /// or nil (having written nothing) when nothing changed.
    public func write(in transaction: PostgresTransaction, outbox: Outbox) async throws -> UInt64? {
        guard !changes.isEmpty else { return nil }
        // Taken first: a concurrent change waits here until this one ends, so revisions,
        // and with them the outbox, follow commit order.
        let taken = try await outbox.nextRevision(in: transaction)
        let revision = Int64(taken.value)
        var audits: [PostgresQuery] = []
        var events: [NewOutboxEvent] = []
        audits.reserveCapacity(changes.count)
        events.reserveCapacity(changes.count)
        for change in changes {
            let action = Self.name(change.action)
            audits.append("""
                INSERT INTO audit_log (actor, actor_id, entity, entity_key, action, before, after, revision)
                VALUES (\(actor), \(actorID), \(change.entity), \(change.key), \(action),
                        \(change.before.map { PostgresJSON($0.canonicalText) }), \(change.after.map { PostgresJSON($0.canonicalText) }), \(revision))
                """)
            events.append(NewOutboxEvent(
                entity: change.entity, key: change.key, action: action,
                payload: change.event(taken.value, taken.timeMs), actor: actor
            ))
        }
        var start = 0
        while start < audits.count {
            let end = min(start + 1000, audits.count)
            _ = try await transaction.pipeline(Array(audits[start..<end]))
            start = end
        }
        try await outbox.append(events, at: taken, in: transaction)
        return taken.value
    }

    /// The word used in audit rows and outbox rows.
    public static func name(_ action: Stb_Common_V1_ChangeAction) -> String {
        switch action {
        case .created: "created"
        case .updated: "updated"
        case .deleted: "deleted"
        default: "unspecified"
        }
    }
}
