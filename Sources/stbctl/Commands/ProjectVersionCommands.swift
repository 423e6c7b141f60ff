import ArgumentParser
import STBJSON
import STBMessages

/// A version named on the command line: a number, or `draft` (also `0`).
struct VersionArgument: ExpressibleByArgument {
    /// 0: the draft.
    let number: UInt32

    init?(argument: String) {
        if argument == "draft" {
            number = 0
        } else if let number = UInt32(argument) {
            self.number = number
        } else {
            return nil
        }
    }

    var text: String { number == 0 ? "draft" : "version \(number)" }
}

/// `stbctl project commit KEY -m MESSAGE`.
struct ProjectCommit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commit",
        abstract: "Freeze the draft as a new immutable version.",
        discussion: """
            The version holds the draft's canonical configuration and its SHA-256, the \
            catalog and rules revisions and you as its author. Signoffs are bound to that \
            hash.

            Example: stbctl project commit demo -m "4K bitrate for the launch"
            """
    )

    @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
    var project: String

    @Option(name: [.customShort("m"), .customLong("message")], help: "What the version is.")
    var message: String

    @Flag(help: "Print the version as JSON.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let request = Stb_Project_V1_CommitVersionRequest(projectKey: project, message: message)
        let version = try await global.withProject { try await $0.call(Stb_Project_V1_Projects.commitVersion, request) }
        Terminal.write(json ? JSONValue.object(Record(version).json).rendered(pretty: true)
            : "committed \(project) version \(version.number); hash \(hexText(version.hash_p))")
    }
}

/// `stbctl project versions KEY`.
struct ProjectVersions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "versions",
        abstract: "List a project's versions, newest first.",
        discussion: "Example: stbctl project versions demo"
    )

    @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
    var project: String

    @Flag(help: "Print a JSON array instead of a table.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let versions = try await global.withProject { session in
            try await session.allPages { page in
                let reply = try await session.call(Stb_Project_V1_Projects.listVersions, .init(projectKey: project, page: page))
                return (reply.versions, reply.page)
            }
        }
        if json {
            Terminal.write(JSONValue.array(versions.map { .object(Record($0).json) }).rendered(pretty: true))
        } else if versions.isEmpty {
            Terminal.write("no versions of \(project)")
        } else {
            var table = Table(header: ["VERSION", "PARENT", "HASH", "VALID", "AUTHOR", "CREATED", "MESSAGE"])
            for version in versions {
                let origin = version.rolledBackFrom == 0 ? "" : " (rollback to \(version.rolledBackFrom))"
                table.append([
                    "\(version.number)", version.parent == 0 ? "-" : "\(version.parent)", shortHash(version.hash_p),
                    version.valid ? "yes" : "no", version.author, Record.timestamp(version.createdAtMs), version.message + origin,
                ])
            }
            Terminal.write(table.text)
        }
    }
}

/// `stbctl project diff KEY FROM TO`.
struct ProjectDiff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "What changed between two versions (or a version and the draft).",
        discussion: """
            FROM and TO are version numbers or `draft` (0 is the draft too). Prints one \
            line per option: `+ key value` added, `- key value` removed, `~ key old -> new` \
            changed.

            Examples:
              stbctl project diff demo 1 2
              stbctl project diff demo 2 draft
            """
    )

    @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
    var project: String

    @Argument(help: ArgumentHelp("A version number, or draft.", valueName: "from"))
    var from: VersionArgument

    @Argument(help: ArgumentHelp("A version number, or draft.", valueName: "to"))
    var to: VersionArgument

    @Flag(help: "Print the difference as JSON.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let request = Stb_Project_V1_DiffVersionsRequest(projectKey: project, from: from.number, to: to.number)
        let reply = try await global.withProject { try await $0.call(Stb_Project_V1_Projects.diffVersions, request) }
        if json {
            let entries = { (items: [Stb_Project_V1_OptionDifference]) -> JSONValue in
                .array(items.map {
                    ["key": .string($0.key), "from": Self.parsed($0.fromJson), "to": Self.parsed($0.toJson)]
                })
            }
            let object: JSONValue = [
                "from": .number(from.number), "to": .number(to.number),
                "from_hash": .string(hexText(reply.fromHash)), "to_hash": .string(hexText(reply.toHash)),
                "added": entries(reply.added), "removed": entries(reply.removed), "changed": entries(reply.changed),
            ]
            Terminal.write(object.rendered(pretty: true))
            return
        }
        var lines = ["\(from.text) (\(shortHash(reply.fromHash))) -> \(to.text) (\(shortHash(reply.toHash)))"]
        lines += reply.added.map { "+ \($0.key) \(JSONValue.compact($0.toJson))" }
        lines += reply.removed.map { "- \($0.key) \(JSONValue.compact($0.fromJson))" }
        lines += reply.changed.map { "~ \($0.key) \(JSONValue.compact($0.fromJson)) -> \(JSONValue.compact($0.toJson))" }
        if reply.added.isEmpty && reply.removed.isEmpty && reply.changed.isEmpty { lines.append("no differences") }
        Terminal.write(lines.joined(separator: "\n"))
    }

    static func parsed(_ text: String) -> JSONValue {
        text.isEmpty ? .null : ((try? JSONValue.parse(text)) ?? .string(text))
    }
}

/// `stbctl project rollback KEY N`.
struct ProjectRollback: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Make the draft equal to an older version and commit it as a new version.",
        discussion: """
            The older version is checked against today's catalog and rules first: when it \
            would be invalid now, nothing changes and the rules it breaks are printed.

            Example: stbctl project rollback demo 1 -m "back to the launch settings"
            """
    )

    @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
    var project: String

    @Argument(help: ArgumentHelp("The version to restore.", valueName: "version"))
    var version: UInt32

    @Option(name: [.customShort("m"), .customLong("message")], help: "The new version's message.")
    var message = ""

    @Flag(help: "Print the new version as JSON.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let request = Stb_Project_V1_RollbackRequest(projectKey: project, to: version, message: message)
        let committed = try await global.withProject { try await $0.call(Stb_Project_V1_Projects.rollback, request) }
        Terminal.write(json ? JSONValue.object(Record(committed).json).rendered(pretty: true)
            : "rolled \(project) back to version \(version) as version \(committed.number); hash \(hexText(committed.hash_p))")
    }
}

/// `stbctl project signoff KEY VERSION ASPECT`.
struct ProjectSignoff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signoff",
        abstract: "Sign one aspect of a committed version, bound to its hash.",
        discussion: "Example: stbctl project signoff demo 2 security --notes \"pen test passed\""
    )

    @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
    var project: String

    @Argument(help: ArgumentHelp("The committed version.", valueName: "version"))
    var version: UInt32

    @Argument(help: ArgumentHelp("The aspect (see `project aspects`).", valueName: "aspect"))
    var aspect: String

    @Option(help: "Why it may be released.")
    var notes = ""

    @Flag(help: "Print the signoff as JSON.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let request = Stb_Project_V1_SignoffRequest(projectKey: project, version: version, aspect: aspect, notes: notes)
        let record = try await global.withProject { try await $0.call(Stb_Project_V1_Projects.signoff, request) }
        Terminal.write(json ? JSONValue.object(Record(record).json).rendered(pretty: true)
            : "signed \(record.aspect) of \(project) version \(record.version); hash \(hexText(record.hash_p))")
    }
}

/// `stbctl project status KEY [VERSION]`.
struct ProjectStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "A version's release status: signed, missing and stale aspects.",
        discussion: """
            Without VERSION, the latest. A version is released when every declared aspect \
            is signed for its hash; signoffs of other hashes are stale and never count.

            Examples:
              stbctl project status demo
              stbctl project status demo 1 --json
            """
    )

    @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
    var project: String

    @Argument(help: ArgumentHelp("The version (default: the latest).", valueName: "version"))
    var version: UInt32 = 0

    @Flag(help: "Print the status as JSON.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let request = Stb_Project_V1_GetReleaseStatusRequest(projectKey: project, version: version)
        let status = try await global.withProject { try await $0.call(Stb_Project_V1_Projects.getReleaseStatus, request) }
        if json {
            let object: JSONValue = [
                "version": .number(status.version), "hash": .string(hexText(status.hash_p)), "released": .bool(status.released),
                "signed": .array(status.signed.map { .object(Record($0).json) }),
                "missing": .array(status.missing.map(JSONValue.string)),
                "stale": .array(status.stale.map { .object(Record($0).json) }),
            ]
            Terminal.write(object.rendered(pretty: true))
            return
        }
        var lines = ["\(project) version \(status.version): \(status.released ? "released" : "not released"); hash \(hexText(status.hash_p))"]
        lines += status.signed.map { "  signed \($0.aspect) by \($0.signer) at \(Record.timestamp($0.signedAtMs))\($0.notes.isEmpty ? "" : ": \($0.notes)")" }
        lines += status.missing.map { "  missing \($0)" }
        lines += status.stale.map { "  stale \($0.aspect) by \($0.signer) (version \($0.version), hash \(shortHash($0.hash_p)))" }
        Terminal.write(lines.joined(separator: "\n"))
    }
}

/// `stbctl project aspects KEY NAME:ROLE…`.
struct ProjectAspects: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aspects",
        abstract: "Declare the aspects every version must be signed for (replaces the list; owners).",
        discussion: """
            Each aspect is NAME:ROLE: members with that project role or a higher one may \
            sign it (viewer < editor < approver < owner).

            Example: stbctl project aspects demo security:approver quality:editor
            """
    )

    @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
    var project: String

    @Argument(help: ArgumentHelp("The aspects.", valueName: "name:role"))
    var aspects: [String]

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard !aspects.isEmpty else { throw ValidationError("name at least one aspect as NAME:ROLE.") }
    }

    func run() async throws {
        var request = Stb_Project_V1_SetSignoffAspectsRequest(projectKey: project)
        for text in aspects {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, let role = Stb_Project_V1_ProjectRole(word: parts[1]) else {
                throw ValidationError("'\(text)' is not NAME:ROLE (ROLE: viewer, editor, approver or owner).")
            }
            request.aspects.append(Stb_Project_V1_SignoffAspect(name: parts[0], leastRole: role))
        }
        let reply = try await global.withProject { try await $0.call(Stb_Project_V1_Projects.setSignoffAspects, request) }
        var table = Table(header: ["ASPECT", "LEAST ROLE", "USERS"])
        for aspect in reply.aspects {
            table.append([aspect.name, aspect.leastRole.name, aspect.userIds.joined(separator: ",")])
        }
        Terminal.write(table.text)
    }
}
