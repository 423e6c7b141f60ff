import STBJSON
import ArgumentParser
import STBMessages

// The field options `create` and `update` share. Every one is optional here: `update`
// sends only what was given, `create` fills in the documented defaults.

/// `--type`: an option's value type.
enum OptionTypeArgument: String, CaseIterable, ExpressibleByArgument {
    case boolean, integer, string, `enum`

    var proto: Stb_Catalog_V1_OptionType {
        switch self {
        case .boolean: .boolean
        case .integer: .integer
        case .string: .string
        case .enum: .enum
        }
    }
}

/// `--active` / `--inactive`.
enum ModuleStatus: String, EnumerableFlag {
    case active, inactive

    static func help(for value: ModuleStatus) -> ArgumentHelp? {
        switch value {
        case .active: "Make the module active."
        case .inactive: "Make the module inactive."
        }
    }
}

/// Checks `--meta` and `--condition` values on the command line, before any call.
enum JSONArgument {
    /// A JSON object, or empty for `{}`.
    static func object(_ text: String) throws -> String {
        guard text.isEmpty || (try? JSONValue.parse(text))?.objectValue != nil else {
            throw ValidationError("expected a JSON object such as '{\"min\": 0, \"max\": 100}'")
        }
        return text
    }

    /// Any JSON value (a json-logic expression), or empty for none.
    static func value(_ text: String) throws -> String {
        guard text.isEmpty || (try? JSONValue.parse(text)) != nil else {
            throw ValidationError("expected JSON such as '{\"==\": [{\"var\": \"hdmi_version\"}, \"2.1\"]}'")
        }
        return text
    }
}

struct ModuleFields: ParsableArguments {
    @Option(help: ArgumentHelp("Free-text description.", valueName: "text"))
    var description: String?

    @Flag var status: ModuleStatus?

    @Option(help: ArgumentHelp("The state the module's machine starts in.", valueName: "state"))
    var initialState: String?

    @Option(help: ArgumentHelp("Metadata, a JSON object ('' for {}).", valueName: "json"), transform: JSONArgument.object)
    var meta: String?

    var isEmpty: Bool { description == nil && status == nil && initialState == nil && meta == nil }
}

struct GroupFields: ParsableArguments {
    @Option(help: ArgumentHelp("Free-text description.", valueName: "text"))
    var description: String?

    @Option(help: ArgumentHelp("Order among the module's groups (lower first).", valueName: "n"))
    var position: Int32?

    @Option(help: ArgumentHelp("Metadata, a JSON object ('' for {}).", valueName: "json"), transform: JSONArgument.object)
    var meta: String?

    var isEmpty: Bool { description == nil && position == nil && meta == nil }
}

struct OptionFields: ParsableArguments {
    @Option(help: ArgumentHelp("Free-text description.", valueName: "text"))
    var description: String?

    @Option(
        name: .customLong("default"),
        help: ArgumentHelp(
            "Default value as canonical text: true/false, a decimal integer, or the string or enum value.",
            valueName: "value"))
    var defaultValue: String?

    @Flag(inversion: .prefixedNo, help: "Whether projects may change the value.")
    var editable: Bool?

    @Flag(inversion: .prefixedNo, help: "Whether projects include the option unless they opt out.")
    var includedByDefault: Bool?

    @Option(
        help: ArgumentHelp(
            "Constraints and UI hints, a JSON object: min, max, step; values; pattern, max_length ('' for {}).",
            valueName: "json"),
        transform: JSONArgument.object)
    var meta: String?

    var isEmpty: Bool {
        description == nil && defaultValue == nil && editable == nil && includedByDefault == nil && meta == nil
    }
}

struct TransitionFields: ParsableArguments {
    @Option(
        help: ArgumentHelp("A json-logic expression that must hold for the transition ('' for none).", valueName: "json"),
        transform: JSONArgument.value)
    var condition: String?

    @Option(help: ArgumentHelp("Metadata, a JSON object ('' for {}).", valueName: "json"), transform: JSONArgument.object)
    var meta: String?

    var isEmpty: Bool { condition == nil && meta == nil }
}
