import ArgumentParser
import STBJSON
import STBMessages

/// `stbctl project members [list] KEY`, `members add`, `members remove`.
struct ProjectMembers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "members",
        abstract: "List, add and remove a project's members.",
        discussion: """
            Project roles: viewer (reads), editor (changes the draft, commits), approver \
            (also reviews change requests), owner (also members, aspects, the project). \
            `members add` takes a user's id (`stbctl users list` shows it; it is their \
            token's subject) or their username, which the project service looks up at \
            the gateway; `members remove` takes the id.

            Examples:
              stbctl project members demo
              stbctl project members add demo alice editor
              stbctl project members add demo USER_ID approver --username bob
              stbctl project members remove demo USER_ID
            """,
        subcommands: [List.self, Add.self, Remove.self],
        defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the members.")

        @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
        var project: String

        @Flag(help: "Print a JSON array instead of a table.")
        var json = false

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let reply = try await global.withProject { try await $0.call(Stb_Project_V1_Projects.listMembers, .init(key: project)) }
            if json {
                Terminal.write(JSONValue.array(reply.members.map { .object(Record($0).json) }).rendered(pretty: true))
                return
            }
            var table = Table(header: ["USER_ID", "USERNAME", "ROLE", "ADDED"])
            for member in reply.members {
                table.append([member.userID, member.username, member.role.name, Record.timestamp(member.addedAtMs)])
            }
            Terminal.write(table.text)
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add", abstract: "Add a member, or change a member's role (owners).")

        @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
        var project: String

        @Argument(help: ArgumentHelp("The user's id (a UUID, or a subject such as service:NAME), or their username.", valueName: "user"))
        var user: String

        @Argument(
            help: ArgumentHelp("viewer, editor, approver or owner.", valueName: "role"),
            transform: { text in
                guard let role = Stb_Project_V1_ProjectRole(word: text) else {
                    throw ValidationError("role must be viewer, editor, approver or owner")
                }
                return role
            })
        var role: Stb_Project_V1_ProjectRole

        @Option(help: "The user's name, shown in member lists (with a user id).")
        var username = ""

        @OptionGroup var global: GlobalOptions

        /// Whether `text` is a user id rather than a username: the gateway's ids are UUIDs,
        /// other subjects carry a `kind:` prefix.
        static func isUserID(_ text: String) -> Bool {
            if text.contains(":") { return true }
            let groups = text.split(separator: "-", omittingEmptySubsequences: false)
            return groups.map(\.count) == [8, 4, 4, 4, 12] && groups.allSatisfy { $0.allSatisfy(\.isHexDigit) }
        }

        func run() async throws {
            let byID = Self.isUserID(user)
            if !byID && !username.isEmpty && username != user {
                throw ValidationError("'\(user)' is a username; --username goes with a user id.")
            }
            let request = Stb_Project_V1_SetMemberRequest(
                projectKey: project, userID: byID ? user : "", username: byID ? username : user, role: role)
            let member = try await global.withProject { try await $0.call(Stb_Project_V1_Projects.setMember, request) }
            let name = member.username.isEmpty ? member.userID : "\(member.username) (\(member.userID))"
            Terminal.write("\(name) is \(member.role.name) of \(project)")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a member (owners).")

        @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
        var project: String

        @Argument(help: ArgumentHelp("The user's id.", valueName: "user-id"))
        var userID: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let request = Stb_Project_V1_RemoveMemberRequest(projectKey: project, userID: userID)
            _ = try await global.withProject { try await $0.call(Stb_Project_V1_Projects.removeMember, request) }
            Terminal.write("removed \(userID) from \(project)")
        }
    }
}

/// `stbctl project audit [list] KEY`, `audit verify KEY`.
struct ProjectAudit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "A project's audit log, and the check of its hash chain.",
        discussion: """
            Every change writes a row holding the hash of the row before it and its own; \
            `audit verify` recomputes the chain and names the first broken row (exit 1).

            Examples:
              stbctl project audit demo
              stbctl project audit verify demo
            """,
        subcommands: [List.self, Verify.self],
        defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the audit rows, oldest first.")

        @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
        var project: String

        @Flag(help: "Print a JSON array (with before/after and the hashes) instead of a table.")
        var json = false

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let entries = try await global.withProject { session in
                try await session.allPages { page in
                    let reply = try await session.call(Stb_Project_V1_Projects.listAudit, .init(projectKey: project, page: page))
                    return (reply.entries, reply.page)
                }
            }
            if json {
                Terminal.write(JSONValue.array(entries.map { .object(Record($0).json) }).rendered(pretty: true))
                return
            }
            var table = Table(header: ["ID", "AT", "ACTOR", "ACTION", "ENTITY", "KEY", "NEW HASH"])
            for entry in entries {
                table.append([
                    "\(entry.id)", Record.timestamp(entry.atMs), entry.actor, entry.action, entry.entity,
                    entry.entityKey.isEmpty ? "-" : entry.entityKey, shortHash(entry.newHash),
                ])
            }
            Terminal.write(table.text)
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify", abstract: "Recompute the audit hash chain; exit 1 when a row was altered.")

        @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
        var project: String

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let reply = try await global.withProject { try await $0.call(Stb_Project_V1_Projects.verifyAudit, .init(key: project)) }
            if reply.intact {
                Terminal.write("audit log of \(project) intact: \(reply.rows) rows")
            } else {
                Terminal.write("audit log of \(project) broken at row \(reply.firstBrokenID): \(reply.problem) (\(reply.rows) rows)")
                Terminal.exit(1)
            }
        }
    }
}
