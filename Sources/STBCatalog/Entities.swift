import STBJSON
import STBMessages
import STBPostgres

/// The kinds of catalog entity, as named in events, audit rows and import plans.
enum EntityKind: String, Sendable {
    case module, group, option, state, transition
}

typealias Module = Stb_Catalog_V1_Module
typealias Group = Stb_Catalog_V1_Group
typealias Option = Stb_Catalog_V1_Option
typealias State = Stb_Catalog_V1_State
typealias Transition = Stb_Catalog_V1_Transition

/// How each entity is keyed in events, audit rows and plans, and shown as JSON.
extension Module {
    var entityKey: String { key }
    var json: JSONValue {
        .object([
            "key": .string(key), "name": .string(name), "description": .string(description_p),
            "active": .bool(active), "initial_state": .string(initialState), "meta": Self.metaValue(metaJson),
        ])
    }
    var catalogEntity: Stb_Catalog_V1_CatalogEntity { .wrapping(.module(self)) }
}

extension Group {
    var entityKey: String { "\(moduleKey)/\(key)" }
    var json: JSONValue {
        .object([
            "module": .string(moduleKey), "key": .string(key), "name": .string(name),
            "description": .string(description_p), "position": .integer(Int64(position)), "meta": Module.metaValue(metaJson),
        ])
    }
    var catalogEntity: Stb_Catalog_V1_CatalogEntity { .wrapping(.group(self)) }
}

extension Option {
    var entityKey: String { key }
    var json: JSONValue {
        .object([
            "module": .string(moduleKey), "group": .string(groupKey), "key": .string(key), "name": .string(name),
            "description": .string(description_p), "type": .string(Validation.typeName(type) ?? "unspecified"),
            "default": .string(defaultValue), "editable": .bool(editable),
            "included_by_default": .bool(includedByDefault), "meta": Module.metaValue(metaJson),
        ])
    }
    var catalogEntity: Stb_Catalog_V1_CatalogEntity { .wrapping(.option(self)) }
}

extension State {
    var entityKey: String { "\(moduleKey)/\(name)" }
    var json: JSONValue {
        .object(["module": .string(moduleKey), "name": .string(name), "meta": Module.metaValue(metaJson)])
    }
    var catalogEntity: Stb_Catalog_V1_CatalogEntity { .wrapping(.state(self)) }
}

extension Transition {
    var entityKey: String { "\(moduleKey)/\(fromState)/\(event)" }
    var json: JSONValue {
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

// MARK: - Reading rows

/// SELECT lists and row decoders for each entity, shared by every query that loads one.
enum Columns {
    static let module = """
        m.id, m.key, m.name, m.description, m.active, m.initial_state, m.meta::text,
        (extract(epoch FROM m.created_at) * 1000)::int8, (extract(epoch FROM m.updated_at) * 1000)::int8
        """
    static let group = """
        g.id, m.key, g.key, g.name, g.description, g.position, g.meta::text,
        (extract(epoch FROM g.created_at) * 1000)::int8, (extract(epoch FROM g.updated_at) * 1000)::int8
        """
    static let option = """
        o.id, m.key, g.key, o.key, o.name, o.description, o.type, o.default_value, o.editable,
        o.included_by_default, o.meta::text,
        (extract(epoch FROM o.created_at) * 1000)::int8, (extract(epoch FROM o.updated_at) * 1000)::int8
        """
    static let state = """
        s.id, m.key, s.name, s.meta::text, (extract(epoch FROM s.created_at) * 1000)::int8
        """
    static let transition = """
        t.id, m.key, t.from_state, t.event, t.to_state, coalesce(t.condition::text, ''), t.meta::text,
        (extract(epoch FROM t.created_at) * 1000)::int8, (extract(epoch FROM t.updated_at) * 1000)::int8
        """

    static func module(_ row: PostgresRow) throws -> Module {
        var module = Module()
        (module.id, module.key, module.name, module.description_p, module.active, module.initialState, module.metaJson,
         module.createdAtMs, module.updatedAtMs) = try row.decode(
            Int64.self, String.self, String.self, String.self, Bool.self, String.self, String.self, Int64.self, Int64.self)
        return module
    }

    static func group(_ row: PostgresRow) throws -> Group {
        var group = Group()
        (group.id, group.moduleKey, group.key, group.name, group.description_p, group.position, group.metaJson,
         group.createdAtMs, group.updatedAtMs) = try row.decode(
            Int64.self, String.self, String.self, String.self, String.self, Int32.self, String.self, Int64.self, Int64.self)
        return group
    }

    static func option(_ row: PostgresRow) throws -> Option {
        var option = Option()
        let type: String
        (option.id, option.moduleKey, option.groupKey, option.key, option.name, option.description_p, type,
         option.defaultValue, option.editable, option.includedByDefault, option.metaJson,
         option.createdAtMs, option.updatedAtMs) = try row.decode(
            Int64.self, String.self, String.self, String.self, String.self, String.self, String.self,
            String.self, Bool.self, Bool.self, String.self, Int64.self, Int64.self)
        option.type = Validation.optionType(named: type) ?? .unspecified
        return option
    }

    static func state(_ row: PostgresRow) throws -> State {
        var state = State()
        (state.id, state.moduleKey, state.name, state.metaJson, state.createdAtMs) = try row.decode(
            Int64.self, String.self, String.self, String.self, Int64.self)
        return state
    }

    static func transition(_ row: PostgresRow) throws -> Transition {
        var transition = Transition()
        (transition.id, transition.moduleKey, transition.fromState, transition.event, transition.toState,
         transition.conditionJson, transition.metaJson, transition.createdAtMs, transition.updatedAtMs) = try row.decode(
            Int64.self, String.self, String.self, String.self, String.self, String.self, String.self, Int64.self, Int64.self)
        return transition
    }
}
