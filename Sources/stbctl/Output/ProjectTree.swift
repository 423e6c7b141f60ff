import STBJSON
import STBMessages

/// A project's effective configuration (`GetProjectConfig`, with the project from
/// `GetProject`) as an indented tree for people, or as one JSON document for scripts.
struct ProjectTree {
    let project: Stb_Project_V1_Project
    let config: Stb_Project_V1_ProjectConfig
    /// Only the options the project sets (inclusion or value).
    var onlySet = false

    // MARK: - Text

    var text: String {
        let errors = config.violations.filter { $0.severity != .warning }.count
        let warnings = config.violations.count - errors
        var validity = config.valid ? "valid" : "invalid: \(RulesCheck.count(errors, "error"))"
        if warnings > 0 { validity += ", \(RulesCheck.count(warnings, "warning"))" }
        var lines = [
            "project \(project.key)  \(project.name) (\(roleText)\(project.archived ? ", archived" : ""))",
            "draft: \(validity); hash \(hexText(config.hash_p))",
            "latest version \(project.latestVersion == 0 ? "none" : "\(project.latestVersion)"); catalog revision \(config.catalogRevision), rules revision \(config.rulesRevision)",
        ]
        let shown = config.modules.flatMap { $0.groups.flatMap(\.options) }.filter(isShown)
        let keyWidth = shown.map(\.key.count).max() ?? 0
        let typeWidth = shown.map(\.type.count).max() ?? 0
        let valueWidth = shown.map { Self.valueColumn($0).count }.max() ?? 0
        for module in config.modules {
            let groups = module.groups.filter { $0.options.contains(where: isShown) }
            guard !groups.isEmpty else { continue }
            lines.append("")
            lines.append("\(module.key)  \(module.name)".trimmingTrailingSpaces())
            for group in groups {
                lines.append("  \(group.key)  \(group.name)".trimmingTrailingSpaces())
                for option in group.options where isShown(option) {
                    let columns = [
                        option.key.padding(to: keyWidth), option.type.padding(to: typeWidth),
                        Self.valueColumn(option).padding(to: valueWidth), Self.sourceColumn(option),
                    ]
                    lines.append("    " + columns.joined(separator: "  ").trimmingTrailingSpaces())
                }
            }
        }
        if onlySet && shown.isEmpty {
            lines.append("")
            lines.append("no overrides: every option follows the catalog")
        }
        if !config.violations.isEmpty {
            lines.append("")
            lines.append("violations:")
            lines += config.violations.flatMap(\.lines).map { "  \($0)" }
        }
        if !config.missingOptions.isEmpty {
            lines.append("")
            lines.append("options the catalog no longer has: \(config.missingOptions.joined(separator: ", "))")
        }
        return lines.joined(separator: "\n")
    }

    /// `role owner`; an admin who is not a member sees the project all the same.
    private var roleText: String {
        project.myRole == .unspecified ? "not a member" : "role \(project.myRole.name)"
    }

    private func isShown(_ option: Stb_Project_V1_ProjectOption) -> Bool {
        !onlySet || option.valueSource == .override || option.includedSource == .override
    }

    /// The effective value as JSON when the option is included; `n` when it is not
    /// (Kconfig's word for a symbol left out).
    static func valueColumn(_ option: Stb_Project_V1_ProjectOption) -> String {
        guard option.included else { return "n" }
        return option.valueJson.isEmpty ? "y" : JSONValue.compact(option.valueJson)
    }

    /// Where the inclusion and the value come from: `default`, or what the project set.
    static func sourceColumn(_ option: Stb_Project_V1_ProjectOption) -> String {
        var parts: [String] = []
        if option.includedSource == .override { parts.append(option.included ? "included" : "excluded") }
        if option.valueSource == .override {
            parts.append("override (default \(JSONValue.compact(option.defaultJson)))")
        }
        if !option.editable { parts.append("fixed") }
        return parts.isEmpty ? "default" : parts.joined(separator: ", ")
    }

    // MARK: - JSON

    /// `{project, hash, valid, violations, missing_options, catalog_revision,
    /// rules_revision, config (the canonical configuration), modules: [… groups: [… options]]}`.
    var json: JSONValue {
        let modules = config.modules.map { module -> JSONValue in
            let groups = module.groups.compactMap { group -> JSONValue? in
                let options = group.options.filter(isShown)
                guard !options.isEmpty || !onlySet else { return nil }
                return [
                    "key": .string(group.key), "name": .string(group.name),
                    "options": .array(options.map(Self.json)),
                ]
            }
            return ["key": .string(module.key), "name": .string(module.name), "groups": .array(groups)]
        }
        return [
            "project": .object(Record(project).json),
            "hash": .string(hexText(config.hash_p)),
            "valid": .bool(config.valid),
            "violations": .array(config.violations.map(\.json)),
            "missing_options": .array(config.missingOptions.map(JSONValue.string)),
            "catalog_revision": .number(config.catalogRevision),
            "rules_revision": .number(config.rulesRevision),
            "config": (try? JSONValue.parse(config.canonicalJson)) ?? .null,
            "modules": .array(modules),
        ]
    }

    static func json(_ option: Stb_Project_V1_ProjectOption) -> JSONValue {
        let parsed = { (text: String) -> JSONValue in text.isEmpty ? .null : ((try? JSONValue.parse(text)) ?? .string(text)) }
        return [
            "key": .string(option.key), "name": .string(option.name), "type": .string(option.type),
            "included": .bool(option.included), "included_source": .string(option.includedSource.name),
            "value": parsed(option.valueJson), "value_source": .string(option.valueSource.name),
            "default": parsed(option.defaultJson), "editable": .bool(option.editable),
            "meta": option.metaJson.isEmpty ? Record.emptyMeta : parsed(option.metaJson),
        ]
    }
}
