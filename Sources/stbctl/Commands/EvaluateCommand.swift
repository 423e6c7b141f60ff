import STBJSON
import ArgumentParser
import Foundation
import STBMessages

/// `stbctl evaluate FILE`.
struct EvaluateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Check a selection of options against the rules.",
        discussion: """
            FILE is a JSON selection:

              {"include": ["hdr_enabled"], "exclude": ["vp9"],
               "values": {"max_video_bitrate_kbps": 60000}}

            "include" lists options that are included, "exclude" options that are not, \
            "values" overrides values (an option with a value is included). Options not \
            named keep their included_by_default.

            Prints "valid" or "invalid: N errors, M warnings", then each violated rule \
            (`error KEY: message`) with its explanation and the options it refers to, \
            Kconfig style (`  max_video_bitrate_kbps [=60000]`, `  hdr_format [=n]`); then \
            the closure (options `requires` rules would add) and what adding it would break.

            Exit status: 0 when the selection is valid (warnings allowed), 1 when it is \
            invalid or the call fails, 2 for a usage error or a malformed selection.

            Examples:
              stbctl evaluate selection.json
              echo '{"include": ["dolby_atmos"]}' | stbctl evaluate -
              stbctl evaluate selection.json --json
            """
    )

    @Argument(help: ArgumentHelp("The selection (JSON), or - for standard input.", valueName: "file"))
    var file: String

    @Flag(help: "Print the rules service's reply as JSON.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let request = try Self.request(from: try InputFile.read(file, what: "a selection"), file: file)
        let reply = try await global.withRules { try await $0.call(Stb_Rules_V1_Rules.evaluate, request) }
        Terminal.write(json ? Self.json(reply).rendered(pretty: true) : Self.text(reply))
        if !reply.valid { Terminal.exit(1) }
    }

    /// The EvaluateRequest for a selection document.
    static func request(from text: String, file: String) throws -> Stb_Rules_V1_EvaluateRequest {
        let name = file == "-" ? "standard input" : file
        func malformed(_ why: String) -> ValidationError {
            ValidationError("\(name): \(why); expected {\"include\": [KEY…], \"exclude\": [KEY…], \"values\": {KEY: VALUE…}}")
        }
        guard let document = (try? JSONValue.parse(text)) else { throw malformed("not JSON") }
        guard let members = document.objectValue else { throw malformed("not a JSON object") }
        if let unknown = members.keys.sorted().first(where: { !["include", "exclude", "values"].contains($0) }) {
            throw malformed("unknown member \"\(unknown)\"")
        }
        func keys(_ member: String) throws -> [String] {
            guard let value = members[member] else { return [] }
            guard case .array(let items) = value else { throw malformed("\"\(member)\" is not an array") }
            return try items.map {
                guard case .string(let key) = $0, !key.isEmpty else {
                    throw malformed("\"\(member)\" holds \($0.rendered()), not an option key")
                }
                return key
            }
        }
        let include = try keys("include")
        let exclude = try keys("exclude")
        var values: [String: JSONValue] = [:]
        if let value = members["values"] {
            guard let object = value.objectValue else { throw malformed("\"values\" is not an object") }
            values = object
        }
        if let both = include.first(where: exclude.contains) ?? values.keys.sorted().first(where: exclude.contains) {
            throw malformed("\(both) is both included and excluded")
        }

        var request = Stb_Rules_V1_EvaluateRequest()
        var seen: Set<String> = []
        for key in include + values.keys.sorted() where seen.insert(key).inserted {
            var choice = Stb_Rules_V1_OptionChoice()
            choice.key = key
            choice.included = true
            choice.valueJson = values[key]?.rendered()
            request.options.append(choice)
        }
        for key in exclude where seen.insert(key).inserted {
            var choice = Stb_Rules_V1_OptionChoice()
            choice.key = key
            choice.included = false
            request.options.append(choice)
        }
        return request
    }

    static func text(_ reply: Stb_Rules_V1_EvaluateResponse) -> String {
        let errors = reply.violations.filter { $0.severity != .warning }.count
        let warnings = reply.violations.count - errors
        var lines: [String] = []
        if reply.valid {
            lines.append(warnings == 0 ? "valid" : "valid: \(RulesCheck.count(warnings, "warning"))")
        } else {
            lines.append("invalid: \(RulesCheck.count(errors, "error")), \(RulesCheck.count(warnings, "warning"))")
        }
        for violation in reply.violations {
            lines.append("\(violation.severity.name) \(violation.ruleKey): \(violation.message)")
            lines += violation.explanation.split(separator: "\n", omittingEmptySubsequences: true).map { "    \($0)" }
            lines += violation.references.map { "  \($0.text)" }
        }
        if !reply.closure.isEmpty {
            lines.append("closure: \(reply.closure.joined(separator: ", "))")
        }
        for conflict in reply.conflicts {
            var line = "conflict \(conflict.ruleKey)"
            if !conflict.chain.isEmpty { line += ": " + conflict.chain.joined(separator: " → ") }
            lines.append(line)
            lines += conflict.explanation.split(separator: "\n", omittingEmptySubsequences: true).map { "    \($0)" }
        }
        return lines.joined(separator: "\n")
    }

    static func json(_ reply: Stb_Rules_V1_EvaluateResponse) -> JSONValue {
        [
            "valid": .bool(reply.valid),
            "violations": .array(reply.violations.map(\.json)),
            "closure": .array(reply.closure.map(JSONValue.string)),
            "conflicts": .array(
                reply.conflicts.map {
                    [
                        "rule_key": .string($0.ruleKey), "chain": .array($0.chain.map(JSONValue.string)),
                        "explanation": .string($0.explanation),
                    ]
                }),
            "catalog_revision": .number(reply.catalogRevision),
        ]
    }
}
