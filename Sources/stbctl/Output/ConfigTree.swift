import STBJSON
import STBMessages

/// The assembled catalog (`GetConfig`) as an indented tree for people, or as one JSON
/// document for scripts.
struct ConfigTree {
    let config: Stb_Catalog_V1_GetConfigResponse

    // MARK: - Text

    var text: String {
        let options = config.modules.flatMap { $0.groups.flatMap(\.options) }
        let keyWidth = options.map(\.key.count).max() ?? 0
        let typeWidth = options.map(\.type.name.count).max() ?? 0
        let defaultWidth = options.map { Self.defaultColumn($0).count }.max() ?? 0

        var lines = ["catalog revision \(config.revision)"]
        for (index, entry) in config.modules.enumerated() {
            if index > 0 { lines.append("") }
            let module = entry.module ?? .init()
            var status = [module.active ? "active" : "inactive"]
            if !module.initialState.isEmpty { status.append("initial state \(module.initialState)") }
            lines.append("\(module.key)  \(module.name) (\(status.joined(separator: ", ")))")

            for groupEntry in entry.groups {
                let group = groupEntry.group ?? .init()
                lines.append("  \(group.key)  \(group.name)".trimmingTrailingSpaces())
                for option in groupEntry.options {
                    var columns = [
                        option.key.padding(to: keyWidth), option.type.name.padding(to: typeWidth),
                        Self.defaultColumn(option).padding(to: defaultWidth),
                    ]
                    columns += Self.constraints(option.metaJson)
                    lines.append("    " + columns.joined(separator: "  ").trimmingTrailingSpaces())
                }
            }
            if !entry.states.isEmpty {
                lines.append("  states: " + entry.states.map(\.name).joined(separator: ", "))
            }
            let indent = String(repeating: " ", count: "  transitions: ".count)
            for (index, transition) in entry.transitions.enumerated() {
                var line = "\(transition.fromState) --\(transition.event)--> \(transition.toState)"
                if !transition.conditionJson.isEmpty { line += "  when \(JSONValue.compact(transition.conditionJson))" }
                lines.append((index == 0 ? "  transitions: " : indent) + line)
            }
        }
        return lines.joined(separator: "\n")
    }

    private static func defaultColumn(_ option: Stb_Catalog_V1_Option) -> String {
        "default \(shown(option.defaultValue))"
    }

    /// A default value as text: quoted when empty or holding spaces, so it stays one word.
    static func shown(_ value: String) -> String {
        value.isEmpty || value.contains(where: \.isWhitespace) ? JSONValue.string(value).rendered() : value
    }

    /// The constraints in an option's meta: `[a, b]` for `values`, `min..max` (and
    /// `step N`), `max_length N`, `pattern RE`.
    static func constraints(_ metaJson: String) -> [String] {
        guard let meta = (try? JSONValue.parse(metaJson))?.objectValue else { return [] }
        var parts: [String] = []
        if case .array(let values) = meta["values"] {
            parts.append("[" + values.map(\.plainText).joined(separator: ", ") + "]")
        }
        if meta["min"] != nil || meta["max"] != nil {
            var range = "\(meta["min"]?.plainText ?? "")..\(meta["max"]?.plainText ?? "")"
            if let step = meta["step"] { range += " step \(step.plainText)" }
            parts.append(range)
        }
        if let maxLength = meta["max_length"] { parts.append("max_length \(maxLength.plainText)") }
        if let pattern = meta["pattern"] { parts.append("pattern \(pattern.plainText)") }
        return parts
    }

    // MARK: - JSON

    /// `{revision, cursor, modules: [module fields + groups: [group fields + options], states, transitions]}`.
    var json: JSONValue {
        let modules = config.modules.map { entry -> JSONValue in
            var module = Record(entry.module ?? .init()).json
            module["groups"] = .array(
                entry.groups.map { groupEntry in
                    var group = Record(groupEntry.group ?? .init()).json
                    group["options"] = .array(groupEntry.options.map { .object(Record($0).json) })
                    return .object(group)
                })
            module["states"] = .array(entry.states.map { .object(Record($0).json) })
            module["transitions"] = .array(entry.transitions.map { .object(Record($0).json) })
            return .object(module)
        }
        return ["revision": .number(config.revision), "cursor": .string(config.cursor), "modules": .array(modules)]
    }
}
