import STBJSON
import Foundation
import STBMessages

/// An entity's fields in order, rendered as `name: value` lines for people or as a JSON
/// object for scripts. Field names are the proto's; JSON-text fields (`meta_json`,
/// `condition_json`) appear parsed under their name without `_json`, and timestamps as
/// ISO 8601 for people and as Unix milliseconds (`*_ms`) in JSON.
struct Record {
    struct Field {
        let name: String
        let text: String
        let jsonName: String
        let json: JSONValue
    }

    private(set) var fields: [Field] = []

    mutating func add(_ name: String, _ value: String) {
        fields.append(Field(name: name, text: value, jsonName: name, json: .string(value)))
    }

    mutating func add(_ name: String, _ value: some BinaryInteger) {
        fields.append(Field(name: name, text: "\(value)", jsonName: name, json: .number(value)))
    }

    mutating func add(_ name: String, _ value: Bool) {
        fields.append(Field(name: name, text: value ? "true" : "false", jsonName: name, json: .bool(value)))
    }

    /// A JSON-text field: `meta_json` becomes `meta`. Empty text means `empty` (`{}` for
    /// meta, nothing for a condition).
    mutating func add(json name: String, _ text: String, emptyMeans empty: JSONValue) {
        let shortName = name.hasSuffix("_json") ? String(name.dropLast(5)) : name
        if text.isEmpty {
            let shown = empty == .null ? "(none)" : empty.rendered()
            fields.append(Field(name: shortName, text: shown, jsonName: shortName, json: empty))
        } else {
            // Text that is not JSON (the server should never send it) is shown as it is.
            let value = (try? JSONValue.parse(text)) ?? .string(text)
            fields.append(Field(name: shortName, text: JSONValue.compact(text), jsonName: shortName, json: value))
        }
    }

    /// A `*_at_ms` timestamp: `created_at` for people, `created_at_ms` in JSON.
    mutating func add(time name: String, _ milliseconds: Int64) {
        let shortName = name.hasSuffix("_ms") ? String(name.dropLast(3)) : name
        fields.append(Field(name: shortName, text: Self.timestamp(milliseconds), jsonName: name, json: .number(milliseconds)))
    }

    /// `name: value` lines.
    var text: String {
        fields.map { $0.text.isEmpty ? "\($0.name):" : "\($0.name): \($0.text)" }.joined(separator: "\n")
    }

    /// The fields as a JSON object.
    var json: [String: JSONValue] {
        var object: [String: JSONValue] = [:]
        for field in fields { object[field.jsonName] = field.json }
        return object
    }

    /// ISO 8601 in UTC with milliseconds; `-` for an unset (zero) time.
    static func timestamp(_ milliseconds: Int64) -> String {
        guard milliseconds != 0 else { return "-" }
        let date = Date(timeIntervalSince1970: Double(milliseconds) / 1000)
        return date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}

// MARK: - The catalog's entities

extension Record {
    /// What an empty `meta_json` stands for.
    static let emptyMeta: JSONValue = [:]

    init(_ module: Stb_Catalog_V1_Module) {
        add("id", module.id)
        add("key", module.key)
        add("name", module.name)
        add("description", module.description_p)
        add("active", module.active)
        add("initial_state", module.initialState)
        add(json: "meta_json", module.metaJson, emptyMeans: Self.emptyMeta)
        add(time: "created_at_ms", module.createdAtMs)
        add(time: "updated_at_ms", module.updatedAtMs)
    }

    init(_ group: Stb_Catalog_V1_Group) {
        add("id", group.id)
        add("module_key", group.moduleKey)
        add("key", group.key)
        add("name", group.name)
        add("description", group.description_p)
        add("position", group.position)
        add(json: "meta_json", group.metaJson, emptyMeans: Self.emptyMeta)
        add(time: "created_at_ms", group.createdAtMs)
        add(time: "updated_at_ms", group.updatedAtMs)
    }

    init(_ option: Stb_Catalog_V1_Option) {
        add("id", option.id)
        add("key", option.key)
        add("module_key", option.moduleKey)
        add("group_key", option.groupKey)
        add("name", option.name)
        add("description", option.description_p)
        add("type", option.type.name)
        add("default_value", option.defaultValue)
        add("editable", option.editable)
        add("included_by_default", option.includedByDefault)
        add(json: "meta_json", option.metaJson, emptyMeans: Self.emptyMeta)
        add(time: "created_at_ms", option.createdAtMs)
        add(time: "updated_at_ms", option.updatedAtMs)
    }

    init(_ state: Stb_Catalog_V1_State) {
        add("id", state.id)
        add("module_key", state.moduleKey)
        add("name", state.name)
        add(json: "meta_json", state.metaJson, emptyMeans: Self.emptyMeta)
        add(time: "created_at_ms", state.createdAtMs)
    }

    init(_ transition: Stb_Catalog_V1_Transition) {
        add("id", transition.id)
        add("module_key", transition.moduleKey)
        add("from_state", transition.fromState)
        add("event", transition.event)
        add("to_state", transition.toState)
        add(json: "condition_json", transition.conditionJson, emptyMeans: .null)
        add(json: "meta_json", transition.metaJson, emptyMeans: Self.emptyMeta)
        add(time: "created_at_ms", transition.createdAtMs)
        add(time: "updated_at_ms", transition.updatedAtMs)
    }

    init?(_ entity: Stb_Catalog_V1_CatalogEntity?) {
        switch entity?.entity {
        case .module(let module): self.init(module)
        case .group(let group): self.init(group)
        case .option(let option): self.init(option)
        case .state(let state): self.init(state)
        case .transition(let transition): self.init(transition)
        case nil: return nil
        }
    }
}

extension Stb_Catalog_V1_OptionType {
    /// The name used on the command line and in the seed format: `boolean`, `integer`, …
    var name: String {
        switch self {
        case .unspecified: "unspecified"
        case .boolean: "boolean"
        case .integer: "integer"
        case .string: "string"
        case .enum: "enum"
        case .unrecognized(let value): "type_\(value)"
        }
    }
}

/// Paths that name entities by key, as the catalog writes them in plans and events.
extension Stb_Catalog_V1_Group {
    var path: String { "\(moduleKey)/\(key)" }
}

extension Stb_Catalog_V1_Option {
    var groupPath: String { "\(moduleKey)/\(groupKey)" }
}

extension Stb_Catalog_V1_State {
    var path: String { "\(moduleKey)/\(name)" }
}

extension Stb_Catalog_V1_Transition {
    var path: String { "\(moduleKey)/\(fromState)/\(event)" }
}
