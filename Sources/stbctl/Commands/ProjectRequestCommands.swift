import ArgumentParser
import STBJSON
import STBMessages

/// `stbctl project requests KEY [--status S]`.
struct ProjectRequests: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "requests",
        abstract: "List a project's change requests.",
        discussion: """
            Examples:
              stbctl project requests demo
              stbctl project requests demo --status pending
            """
    )

    @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
    var project: String

    @Option(help: "Only this status: pending, approved, rejected, applied or stale.", transform: ProjectRequests.status)
    var status: Stb_Project_V1_ChangeRequestStatus = .unspecified

    @Flag(help: "Print a JSON array instead of a table.")
    var json = false

    @OptionGroup var global: GlobalOptions

    static func status(_ text: String) throws -> Stb_Project_V1_ChangeRequestStatus {
        let all: [Stb_Project_V1_ChangeRequestStatus] = [.pending, .approved, .rejected, .applied, .stale]
        guard let status = all.first(where: { $0.name == text.lowercased() }) else {
            throw ValidationError("status must be pending, approved, rejected, applied or stale")
        }
        return status
    }

    func run() async throws {
        let requests = try await global.withProject { session in
            try await session.allPages { page in
                let reply = try await session.call(
                    Stb_Project_V1_Projects.listChangeRequests, .init(projectKey: project, status: status, page: page))
                return (reply.requests, reply.page)
            }
        }
        if json {
            Terminal.write(JSONValue.array(requests.map { ProjectRequest.json($0) }).rendered(pretty: true))
        } else if requests.isEmpty {
            Terminal.write("no change requests")
        } else {
            var table = Table(header: ["ID", "STATUS", "BASE", "AUTHOR", "REVIEWER", "CHANGES", "REASON"])
            for request in requests {
                table.append([
                    "\(request.id)", request.status.name, "\(request.baseVersion)", request.author,
                    request.reviewer.isEmpty ? "-" : request.reviewer, request.changes.map(\.text).joined(separator: " "),
                    request.reason,
                ])
            }
            Terminal.write(table.text)
        }
    }
}

/// `stbctl project request create|show|review|apply`.
struct ProjectRequest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request",
        abstract: "Create, show, review and apply one change request.",
        discussion: """
            A change request proposes option changes against a committed version. An \
            approver other than its author approves or rejects it; applying it changes the \
            draft only while the draft still has the base version's hash (otherwise the \
            request becomes stale) and only when the rules accept the result.

            Examples:
              stbctl project request create demo --base 2 volume_max=85 --reason "quieter default"
              stbctl project request show demo 7
              stbctl project request review demo 7 approve --notes "fine"
              stbctl project request apply demo 7
            """,
        subcommands: [Create.self, Show.self, Review.self, Apply.self]
    )

    /// The request's fields for scripts, its changes as objects.
    static func json(_ request: Stb_Project_V1_ChangeRequest) -> JSONValue {
        var object = Record(request).json
        object["changes"] = .array(request.changes.map(\.json))
        return .object(object)
    }

    static func print(_ request: Stb_Project_V1_ChangeRequest, json: Bool) {
        Terminal.write(json ? Self.json(request).rendered(pretty: true) : Record(request).text)
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create", abstract: "Propose option changes against a committed version.")

        @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
        var project: String

        @Argument(help: ArgumentHelp("Values to set (JSON, or a bare word as a string).", valueName: "option=value"))
        var assignments: [String] = []

        @Option(help: ArgumentHelp("The version the changes apply to (default: the latest).", valueName: "version"))
        var base: UInt32 = 0

        @Option(help: ArgumentHelp("Include this option; repeat for several.", valueName: "option"))
        var include: [String] = []

        @Option(help: ArgumentHelp("Exclude this option; repeat for several.", valueName: "option"))
        var exclude: [String] = []

        @Option(help: ArgumentHelp("Put this option back to the catalog; repeat for several.", valueName: "option"))
        var reset: [String] = []

        @Option(help: "Why.")
        var reason = ""

        @Flag(help: "Print the request as JSON.")
        var json = false

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            var changes = try assignments.map(OptionChangeArgument.value)
            changes += try OptionChangeArgument.keys(include, .include(true))
            changes += try OptionChangeArgument.keys(exclude, .include(false))
            changes += try OptionChangeArgument.keys(reset, .reset(true))
            guard !changes.isEmpty else { throw ValidationError("propose at least one change (OPTION=VALUE, --include, --exclude, --reset).") }
            let request = Stb_Project_V1_CreateChangeRequestRequest(projectKey: project, baseVersion: base, changes: changes, reason: reason)
            let created = try await global.withProject { try await $0.call(Stb_Project_V1_Projects.createChangeRequest, request) }
            Terminal.write(json ? ProjectRequest.json(created).rendered(pretty: true)
                : "created change request \(created.id) of \(project) (\(created.status.name), base version \(created.baseVersion))")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one change request.")

        @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
        var project: String

        @Argument(help: ArgumentHelp("The request's id.", valueName: "id"))
        var id: Int64

        @Flag(help: "Print the request as JSON.")
        var json = false

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let reply = try await global.withProject {
                try await $0.call(Stb_Project_V1_Projects.getChangeRequest, .init(projectKey: project, id: id))
            }
            ProjectRequest.print(reply, json: json)
        }
    }

    struct Review: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "review", abstract: "Approve or reject a pending request (approvers other than its author).")

        enum Verdict: String, ExpressibleByArgument, CaseIterable {
            case approve, reject
        }

        @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
        var project: String

        @Argument(help: ArgumentHelp("The request's id.", valueName: "id"))
        var id: Int64

        @Argument(help: ArgumentHelp("approve or reject.", valueName: "verdict"))
        var verdict: Verdict

        @Option(help: "Why.")
        var notes = ""

        @Flag(help: "Print the request as JSON.")
        var json = false

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let request = Stb_Project_V1_ReviewChangeRequestRequest(projectKey: project, id: id, approve: verdict == .approve, notes: notes)
            let reply = try await global.withProject { try await $0.call(Stb_Project_V1_Projects.reviewChangeRequest, request) }
            Terminal.write(json ? ProjectRequest.json(reply).rendered(pretty: true) : "change request \(reply.id) of \(project): \(reply.status.name)")
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "apply", abstract: "Apply an approved request to the draft (when the draft still has its base hash).")

        @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
        var project: String

        @Argument(help: ArgumentHelp("The request's id.", valueName: "id"))
        var id: Int64

        @Flag(help: "Print the request as JSON.")
        var json = false

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let reply = try await global.withProject {
                try await $0.call(Stb_Project_V1_Projects.applyChangeRequest, .init(projectKey: project, id: id))
            }
            if json {
                ProjectRequest.print(reply, json: true)
                return
            }
            var line = "change request \(reply.id) of \(project): \(reply.status.name)"
            if reply.appliedVersion != 0 { line += " as version \(reply.appliedVersion)" }
            if !reply.staleReason.isEmpty { line += " (\(reply.staleReason))" }
            Terminal.write(line)
            if reply.status != .applied { Terminal.exit(1) }
        }
    }
}
