// The part of the catalog the rules engine needs: options with their defaults, module state machines.
// Plain values; the service converts them from the catalog's GetConfig answer.
import STBJSON
import STBJSONLogic
import STBOptionValues

public enum OptionType: String, Sendable, Hashable, CaseIterable {
    case boolean
    case integer
    case string
    case `enum`

    /// The same type, as the option-value library names it.
    public var valueType: OptionValueType { OptionValueType(rawValue: rawValue)! }
}

public struct OptionInfo: Sendable, Hashable {
    public var key: String
    public var module: String
    public var type: OptionType
    /// Typed: `.bool`, `.integer` or `.string`.
    public var defaultValue: JSONValue
    public var includedByDefault: Bool
    /// What the option's meta allows, read once per catalog copy; the values a selection
    /// gives are checked against it.
    public var constraints: OptionConstraints

    public init(key: String, module: String, type: OptionType, defaultValue: JSONValue, includedByDefault: Bool, constraints: OptionConstraints? = nil) {
        self.key = key
        self.module = module
        self.type = type
        self.defaultValue = defaultValue
        self.includedByDefault = includedByDefault
        self.constraints = constraints ?? OptionConstraints(type: type.valueType)
    }
}

public struct TransitionInfo: Sendable {
    public var from: String
    public var event: String
    public var to: String
    public var condition: JSONLogic?
    /// The condition's source text, for messages (`conditionFailed`).
    public var conditionText: String?

    public init(from: String, event: String, to: String, condition: JSONLogic? = nil, conditionText: String? = nil) {
        self.from = from
        self.event = event
        self.to = to
        self.condition = condition
        self.conditionText = conditionText
    }

    /// Compiles the condition from its JSON (null or absent = unconditional).
    public init(from: String, event: String, to: String, conditionJSON: JSONValue?) throws(JSONLogicError) {
        var logic: JSONLogic?
        var text: String?
        if let conditionJSON, conditionJSON != .null {
            logic = try JSONLogic(conditionJSON)
            text = conditionJSON.canonicalText
        }
        self.init(from: from, event: event, to: to, condition: logic, conditionText: text)
    }
}

public struct ModuleInfo: Sendable {
    public var key: String
    public var transitions: [TransitionInfo]

    public init(key: String, transitions: [TransitionInfo] = []) {
        self.key = key
        self.transitions = transitions
    }
}

public struct CatalogModel: Sendable {
    public private(set) var options: [String: OptionInfo]
    public private(set) var modules: [String: ModuleInfo]
    /// Option keys in the order given (the engine's index order).
    public private(set) var optionKeys: [String]

    /// Later duplicates of a key replace earlier ones.
    public init(options: [OptionInfo], modules: [ModuleInfo] = []) {
        var byKey: [String: OptionInfo] = [:]
        byKey.reserveCapacity(options.count)
        var keys: [String] = []
        keys.reserveCapacity(options.count)
        for option in options {
            if byKey.updateValue(option, forKey: option.key) == nil { keys.append(option.key) }
        }
        self.options = byKey
        self.optionKeys = keys
        var moduleMap: [String: ModuleInfo] = [:]
        for module in modules { moduleMap[module.key] = module }
        self.modules = moduleMap
    }
}

/// What a device's configuration chose: explicit choices per option key.
/// Unlisted options are included iff `includedByDefault`; the effective value is the override, else the default.
public struct Selection: Sendable, Hashable {
    public struct Choice: Sendable, Hashable {
        /// nil = the option's `includedByDefault`.
        public var included: Bool?
        /// nil = the option's default value.
        public var value: JSONValue?

        public init(included: Bool? = nil, value: JSONValue? = nil) {
            self.included = included
            self.value = value
        }
    }

    public var choices: [String: Choice]

    public init(choices: [String: Choice]) {
        self.choices = choices
    }

    /// Convenience: options to include, options to exclude, value overrides.
    public init(include: [String] = [], exclude: [String] = [], values: [String: JSONValue] = [:]) {
        var choices: [String: Choice] = [:]
        for key in include { choices[key, default: Choice()].included = true }
        for key in exclude { choices[key, default: Choice()].included = false }
        for (key, value) in values { choices[key, default: Choice()].value = value }
        self.choices = choices
    }
}
