import STBJSON
import STBMessages
import STBService

/// The catalog's changes are recorded in a `ChangeLog` on `catalog_revision`, each with a
/// `ChangeEvent` carrying the entity's new state (its old one, for a deletion).
typealias ChangeSet = ChangeLog

extension ChangeLog {
    func created<E: CatalogRecord>(_ entity: E) {
        catalogChange(entity, .created, before: nil, after: entity.auditJSON)
    }

    func updated<E: CatalogRecord>(_ before: E, to after: E) {
        catalogChange(after, .updated, before: before.auditJSON, after: after.auditJSON)
    }

    func deleted<E: CatalogRecord>(_ entity: E) {
        catalogChange(entity, .deleted, before: entity.auditJSON, after: nil)
    }

    private func catalogChange<E: CatalogRecord>(_ entity: E, _ action: Stb_Common_V1_ChangeAction, before: JSONValue?, after: JSONValue?) {
        let actor = self.actor, actorID = self.actorID
        let key = entity.entityKey
        let state = entity.catalogEntity
        record(entity: E.entityName, key: key, action: action, before: before, after: after) { revision, atMs in
            var event = Stb_Catalog_V1_ChangeEvent()
            event.entity = E.entityName
            event.key = key
            event.action = action
            event.state = state
            event.actor = actor
            event.actorID = actorID
            event.atMs = atMs
            event.revision = revision
            return event.serializedBytes()
        }
    }
}
