import STBJSON
import STBMessages
import STBPostgres
import STBRPC
import STBService

/// What one transaction changed in projects. `write` records, for each change, an audit
/// row chained to the project's previous row and an outbox event, and bumps the service's
/// revision: the change, its audit row and its event commit together or not at all.
final class ProjectChanges {
    struct Change {
        let projectID: Int64
        let projectKey: String
        let entity: String
        let key: String
        let action: Stb_Common_V1_ChangeAction
        let before: JSONValue?
        let after: JSONValue?
        let oldHash: [UInt8]
        let newHash: [UInt8]
        /// Set for validity events.
        var validity: (valid: Bool, violations: [Stb_Rules_V1_Violation])?
    }

    let caller: CallerIdentity
    private(set) var changes: [Change] = []

    init(caller: CallerIdentity) {
        self.caller = caller
    }

    var isEmpty: Bool { changes.isEmpty }

    /// Records a change of `entity` (`key` within the project; empty for the project itself).
    func record(
        _ project: (id: Int64, key: String), entity: String, key: String = "", action: Stb_Common_V1_ChangeAction,
        before: JSONValue?, after: JSONValue?, oldHash: [UInt8] = [], newHash: [UInt8] = [],
        validity: (valid: Bool, violations: [Stb_Rules_V1_Violation])? = nil
    ) {
        changes.append(Change(
            projectID: project.id, projectKey: project.key, entity: entity, key: key, action: action,
            before: before, after: after, oldHash: oldHash, newHash: newHash, validity: validity))
    }

    /// Writes the audit rows and events and bumps the revision; nil when nothing changed.
    func write(in transaction: PostgresTransaction, outbox: Outbox) async throws -> UInt64? {
        guard !changes.isEmpty else { return nil }
        let taken = try await outbox.nextRevision(in: transaction)
        var previous: [Int64: [UInt8]] = [:]
        var events: [NewOutboxEvent] = []
        for change in changes {
            let last: [UInt8]
            if let known = previous[change.projectID] {
                last = known
            } else {
                let rows = try await transaction.query(
                    "SELECT row_hash FROM audit_log WHERE project_id = \(change.projectID) ORDER BY id DESC LIMIT 1")
                last = try rows.first?.decode(0, as: [UInt8].self) ?? []
            }
            let row = AuditRow(
                projectID: change.projectID, projectKey: change.projectKey, atMs: taken.timeMs, actor: caller.name,
                actorID: caller.subject, entity: change.entity, entityKey: change.key, action: ChangeLog.name(change.action),
                before: change.before, after: change.after, oldHash: change.oldHash, newHash: change.newHash,
                revision: Int64(taken.value), previousRowHash: last)
            let hash = row.hash
            previous[change.projectID] = hash
            _ = try await transaction.query("""
                INSERT INTO audit_log (project_id, project_key, at_ms, actor, actor_id, entity, entity_key, action,
                                       before, after, old_hash, new_hash, revision, previous_row_hash, row_hash)
                VALUES (\(row.projectID), \(row.projectKey), \(row.atMs), \(row.actor), \(row.actorID), \(row.entity),
                        \(row.entityKey), \(row.action), \(row.before.map { PostgresJSON($0.canonicalText) }),
                        \(row.after.map { PostgresJSON($0.canonicalText) }), \(row.oldHash), \(row.newHash), \(row.revision),
                        \(row.previousRowHash), \(hash))
                """)
            var event = Stb_Project_V1_ChangeEvent()
            event.entity = change.entity
            event.key = change.key.isEmpty ? change.projectKey : "\(change.projectKey)/\(change.key)"
            event.action = change.action
            event.projectKey = change.projectKey
            event.stateJson = (change.after ?? change.before)?.canonicalText ?? ""
            event.actor = caller.name
            event.actorID = caller.subject
            event.atMs = taken.timeMs
            event.revision = taken.value
            event.hash_p = change.newHash
            if let validity = change.validity {
                event.valid = validity.valid
                event.violations = validity.violations
            }
            events.append(NewOutboxEvent(
                entity: change.entity, key: event.key, action: ChangeLog.name(change.action),
                payload: event.serializedBytes(), actor: caller.name))
        }
        try await outbox.append(events, at: taken, in: transaction)
        return taken.value
    }
}

/// One audit row's content; `hash` is SHA-256 over its canonical JSON (RFC 8785), which
/// includes the previous row's hash, so editing or removing a row breaks the chain.
struct AuditRow {
    let projectID: Int64
    let projectKey: String
    let atMs: Int64
    let actor: String
    let actorID: String
    let entity: String
    let entityKey: String
    let action: String
    let before: JSONValue?
    let after: JSONValue?
    let oldHash: [UInt8]
    let newHash: [UInt8]
    let revision: Int64
    let previousRowHash: [UInt8]

    var canonical: String {
        CanonicalJSON.text(.object([
            "project_id": .integer(projectID), "project_key": .string(projectKey), "at_ms": .integer(atMs),
            "actor": .string(actor), "actor_id": .string(actorID), "entity": .string(entity),
            "entity_key": .string(entityKey), "action": .string(action), "before": before ?? .null, "after": after ?? .null,
            "old_hash": .string(SHA256.hex(oldHash)), "new_hash": .string(SHA256.hex(newHash)),
            "revision": .integer(revision), "previous_row_hash": .string(SHA256.hex(previousRowHash)),
        ]))
    }

    var hash: [UInt8] { SHA256.hash(canonical.utf8) }
}
