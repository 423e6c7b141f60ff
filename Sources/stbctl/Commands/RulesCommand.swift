import STBJSON
import ArgumentParser
import Foundation
import STBMessages

/// `stbctl rules …`: the rules service's rule set.
struct RulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Import, analyse, list, show and delete the rules between options.",
        discussion: """
            These commands talk to rulesd (--rules-addr). A rule has a key, a subject \
            option, a type (requires, forbidden, validation, choice), a payload, a severity \
            (error, warning), a message and whether it is active. Rule documents are the \
            `rules` section of a seed document.

            Examples:
              stbctl rules import services/catalog/seeds/demo.json --dry-run
              stbctl rules check
              stbctl rules list --subject hdr_enabled
              stbctl rules get video-bitrate-bound
              stbctl rules delete video-bitrate-bound
            """,
        subcommands: [RulesImport.self, RulesCheck.self, RulesList.self, RulesGet.self, RulesDelete.self]
    )
}

/// `stbctl rules import FILE`.
struct RulesImport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import the `rules` section of a seed document, idempotent by rule key.",
        discussion: """
            The whole document is sent; the rules service reads its `rules` section, \
            compares it with the rules it holds by key and applies the difference. \
            Importing the same document twice changes nothing. Without --prune, rules the \
            document does not mention are kept.

            Prints a counts line, then one line per rule created (+), updated (~) or \
            deleted (-), then the outcome: "applied at revision N", "dry run: nothing \
            written" or "no changes".

            Examples:
              stbctl rules import services/catalog/seeds/demo.json --dry-run
              stbctl rules import services/catalog/seeds/demo.json
              stbctl rules import rules.json --prune --dry-run
              generate-seed | stbctl rules import -
            """
    )

    @Argument(help: ArgumentHelp("The seed document (JSON), or - for standard input.", valueName: "file"))
    var file: String

    @Flag(help: "Plan only: print what would change and write nothing.")
    var dryRun = false

    @Flag(help: "Also delete the rules the document does not mention.")
    var prune = false

    @Flag(help: "Print the rules service's reply as JSON instead of the plan.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let request = Stb_Rules_V1_ImportRulesRequest(
            documentJson: try InputFile.read(file, what: "a rules document"), dryRun: dryRun, prune: prune,
            fileName: InputFile.displayName(file))
        let reply = try await global.withRules { try await $0.call(Stb_Rules_V1_Rules.importRules, request) }
        Terminal.write(json ? json(reply).rendered(pretty: true) : text(reply))
    }

    private func text(_ reply: Stb_Rules_V1_ImportRulesResponse) -> String {
        var lines = [
            "created \(reply.created.count), updated \(reply.updated.count), deleted \(reply.deleted.count), unchanged \(reply.unchanged)"
        ]
        for (mark, keys) in [("+", reply.created), ("~", reply.updated), ("-", reply.deleted)] {
            lines += keys.map { "\(mark) \($0)" }
        }
        if reply.applied {
            lines.append("applied at revision \(reply.revision)")
        } else if dryRun {
            lines.append("dry run: nothing written")
        } else {
            lines.append("no changes")
        }
        return lines.joined(separator: "\n")
    }

    private func json(_ reply: Stb_Rules_V1_ImportRulesResponse) -> JSONValue {
        let keys = { (keys: [String]) -> JSONValue in .array(keys.map(JSONValue.string)) }
        return [
            "applied": .bool(reply.applied),
            "dry_run": .bool(dryRun),
            "revision": .number(reply.revision),
            "created": keys(reply.created),
            "updated": keys(reply.updated),
            "deleted": keys(reply.deleted),
            "unchanged": .number(reply.unchanged),
        ]
    }
}

/// `stbctl rules check`.
struct RulesCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Analyse the whole rule set against the catalog.",
        discussion: """
            Reports cycles of `requires` rules (a → b → a), dead options (options no valid \
            selection can include, with the reason), references to options the catalog \
            does not have, and contradictions. Ends with a summary line: "no findings" or \
            "N findings: …".

            Exit status: 0 whether or not there are findings; with --strict, 3 when there \
            are any. 1 when the rules service refuses the call or cannot be reached.

            Examples:
              stbctl rules check
              stbctl rules check --strict
              stbctl rules check --json | jq '.unknown_references'
            """
    )

    @Flag(help: "Exit with status 3 when there are findings.")
    var strict = false

    @Flag(help: "Print the findings as a JSON object.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let reply = try await global.withRules { try await $0.call(Stb_Rules_V1_Rules.checkRules, .init()) }
        let findings = reply.cycles.count + reply.deadOptions.count + reply.unknownReferences.count
            + reply.contradictions.count
        Terminal.write(json ? json(reply).rendered(pretty: true) : text(reply, findings: findings))
        if strict, findings > 0 { Terminal.exit(3) }
    }

    private func text(_ reply: Stb_Rules_V1_CheckRulesResponse, findings: Int) -> String {
        var lines: [String] = []
        if !reply.cycles.isEmpty {
            lines.append("cycles:")
            lines += reply.cycles.map { "  " + $0.chain.joined(separator: " → ") }
        }
        if !reply.deadOptions.isEmpty {
            lines.append("dead options:")
            lines += reply.deadOptions.map { $0.reason.isEmpty ? "  \($0.optionKey)" : "  \($0.optionKey): \($0.reason)" }
        }
        if !reply.unknownReferences.isEmpty {
            lines.append("unknown references:")
            lines += reply.unknownReferences.map { "  \($0.ruleKey): \($0.optionKey)" }
        }
        if !reply.contradictions.isEmpty {
            lines.append("contradictions:")
            lines += reply.contradictions.map { "  \($0)" }
        }
        let revision = "catalog revision \(reply.catalogRevision)"
        if findings == 0 {
            lines.append("no findings (\(revision))")
        } else {
            let counts = [
                Self.count(reply.cycles.count, "cycle"),
                Self.count(reply.deadOptions.count, "dead option"),
                Self.count(reply.unknownReferences.count, "unknown reference"),
                Self.count(reply.contradictions.count, "contradiction"),
            ]
            lines.append("\(Self.count(findings, "finding")): \(counts.joined(separator: ", ")) (\(revision))")
        }
        return lines.joined(separator: "\n")
    }

    static func count(_ number: Int, _ noun: String) -> String {
        "\(number) \(noun)\(number == 1 ? "" : "s")"
    }

    private func json(_ reply: Stb_Rules_V1_CheckRulesResponse) -> JSONValue {
        [
            "cycles": .array(reply.cycles.map { .array($0.chain.map(JSONValue.string)) }),
            "dead_options": .array(
                reply.deadOptions.map { ["option_key": .string($0.optionKey), "reason": .string($0.reason)] }),
            "unknown_references": .array(
                reply.unknownReferences.map { ["rule_key": .string($0.ruleKey), "option_key": .string($0.optionKey)] }),
            "contradictions": .array(reply.contradictions.map(JSONValue.string)),
            "catalog_revision": .number(reply.catalogRevision),
        ]
    }
}

/// `stbctl rules list`.
struct RulesList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the rules, every page.",
        discussion: """
            Prints a table with a header row, one rule per line; --json prints a JSON array \
            of objects as `stbctl rules get --json` does. --subject narrows the list to the \
            rules about one option.

            Examples:
              stbctl rules list
              stbctl rules list --subject max_video_bitrate_kbps
              stbctl rules list --json
            """
    )

    @Option(help: ArgumentHelp("Only the rules about this option.", valueName: "key"))
    var subject: String?

    @Flag(help: "Print a JSON array instead of a table.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let subject = subject ?? ""
        let rules = try await global.withRules { session in
            try await session.allPages { page in
                let reply = try await session.call(Stb_Rules_V1_Rules.listRules, .init(subject: subject, page: page))
                return (reply.rules, reply.page)
            }
        }
        if json {
            Terminal.write(JSONValue.array(rules.map { .object(Record($0).json) }).rendered(pretty: true))
        } else if rules.isEmpty {
            Terminal.write(subject.isEmpty ? "no rules" : "no rules about \(subject)")
        } else {
            var table = Table(header: ["RULE", "SUBJECT", "TYPE", "SEVERITY", "ACTIVE", "ID", "MESSAGE"])
            for rule in rules {
                table.append([
                    rule.key, rule.subject, rule.type.name, rule.severity.name, rule.active ? "yes" : "no", "\(rule.id)",
                    rule.message,
                ])
            }
            Terminal.write(table.text)
        }
    }
}

/// `stbctl rules get KEY`.
struct RulesGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Show one rule.",
        discussion: """
            Prints `name: value` lines, the payload as compact JSON; --json prints one JSON \
            object. A KEY made only of digits is an id instead.

            Examples:
              stbctl rules get video-bitrate-bound
              stbctl rules get 12 --json
            """
    )

    @Argument(help: ArgumentHelp("The rule's key, or its id.", valueName: "key"))
    var key: String

    @Flag(help: "Print a JSON object instead of `name: value` lines.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let ref = Stb_Rules_V1_RuleRef(argument: key)
        let rule = try await global.withRules { try await $0.call(Stb_Rules_V1_Rules.getRule, ref) }
        let record = Record(rule)
        Terminal.write(json ? JSONValue.object(record.json).rendered(pretty: true) : record.text)
    }
}

/// `stbctl rules delete KEY`.
struct RulesDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete one rule.",
        discussion: """
            A KEY made only of digits is an id instead. Nothing asks for confirmation.

            Examples:
              stbctl rules delete video-bitrate-bound
              stbctl rules delete 12
            """
    )

    @Argument(help: ArgumentHelp("The rule's key, or its id.", valueName: "key"))
    var key: String

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let ref = Stb_Rules_V1_RuleRef(argument: key)
        _ = try await global.withRules { try await $0.call(Stb_Rules_V1_Rules.deleteRule, ref) }
        Terminal.write("deleted rule \(key)")
    }
}
