import STBJSON
import STBMessages
import STBService

/// The catalog's changes are recorded in a `ChangeLog` on `catalog_revision`, each with a
/// `ChangeEvent` carrying the entity's new state (its old one, for a deletion).
typealias ChangeSet = ChangeLog

extension ChangeLog {
    func created(_ kind: EntityKind, _ key: String, after: JSONValue, state: Stb_Catalog_V1_CatalogEntity) {
        catalogChange(kind, key, .created, before: nil, after: after, state: state)
    }

    func updated(_ kind: EntityKind, _ key: String, before: JSONValue, after: JSONValue, state: Stb_Catalog_V1_CatalogEntity) {
        catalogChange(kind, key, .updated, before: before, after: after, state: state)
    }

    func deleted(_ kind: EntityKind, _ key: String, before: JSONValue, state: Stb_Catalog_V1_CatalogEntity) {
        catalogChange(kind, key, .deleted, before: before, after: nil, state: state)
    }

    private func catalogChange(
        _ kind: EntityKind, _ key: String, _ action: Stb_Common_V1_ChangeAction,
        before: JSONValue?, after: JSONValue?, state: Stb_Catalog_V1_CatalogEntity
    ) {
        let actor = self.actor
        record(entity: kind.rawValue, key: key, action: action, before: before, after: after) { revision, atMs in
            var event = Stb_Catalog_V1_ChangeEvent()
            event.entity = kind.rawValue
            event.key = key
            event.action = action
            event.state = state
            event.actor = actor
            event.atMs = atMs
            event.revision = revision
            return event.serializedBytes()
        }
    }
}
