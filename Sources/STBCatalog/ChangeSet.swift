import STBJSON
import STBMessages
import STBPostgres

/// What one catalog transaction changed. At the end of the transaction `write` records
/// an audit row and an outbox event per change and bumps the catalog revision, so a
/// change, its audit row and its event commit together or not at all.
final class ChangeSet {
    struct Change {
        let kind: EntityKind
        let key: String
        let action: Stb_Common_V1_ChangeAction
        let before: JSONValue?
        let after: JSONValue?
        let state: Stb_Catalog_V1_CatalogEntity
    }

    let actor: String
    private(set) var changes: [Change] = []

    init(actor: String) {
        self.actor = actor
    }

    var isEmpty: Bool { changes.isEmpty }

    func created(_ kind: EntityKind, _ key: String, after: JSONValue, state: Stb_Catalog_V1_CatalogEntity) {
        changes.append(Change(kind: kind, key: key, action: .created, before: nil, after: after, state: state))
    }

    func updated(_ kind: EntityKind, _ key: String, before: JSONValue, after: JSONValue, state: Stb_Catalog_V1_CatalogEntity) {
        changes.append(Change(kind: kind, key: key, action: .updated, before: before, after: after, state: state))
    }

    func deleted(_ kind: EntityKind, _ key: String, before: JSONValue, state: Stb_Catalog_V1_CatalogEntity) {
        changes.append(Change(kind: kind, key: key, action: .deleted, before: before, after: nil, state: state))
    }

    /// Writes audit rows and events and bumps the revision; returns the new revision.
    /// With no changes it writes nothing and returns the current revision.
    func write(in transaction: PostgresTransaction, outbox: Outbox) async throws -> UInt64 {
        guard !changes.isEmpty else {
            let rows = try await transaction.query("SELECT revision FROM catalog_revision")
            return UInt64(try rows[0].decode(0, as: Int64.self))
        }
        let bumped = try await transaction.query("""
            UPDATE catalog_revision SET revision = revision + 1
            RETURNING revision, (extract(epoch FROM now()) * 1000)::int8
            """)
        let (revision, nowMs) = try bumped[0].decode(Int64.self, Int64.self)
        var audits: [PostgresQuery] = []
        var events: [NewOutboxEvent] = []
        audits.reserveCapacity(changes.count)
        events.reserveCapacity(changes.count)
        for change in changes {
            let action = change.action.name
            audits.append("""
                INSERT INTO audit_log (actor, entity, entity_key, action, before, after, revision)
                VALUES (\(actor), \(change.kind.rawValue), \(change.key), \(action),
                        \(change.before.map { PostgresJSON($0.canonicalText) }), \(change.after.map { PostgresJSON($0.canonicalText) }), \(revision))
                """)
            var event = Stb_Catalog_V1_ChangeEvent()
            event.entity = change.kind.rawValue
            event.key = change.key
            event.action = change.action
            event.state = change.state
            event.actor = actor
            event.atMs = nowMs
            event.revision = UInt64(revision)
            events.append(NewOutboxEvent(
                entity: change.kind.rawValue, key: change.key, action: action,
                payload: event.serializedBytes(), actor: actor
            ))
        }
        var start = 0
        while start < audits.count {
            let end = min(start + 1000, audits.count)
            _ = try await transaction.pipeline(Array(audits[start..<end]))
            start = end
        }
        try await outbox.append(events, in: transaction)
        return UInt64(revision)
    }
}

extension Stb_Common_V1_ChangeAction {
    /// The word used in audit rows and outbox rows.
    var name: String {
        switch self {
        case .created: "created"
        case .updated: "updated"
        case .deleted: "deleted"
        default: "unspecified"
        }
    }
}
