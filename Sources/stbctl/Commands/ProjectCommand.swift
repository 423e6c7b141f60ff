import ArgumentParser
import STBJSON
import STBMessages

/// `stbctl project …`: projects, their option selections, versions, signoffs, change
/// requests, members and audit log, at the project service.
struct ProjectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "project",
        abstract: "Manage projects: option selections, versions, signoffs, change requests, members, audit.",
        discussion: """
            These commands talk to projectd (--project-addr, else $STB_PROJECT_ADDR, else \
            127.0.0.1:50053). A project is one product's configuration: the catalog options \
            it includes and the values it overrides, checked by the rules service before \
            anything is written. A project you are not a member of does not exist for you \
            (NOT_FOUND); admins see every project.

            Values are JSON (`true`, `80`, `"1080p"`); a word that is not JSON is taken as \
            a string, so `resolution=2160p` works, but a string that looks like a number \
            needs its quotes: `sample_rate_hz='"48000"'`.

            A refused change prints the status and each rule it breaks, with the options \
            the rule refers to and their values; nothing is written.

            Examples:
              stbctl project create demo --name "Demo box"
              stbctl project set demo ui_language=de volume_max=90
              stbctl project include demo max_video_bitrate_kbps
              stbctl project set demo max_video_bitrate_kbps=40000
              stbctl project show demo --overrides
              stbctl project commit demo -m "first cut"
              stbctl project diff demo 1 draft
              stbctl project aspects demo security:approver quality:editor
              stbctl project signoff demo 2 security --notes "pen test passed"
              stbctl project status demo
              stbctl project members add demo alice editor
              stbctl project audit verify demo
            """,
        subcommands: [
            ProjectCreate.self, ProjectList.self, ProjectShow.self,
            ProjectSet.self, ProjectUnset.self, ProjectInclude.self, ProjectExclude.self, ProjectReset.self,
            ProjectCommit.self, ProjectVersions.self, ProjectDiff.self, ProjectRollback.self,
            ProjectSignoff.self, ProjectStatus.self, ProjectAspects.self,
            ProjectRequests.self, ProjectRequest.self,
            ProjectMembers.self, ProjectAudit.self,
        ]
    )
}

/// `stbctl project create KEY --name NAME`.
struct ProjectCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a project; you become its owner.",
        discussion: """
            KEY is lowercase letters, digits and `_.-` (up to 64). The new draft follows \
            the catalog: every option at its included_by_default and default value.

            Examples:
              stbctl project create demo --name "Demo box"
              stbctl project create lab-1 --name "Lab" --meta '{"market": "DE"}'
            """
    )

    @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
    var key: String

    @Option(help: "The project's name.")
    var name: String

    @Option(help: "What the project is for.")
    var description = ""

    @Option(help: ArgumentHelp("A JSON object of free-form facts.", valueName: "json"))
    var meta = ""

    @Flag(help: "Print the project as JSON.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let request = Stb_Project_V1_CreateProjectRequest(key: key, name: name, description_p: description, metaJson: meta)
        let project = try await global.withProject { try await $0.call(Stb_Project_V1_Projects.createProject, request) }
        Terminal.write(json ? JSONValue.object(Record(project).json).rendered(pretty: true)
            : "created project \(project.key) (\(project.myRole.name)); draft hash \(hexText(project.draftHash))")
    }
}

/// `stbctl project list`.
struct ProjectList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the projects you are a member of (every project, for admins).",
        discussion: """
            Examples:
              stbctl project list
              stbctl project list --archived --json
            """
    )

    @Flag(help: "Include archived projects.")
    var archived = false

    @Flag(help: "Print a JSON array instead of a table.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let projects = try await global.withProject { session in
            try await session.allPages { page in
                let reply = try await session.call(
                    Stb_Project_V1_Projects.listProjects, .init(includeArchived: archived, page: page))
                return (reply.projects, reply.page)
            }
        }
        if json {
            Terminal.write(JSONValue.array(projects.map { .object(Record($0).json) }).rendered(pretty: true))
        } else if projects.isEmpty {
            Terminal.write("no projects")
        } else {
            var table = Table(header: ["PROJECT", "ROLE", "LATEST", "DRAFT", "HASH", "NAME"])
            for project in projects {
                table.append([
                    project.key, project.myRole.name, project.latestVersion == 0 ? "-" : "\(project.latestVersion)",
                    (project.valid ? "valid" : "invalid") + (project.archived ? ", archived" : ""),
                    shortHash(project.draftHash), project.name,
                ])
            }
            Terminal.write(table.text)
        }
    }
}

/// `stbctl project show KEY`.
struct ProjectShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show a project's draft: every option with its effective value and where it comes from.",
        discussion: """
            Prints the project, the draft's validity and SHA-256 (over its RFC 8785 \
            canonical form), then the catalog tree: per option its key, type, effective \
            value (`n` when it is not included) and its source: `default`, `override \
            (default X)`, `included` / `excluded` when the project decides the inclusion, \
            `fixed` for an option that cannot be overridden. Then the rules the draft \
            breaks, if any.

            Examples:
              stbctl project show demo
              stbctl project show demo --overrides
              stbctl project show demo --json | jq .config
            """
    )

    @Argument(help: ArgumentHelp("The project's key.", valueName: "key"))
    var key: String

    @Flag(help: "Only the options the project sets.")
    var overrides = false

    @Flag(help: "Print one JSON document instead of the tree.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let (project, config) = try await global.withProject { session in
            let project = try await session.call(Stb_Project_V1_Projects.getProject, .init(key: key))
            let config = try await session.call(Stb_Project_V1_Projects.getProjectConfig, .init(projectKey: key))
            return (project, config)
        }
        let tree = ProjectTree(project: project, config: config, onlySet: overrides)
        Terminal.write(json ? tree.json.rendered(pretty: true) : tree.text)
    }
}
