import STBJSON
import STBMessages
import STBOptionValues

/// A project's own choices for one option: its inclusion and its value, each nil when the
/// catalog decides (`included_by_default`, the default value).
struct OptionSetting: Sendable, Hashable {
    var included: Bool?
    var value: JSONValue?

    var isEmpty: Bool { included == nil && value == nil }

    /// The setting as JSON (audit rows, versions, change requests).
    var json: JSONValue {
        var members: [String: JSONValue] = [:]
        if let included { members["included"] = .bool(included) }
        if let value { members["value"] = value }
        return .object(members)
    }

    init(included: Bool? = nil, value: JSONValue? = nil) {
        self.included = included
        self.value = value
    }

    init(json: JSONValue) {
        if case .bool(let included) = json["included"] ?? .null { self.included = included }
        if let value = json["value"], value != .null { self.value = value }
    }
}

/// A project's choices: by option key, only options it sets.
struct Draft: Sendable, Hashable {
    var settings: [String: OptionSetting] = [:]

    var json: JSONValue { .object(settings.mapValues(\.json)) }

    init(settings: [String: OptionSetting] = [:]) {
        self.settings = settings
    }

    init(json: JSONValue) {
        for (key, value) in json.objectValue ?? [:] {
            let setting = OptionSetting(json: value)
            if !setting.isEmpty { settings[key] = setting }
        }
    }

    /// The options the draft sets that `catalog` no longer has, sorted.
    func missing(in catalog: ProjectCatalog) -> [String] {
        settings.keys.filter { catalog.options[$0] == nil }.sorted()
    }

    /// The selection as the rules service takes it (options the catalog lacks left out).
    func ruleChoices(in catalog: ProjectCatalog) -> [Stb_Rules_V1_OptionChoice] {
        settings.keys.sorted().compactMap { key in
            guard catalog.options[key] != nil, let setting = settings[key] else { return nil }
            return Stb_Rules_V1_OptionChoice(key: key, included: setting.included, valueJson: setting.value.map(\.canonicalText))
        }
    }
}

extension Draft {
    /// The choices that take `base` (a selection the rules service evaluated) to this
    /// draft: a changed option's whole setting, and an empty choice (back to the catalog)
    /// for an option this draft no longer sets.
    func ruleChoices(in catalog: ProjectCatalog, from base: Draft) -> [Stb_Rules_V1_OptionChoice] {
        var choices: [Stb_Rules_V1_OptionChoice] = []
        for key in Set(settings.keys).union(base.settings.keys).sorted() where settings[key] != base.settings[key] {
            guard catalog.options[key] != nil else { continue }
            let setting = settings[key]
            choices.append(Stb_Rules_V1_OptionChoice(key: key, included: setting?.included, valueJson: setting?.value.map(\.canonicalText)))
        }
        return choices
    }
}

/// The effective configuration: every catalog option's inclusion and value, with where
/// each came from; its canonical form (RFC 8785 over the included options' values) and
/// that form's SHA-256 name the configuration.
struct EffectiveConfig: Sendable {
    struct Entry: Sendable {
        let included: Bool
        let includedOverridden: Bool
        let value: JSONValue
        let valueOverridden: Bool
    }

    let catalog: ProjectCatalog
    let draft: Draft
    let canonical: String
    let hash: [UInt8]

    init(catalog: ProjectCatalog, draft: Draft) {
        self.catalog = catalog
        self.draft = draft
        // Assembled in member order from the catalog's precomputed pieces; only the
        // project's own values are encoded here.
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        bytes.reserveCapacity(catalog.canonicalLayout.count * 24)
        var first = true
        for (key, prefix, defaultValue) in catalog.canonicalLayout {
            let setting = draft.settings[key]
            guard setting?.included ?? catalog.options[key]!.includedByDefault else { continue }
            if !first { bytes.append(UInt8(ascii: ",")) }
            first = false
            bytes.append(contentsOf: prefix)
            if let value = setting?.value {
                bytes.append(contentsOf: CanonicalJSON.text(value).utf8)
            } else {
                bytes.append(contentsOf: defaultValue)
            }
        }
        bytes.append(UInt8(ascii: "}"))
        self.canonical = String(decoding: bytes, as: UTF8.self)
        self.hash = SHA256.hash(bytes)
    }

    /// One option's effective state (nil for a key the catalog does not have).
    func entry(_ key: String) -> Entry? {
        guard let option = catalog.options[key] else { return nil }
        let setting = draft.settings[key]
        return Entry(
            included: setting?.included ?? option.includedByDefault, includedOverridden: setting?.included != nil,
            value: setting?.value ?? option.defaultValue, valueOverridden: setting?.value != nil)
    }

    /// Every option's effective state, by key.
    var entries: [String: Entry] {
        var entries: [String: Entry] = [:]
        entries.reserveCapacity(catalog.options.count)
        for key in catalog.options.keys { entries[key] = entry(key) }
        return entries
    }

    /// The included options' values read back from a canonical form.
    static func values(canonical: String) -> [String: JSONValue] {
        (try? JSONValue.parse(canonical))?.objectValue ?? [:]
    }
}
