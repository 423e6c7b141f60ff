import STBJSON
import STBMessages
import STBPostgres
import STBService

/// The kinds of catalog entity, as named in events, audit rows and import plans.
enum EntityKind: String, Sendable {
    case module, group, option, state, transition
}

typealias Module = Stb_Catalog_V1_Module
typealias Group = Stb_Catalog_V1_Group
typealias Option = Stb_Catalog_V1_Option
typealias State = Stb_Catalog_V1_State
typealias Transition = Stb_Catalog_V1_Transition

/// A catalog entity as stored: its kind, and its state as change events carry it.
protocol CatalogRecord: StoredEntity {
    static var kind: EntityKind { get }
    var catalogEntity: Stb_Catalog_V1_CatalogEntity { get }
}

extension CatalogRecord {
    public static var entityName: String { kind.rawValue }
}

extension Module: CatalogRecord {
    static let kind = EntityKind.module
    public static let table = "modules"
    public static let alias = "m"
    public static let columns = """
        m.id, m.key, m.name, m.description, m.active, m.initial_state, m.meta::text,
        (extract(epoch FROM m.created_at) * 1000)::int8, (extract(epoch FROM m.updated_at) * 1000)::int8
        """

    public init(row: PostgresRow) throws(PostgresError) {
        self.init()
        (id, key, name, description_p, active, initialState, metaJson, createdAtMs, updatedAtMs) = try row.decode(
            Int64.self, String.self, String.self, String.self, Bool.self, String.self, String.self, Int64.self, Int64.self)
    }

    public var entityKey: String { key }
    public var auditJSON: JSONValue {
        .object([
            "key": .string(key), "name": .string(name), "description": .string(description_p),
            "active": .bool(active), "initial_state": .string(initialState), "meta": Self.metaValue(metaJson),
        ])
    }
    var catalogEntity: Stb_Catalog_V1_CatalogEntity { .wrapping(.module(self)) }
}

extension Group: CatalogRecord {
    static let kind = EntityKind.group
    public static let table = "groups"
    public static let alias = "g"
    public static let joins = "JOIN modules m ON m.id = g.module_id"
    public static let columns = """
        g.id, m.key, g.key, g.name, g.description, g.position, g.meta::text,
        (extract(epoch FROM g.created_at) * 1000)::int8, (extract(epoch FROM g.updated_at) * 1000)::int8
        """

    public init(row: PostgresRow) throws(PostgresError) {
        self.init()
        (id, moduleKey, key, name, description_p, position, metaJson, createdAtMs, updatedAtMs) = try row.decode(
            Int64.self, String.self, String.self, String.self, String.self, Int32.self, String.self, Int64.self, Int64.self)
    }

    public var entityKey: String { "\(moduleKey)/\(key)" }
    public var auditJSON: JSONValue {
        .object([
            "module": .string(moduleKey), "key": .string(key), "name": .string(name),
            "description": .string(description_p), "position": .integer(Int64(position)), "meta": Module.metaValue(metaJson),
        ])
    }
    var catalogEntity: Stb_Catalog_V1_CatalogEntity { .wrapping(.group(self)) }
}

extension Option: CatalogRecord {
    static let kind = EntityKind.option
    public static let table = "options"
    public static let alias = "o"
    public static let joins = "JOIN groups g ON g.id = o.group_id JOIN modules m ON m.id = g.module_id"
    public static let columns = """
        o.id, m.key, g.key, o.key, o.name, o.description, o.type, o.default_value, o.editable,
        o.included_by_default, o.meta::text,
        (extract(epoch FROM o.created_at) * 1000)::int8, (extract(epoch FROM o.updated_at) * 1000)::int8
        """

    public init(row: PostgresRow) throws(PostgresError) {
        self.init()
        let typeName: String
        (id, moduleKey, groupKey, key, name, description_p, typeName, defaultValue, editable, includedByDefault, metaJson,
         createdAtMs, updatedAtMs) = try row.decode(
            Int64.self, String.self, String.self, String.self, String.self, String.self, String.self,
            String.self, Bool.self, Bool.self, String.self, Int64.self, Int64.self)
        type = Validation.optionType(named: typeName) ?? .unspecified
    }

    public var entityKey: String { key }
    public var auditJSON: JSONValue {
        .object([
            "module": .string(moduleKey), "group": .string(groupKey), "key": .string(key), "name": .string(name),
            "description": .string(description_p), "type": .string(Validation.typeName(type) ?? "unspecified"),
            "default": .string(defaultValue), "editable": .bool(editable),
            "included_by_default": .bool(includedByDefault), "meta": Module.metaValue(metaJson),
        ])
    }
    var catalogEntity: Stb_Catalog_V1_CatalogEntity { .wrapping(.option(self)) }
}

extension State: CatalogRecord {
    static let kind = EntityKind.state
    public static let table = "states"
    public static let alias = "s"
    public static let joins = "JOIN modules m ON m.id = s.module_id"
    public static let columns = "s.id, m.key, s.name, s.meta::text, (extract(epoch FROM s.created_at) * 1000)::int8"

    public init(row: PostgresRow) throws(PostgresError) {
        self.init()
        (id, moduleKey, name, metaJson, createdAtMs) = try row.decode(Int64.self, String.self, String.self, String.self, Int64.self)
    }

    public var entityKey: String { "\(moduleKey)/\(name)" }
    public var auditJSON: JSONValue {
        .object(["module": .string(moduleKey), "name": .string(name), "meta": Module.metaValue(metaJson)])
    }
    var catalogEntity: Stb_Catalog_V1_CatalogEntity { .wrapping(.state(self)) }
}

extension Transition: CatalogRecord {
    static let kind = EntityKind.transition
    public static let table = "transitions"
    public static let alias = "t"
    public static let joins = "JOIN modules m ON m.id = t.module_id"
    public static let columns = """
        t.id, m.key, t.from_state, t.event, t.to_state, coalesce(t.condition::text, ''), t.meta::text,
        (extract(epoch FROM t.created_at) * 1000)::int8, (extract(epoch FROM t.updated_at) * 1000)::int8
        """

    public init(row: PostgresRow) throws(PostgresError) {
        self.init()
        (id, moduleKey, fromState, event, toState, conditionJson, metaJson, createdAtMs, updatedAtMs) = try row.decode(
            Int64.self, String.self, String.self, String.self, String.self, String.self, String.self, Int64.self, Int64.self)
    }

    public var entityKey: String { "\(moduleKey)/\(fromState)/\(event)" }
    public var auditJSON: JSONValue {
        .object([
            "module": .string(moduleKey), "from": .string(fromState), "event": .string(event), "to": .string(toState),
            "condition": conditionJson.isEmpty ? .null : ((try? JSONValue.parse(conditionJson)) ?? .string(conditionJson)),
            "meta": Module.metaValue(metaJson),
        ])
    }
    var catalogEntity: Stb_Catalog_V1_CatalogEntity { .wrapping(.transition(self)) }
}

extension Module {
    static func metaValue(_ text: String) -> JSONValue {
        text.isEmpty ? .object([:]) : ((try? JSONValue.parse(text)) ?? .object([:]))
    }
}

extension Stb_Catalog_V1_CatalogEntity {
    static func wrapping(_ entity: OneOf_Entity) -> Self {
        var wrapper = Self()
        wrapper.entity = entity
        return wrapper
    }
}
