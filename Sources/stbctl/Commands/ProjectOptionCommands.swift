import ArgumentParser
import STBJSON
import STBMessages

/// Option changes as the command line writes them.
enum OptionChangeArgument {
    /// `key=value`: the value as JSON, or a bare word that is not JSON as a string.
    static func value(_ argument: String) throws(ValidationError) -> Stb_Project_V1_OptionChange {
        guard let equals = argument.firstIndex(of: "="), equals != argument.startIndex else {
            throw ValidationError("'\(argument)' is not of the form OPTION=VALUE.")
        }
        let key = String(argument[..<equals])
        let text = String(argument[argument.index(after: equals)...])
        let json = (try? JSONValue.parse(text)) ?? .string(text)
        return Stb_Project_V1_OptionChange(key: key, change: .valueJson(json.canonicalText))
    }

    /// `kind` applied to each option key.
    static func keys(_ keys: [String], _ kind: Stb_Project_V1_OptionChange.OneOf_Change) throws(ValidationError) -> [Stb_Project_V1_OptionChange] {
        var changes: [Stb_Project_V1_OptionChange] = []
        for key in keys {
            guard !key.isEmpty, !key.contains("=") else { throw ValidationError("'\(key)' is not an option key.") }
            changes.append(Stb_Project_V1_OptionChange(key: key, change: kind))
        }
        return changes
    }
}

/// What every option-changing command takes besides its options.
struct OptionChangeOptions: ParsableArguments {
    @Option(
        name: .customLong("expect-hash"),
        help: ArgumentHelp("Refuse (ABORTED) unless the draft still has this hash (hex).", valueName: "hex"))
    var expectHash: String?

    @Flag(help: "Print the reply as JSON.")
    var json = false

    @OptionGroup var global: GlobalOptions

    /// Sends `changes` to the draft of `project` in one `SetOptions` and prints the outcome.
    func apply(_ changes: [Stb_Project_V1_OptionChange], to project: String) async throws {
        var request = Stb_Project_V1_SetOptionsRequest(projectKey: project, changes: changes)
        if let expectHash {
            guard let bytes = Hex.bytes(expectHash) else {
                throw ValidationError("--expect-hash must be hex digits, not '\(expectHash)'.")
            }
            request.expectedHash = bytes
        }
        let reply = try await global.withProject { try await $0.call(Stb_Project_V1_Projects.setOptions, request) }
        if json {
            let object: JSONValue = [
                "changed": .bool(reply.changed), "hash": .string(hexText(reply.hash_p)),
                "warnings": .array(reply.warnings.map(\.json)),
            ]
            Terminal.write(object.rendered(pretty: true))
            return
        }
        var lines = [
            reply.changed
                ? "\(project): \(changes.map(\.text).joined(separator: " ")); draft hash \(hexText(reply.hash_p))"
                : "\(project): nothing changed; draft hash \(hexText(reply.hash_p))"
        ]
        lines += reply.warnings.flatMap(\.lines)
        Terminal.write(lines.joined(separator: "\n"))
    }
}

/// `stbctl project set KEY OPTION=VALUE…`.
struct ProjectSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Override option values in the draft (one atomic change, checked by the rules first).",
        discussion: """
            Each VALUE is JSON; a word that is not JSON is a string. Setting a value does \
            not include an option: one the draft leaves out (`n` in `project show`) keeps \
            the value for when it is included (`project include`). The whole batch is checked by the rules service before anything is \
            written: when the result breaks a rule, nothing changes and the command prints \
            FAILED_PRECONDITION with each rule and the values it saw (exit 1). Warnings are \
            printed after a successful change.

            Examples:
              stbctl project set demo ui_language=de volume_max=90
              stbctl project include demo max_video_bitrate_kbps device_name
              stbctl project set demo max_video_bitrate_kbps=40000 device_name='"living-room"'
            """
    )

    @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
    var project: String

    @Argument(help: ArgumentHelp("Values to set.", valueName: "option=value"))
    var assignments: [String]

    @OptionGroup var options: OptionChangeOptions

    func validate() throws {
        guard !assignments.isEmpty else { throw ValidationError("name at least one OPTION=VALUE.") }
    }

    func run() async throws {
        try await options.apply(try assignments.map(OptionChangeArgument.value), to: project)
    }
}

/// The project and option keys that `unset`, `include`, `exclude` and `reset` take.
struct ProjectOptionKeys: ParsableArguments {
    @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
    var project: String

    @Argument(help: ArgumentHelp("The options.", valueName: "option"))
    var keys: [String]

    @OptionGroup var options: OptionChangeOptions

    func validate() throws {
        guard !keys.isEmpty else { throw ValidationError("name at least one option.") }
    }

    /// Sends `kind` for every named option in one `SetOptions`.
    func apply(_ kind: Stb_Project_V1_OptionChange.OneOf_Change) async throws {
        try await options.apply(try OptionChangeArgument.keys(keys, kind), to: project)
    }
}

/// `stbctl project unset KEY OPTION…`.
struct ProjectUnset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unset",
        abstract: "Put options back to the catalog's default value, keeping their inclusion.",
        discussion: "Example: stbctl project unset demo max_video_bitrate_kbps"
    )

    @OptionGroup var target: ProjectOptionKeys

    func run() async throws { try await target.apply(.resetValue(true)) }
}

/// `stbctl project include KEY OPTION…`.
struct ProjectInclude: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "include",
        abstract: "Include options in the draft.",
        discussion: "Example: stbctl project include demo subtitles_enabled subtitle_language"
    )

    @OptionGroup var target: ProjectOptionKeys

    func run() async throws { try await target.apply(.include(true)) }
}

/// `stbctl project exclude KEY OPTION…`.
struct ProjectExclude: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exclude",
        abstract: "Exclude options from the draft.",
        discussion: "Example: stbctl project exclude demo wifi_roaming"
    )

    @OptionGroup var target: ProjectOptionKeys

    func run() async throws { try await target.apply(.include(false)) }
}

/// `stbctl project reset KEY OPTION…`.
struct ProjectReset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset",
        abstract: "Put options back to the catalog: inclusion by included_by_default, the default value.",
        discussion: "Example: stbctl project reset demo ui_language volume_max"
    )

    @OptionGroup var target: ProjectOptionKeys

    func run() async throws { try await target.apply(.reset(true)) }
}
