import STBJSON
import STBMessages
import STBOptionValues

/// The part of the catalog a project is built on: every option with its type, default,
/// constraints and place in the tree, read once per catalog revision.
struct ProjectCatalog: Sendable {
    struct Option: Sendable {
        let key: String
        let name: String
        let type: OptionValueType
        /// Typed: `.bool`, `.integer` or `.string` (`.null` when the stored default no
        /// longer reads).
        let defaultValue: JSONValue
        let includedByDefault: Bool
        let editable: Bool
        let constraints: OptionConstraints
        let metaJSON: String
    }

    struct Group: Sendable {
        let key: String
        let name: String
        let optionKeys: [String]
    }

    struct Module: Sendable {
        let key: String
        let name: String
        let groups: [Group]
    }

    let revision: UInt64
    let options: [String: Option]
    let modules: [Module]
    /// Option keys in RFC 8785 member order (by UTF-16 code units), each with its member
    /// prefix (`"key":`) and its default value, both in canonical form: a configuration's
    /// canonical text is assembled from these without sorting or re-encoding.
    let canonicalLayout: [(key: String, prefix: [UInt8], defaultValue: [UInt8])]

    init(_ configuration: Stb_Catalog_V1_GetConfigResponse) {
        var options: [String: Option] = [:]
        var modules: [Module] = []
        for entry in configuration.modules {
            guard let module = entry.module else { continue }
            var groups: [Group] = []
            for group in entry.groups {
                var keys: [String] = []
                for option in group.options {
                    let type: OptionValueType = switch option.type {
                    case .boolean: .boolean
                    case .integer: .integer
                    case .enum: .enum
                    default: .string
                    }
                    let value = (try? type.parse(option.defaultValue).json) ?? .null
                    let meta = (try? JSONValue.parse(option.metaJson.isEmpty ? "{}" : option.metaJson)) ?? .object([:])
                    options[option.key] = Option(
                        key: option.key, name: option.name, type: type, defaultValue: value,
                        includedByDefault: option.includedByDefault, editable: option.editable,
                        constraints: OptionConstraints.parse(type: type, meta: meta).0,
                        metaJSON: option.metaJson.isEmpty ? "{}" : option.metaJson)
                    keys.append(option.key)
                }
                groups.append(Group(key: group.group?.key ?? "", name: group.group?.name ?? "", optionKeys: keys))
            }
            modules.append(Module(key: module.key, name: module.name, groups: groups))
        }
        self.revision = configuration.revision
        self.options = options
        self.modules = modules
        self.canonicalLayout = options.keys.sorted { $0.utf16.lexicographicallyPrecedes($1.utf16) }.map { key in
            var prefix = Array(CanonicalJSON.text(.string(key)).utf8)
            prefix.append(UInt8(ascii: ":"))
            return (key, prefix, Array(CanonicalJSON.text(options[key]!.defaultValue).utf8))
        }
    }
}
