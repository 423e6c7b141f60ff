import STBJSON
import Glibc
import Logging
import STBMessages
import STBOptionValues
import STBPostgres
import STBRPC
import STBService

// MARK: - Planning

extension SeedImporter {
    /// The catalog as it is.
    struct Catalog: Sendable {
        var modules: [Module] = []
        var groups: [Group] = []
        var options: [Option] = []
        var states: [State] = []
        var transitions: [Transition] = []
    }

    struct Update<Entity> {
        /// The stored entity.
        var before: Entity
        /// What the document wants, with the stored entity's id and timestamps.
        var after: Entity
    }

    /// What happens to the entities of one kind.
    struct Changes<Entity> {
        /// In document order.
        var created: [Entity] = []
        var updated: [Update<Entity>] = []
        /// Only with `prune`: stored entities the document does not mention, by id.
        var deleted: [Entity] = []
        var unchanged = 0

        var count: Int { created.count + updated.count + deleted.count }
    }

    struct Plan {
        var modules = Changes<Module>()
        var groups = Changes<Group>()
        var options = Changes<Option>()
        var states = Changes<State>()
        var transitions = Changes<Transition>()

        var created: Int { modules.created.count + groups.created.count + options.created.count + states.created.count + transitions.created.count }
        var updated: Int { modules.updated.count + groups.updated.count + options.updated.count + states.updated.count + transitions.updated.count }
        var deleted: Int { modules.deleted.count + groups.deleted.count + options.deleted.count + states.deleted.count + transitions.deleted.count }
        var unchanged: Int { modules.unchanged + groups.unchanged + options.unchanged + states.unchanged + transitions.unchanged }
        var isEmpty: Bool { created == 0 && updated == 0 && deleted == 0 }

        /// "created 12, updated 0, deleted 0, unchanged 85"
        var summary: String { "created \(created), updated \(updated), deleted \(deleted), unchanged \(unchanged)" }

        static func summaryText(of plan: Stb_Catalog_V1_ImportPlan) -> String {
            "created \(plan.created.count), updated \(plan.updated.count), deleted \(plan.deleted.count), unchanged \(plan.unchanged)"
        }

        /// As the API reports it: created and updated parents first, deleted children first.
        var message: Stb_Catalog_V1_ImportPlan {
            func items<E: SeedEntity>(_ entities: [E]) -> [Stb_Catalog_V1_PlanItem] {
                entities.map { Stb_Catalog_V1_PlanItem(entity: E.kind.rawValue, key: $0.entityKey) }
            }
            var plan = Stb_Catalog_V1_ImportPlan()
            plan.created = items(modules.created) + items(groups.created) + items(options.created) + items(states.created) + items(transitions.created)
            plan.updated = items(modules.updated.map(\.after)) + items(groups.updated.map(\.after)) + items(options.updated.map(\.after))
                + items(states.updated.map(\.after)) + items(transitions.updated.map(\.after))
            plan.deleted = items(transitions.deleted) + items(states.deleted) + items(options.deleted) + items(groups.deleted) + items(modules.deleted)
            plan.unchanged = UInt32(clamping: unchanged)
            return plan
        }
    }

    /// Compares a document with the catalog by key: an entity is unchanged when its
    /// `auditJSON` form is the same, else updated (an option elsewhere is moved); with
    /// `prune`, stored entities the document does not mention are deleted.
    static func plan(_ document: Document, current: Catalog, prune: Bool) -> Plan {
        var plan = Plan()
        plan.modules = diff(document.modules, current.modules, prune: prune)
        plan.groups = diff(document.groups, current.groups, prune: prune)
        plan.options = diff(document.options, current.options, prune: prune)
        plan.states = diff(document.states, current.states, prune: prune)
        plan.transitions = diff(document.transitions, current.transitions, prune: prune)
        return plan
    }

    private static func diff<E: SeedEntity>(_ wanted: [E], _ current: [E], prune: Bool) -> Changes<E> {
        var changes = Changes<E>()
        var stored: [String: Int] = [:]
        stored.reserveCapacity(current.count)
        for (index, entity) in current.enumerated() { stored[entity.entityKey] = index }
        var mentioned = Set<String>()
        mentioned.reserveCapacity(wanted.count)
        var cache = JSONTextCache()
        for var entity in wanted {
            let key = entity.entityKey
            mentioned.insert(key)
            guard let index = stored[key] else {
                changes.created.append(entity)
                continue
            }
            let before = current[index]
            // The field-by-field check settles the common case cheaply; `auditJSON` decides the rest.
            if entity.matches(stored: before, cache: &cache) || before.auditJSON == entity.auditJSON {
                changes.unchanged += 1
            } else {
                entity.adoptIdentity(of: before)
                changes.updated.append(Update(before: before, after: entity))
            }
        }
        if prune {
            changes.deleted = current.filter { !mentioned.contains($0.entityKey) }
        }
        return changes
    }
}

/// What planning and applying need of each entity type.
protocol SeedEntity: CatalogRecord {
    /// Takes the stored entity's id and timestamps.
    mutating func adoptIdentity(of stored: Self)
    /// True when every field `auditJSON` shows is the same as the stored entity's, with JSON
    /// texts compared by value (parsed once per distinct text). A quick path only: when
    /// it says false, `auditJSON` decides. Keep it in step with `auditJSON` (the tests check the
    /// fields `auditJSON` shows).
    func matches(stored: Self, cache: inout JSONTextCache) -> Bool
}

/// Parsed JSON texts (meta, conditions), by text: catalogs repeat the same few metas.
struct JSONTextCache {
    private var meta: [String: JSONValue] = [:]
    private var conditions: [String: JSONValue] = [:]

    /// As `Module.metaValue`: empty or invalid text is `{}`.
    mutating func sameMeta(_ a: String, _ b: String) -> Bool {
        a == b || metaValue(a) == metaValue(b)
    }

    /// As `Transition.auditJSON` shows a condition: empty is null, invalid text a string.
    mutating func sameCondition(_ a: String, _ b: String) -> Bool {
        a == b || conditionValue(a) == conditionValue(b)
    }

    private mutating func metaValue(_ text: String) -> JSONValue {
        if let value = meta[text] { return value }
        let value = Module.metaValue(text)
        meta[text] = value
        return value
    }

    private mutating func conditionValue(_ text: String) -> JSONValue {
        if text.isEmpty { return .null }
        if let value = conditions[text] { return value }
        let value = (try? JSONValue.parse(text)) ?? .string(text)
        conditions[text] = value
        return value
    }
}

/// Entities with both timestamps take the stored id and both.
protocol UpdatableRecord {
    var id: Int64 { get set }
    var createdAtMs: Int64 { get set }
    var updatedAtMs: Int64 { get set }
}

extension SeedEntity where Self: UpdatableRecord {
    mutating func adoptIdentity(of stored: Self) {
        id = stored.id
        createdAtMs = stored.createdAtMs
        updatedAtMs = stored.updatedAtMs
    }
}

extension Module: SeedEntity, UpdatableRecord {
    func matches(stored: Self, cache: inout JSONTextCache) -> Bool {
        key == stored.key && name == stored.name && description_p == stored.description_p && active == stored.active
            && initialState == stored.initialState && cache.sameMeta(metaJson, stored.metaJson)
    }
}

extension Group: SeedEntity, UpdatableRecord {
    func matches(stored: Self, cache: inout JSONTextCache) -> Bool {
        moduleKey == stored.moduleKey && key == stored.key && name == stored.name && description_p == stored.description_p
            && position == stored.position && cache.sameMeta(metaJson, stored.metaJson)
    }
}

extension Option: SeedEntity, UpdatableRecord {
    func matches(stored: Self, cache: inout JSONTextCache) -> Bool {
        moduleKey == stored.moduleKey && groupKey == stored.groupKey && key == stored.key && name == stored.name
            && description_p == stored.description_p && type == stored.type && defaultValue == stored.defaultValue
            && editable == stored.editable && includedByDefault == stored.includedByDefault
            && cache.sameMeta(metaJson, stored.metaJson)
    }
}

extension State: SeedEntity {
    func matches(stored: Self, cache: inout JSONTextCache) -> Bool {
        moduleKey == stored.moduleKey && name == stored.name && cache.sameMeta(metaJson, stored.metaJson)
    }
    mutating func adoptIdentity(of stored: Self) {
        id = stored.id
        createdAtMs = stored.createdAtMs
    }
}

extension Transition: SeedEntity, UpdatableRecord {
    func matches(stored: Self, cache: inout JSONTextCache) -> Bool {
        moduleKey == stored.moduleKey && fromState == stored.fromState && event == stored.event && toState == stored.toState
            && cache.sameCondition(conditionJson, stored.conditionJson) && cache.sameMeta(metaJson, stored.metaJson)
    }
}
