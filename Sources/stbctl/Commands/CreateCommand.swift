import ArgumentParser
import STBMessages

/// `stbctl create KIND …`.
struct CreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a module, group, option, state or transition.",
        discussion: """
            Each kind takes its key path and its fields as options, and prints what the \
            catalog created (field: value lines, or JSON with --json).

            Examples:
              stbctl create module video --name Video --initial-state idle
              stbctl create group video/output --name Output --position 1
              stbctl create option hdr --group video/output --name HDR \\
                  --type boolean --default true
              stbctl create state video/idle
              stbctl create transition video/idle/ENABLE_4K --to 4k_enabled
            """,
        subcommands: [
            CreateModule.self, CreateGroup.self, CreateOption.self, CreateState.self, CreateTransition.self,
        ]
    )
}

/// `--json` for the commands that print one entity.
struct EntityOutputOptions: ParsableArguments {
    @Flag(help: "Print the result as a JSON object instead of field: value lines.")
    var json = false
}

struct CreateModule: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "module",
        abstract: "Create a module.",
        discussion: """
            A new module is active unless --inactive is given.

            Examples:
              stbctl create module video --name Video
              stbctl create module audio --name Audio --inactive \\
                  --meta '{"icon": "speaker"}'
            """
    )

    @Argument(help: ArgumentHelp("The new module's key.", valueName: "module"))
    var key: String

    @Option(help: "Display name.")
    var name: String

    @OptionGroup var fields: ModuleFields
    @OptionGroup var output: EntityOutputOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try KeyPath.plainKey(key, kind: .module)
    }

    func run() async throws {
        let module = Stb_Catalog_V1_Module(
            key: key, name: name, description_p: fields.description ?? "",
            active: (fields.status ?? .active) == .active, initialState: fields.initialState ?? "",
            metaJson: fields.meta ?? "")
        let created = try await global.withCatalog {
            try await $0.call(Stb_Catalog_V1_Catalog.createModule, .init(module: module))
        }
        Entity.module(created).print(json: output.json)
    }
}

struct CreateGroup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group",
        abstract: "Create a group in a module.",
        discussion: """
            Group keys are unique within their module. Position orders the module's groups \
            (default 0).

            Examples:
              stbctl create group video/output --name Output --position 1
            """
    )

    @Argument(help: ArgumentHelp("The module and the new group's key.", valueName: "module/group"))
    var path: String

    @Option(help: "Display name.")
    var name: String

    @OptionGroup var fields: GroupFields
    @OptionGroup var output: EntityOutputOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try KeyPath.split(path, count: 2, form: "MODULE/GROUP")
    }

    func run() async throws {
        let parts = try KeyPath.split(path, count: 2, form: "MODULE/GROUP")
        let group = Stb_Catalog_V1_Group(
            moduleKey: parts[0], key: parts[1], name: name, description_p: fields.description ?? "",
            position: fields.position ?? 0, metaJson: fields.meta ?? "")
        let created = try await global.withCatalog {
            try await $0.call(Stb_Catalog_V1_Catalog.createGroup, .init(group: group))
        }
        Entity.group(created).print(json: output.json)
    }
}

struct CreateOption: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "option",
        abstract: "Create an option in a group.",
        discussion: """
            Option keys are one namespace across the whole catalog. A new option is editable \
            and not included by default unless told otherwise. The catalog checks the \
            default against the type and the meta constraints.

            Examples:
              stbctl create option hdr --group video/output --name HDR \\
                  --type boolean --default true
              stbctl create option resolution --group video/output \\
                  --name Resolution --type enum --default 1080p \\
                  --meta '{"values": ["720p", "1080p", "2160p"]}'
              stbctl create option volume_max --group audio/levels \\
                  --name "Max volume" --type integer --default 80 \\
                  --meta '{"min": 0, "max": 100}' --no-editable
            """
    )

    @Argument(help: ArgumentHelp("The new option's key, unique in the catalog.", valueName: "option"))
    var key: String

    @Option(help: ArgumentHelp("The group it belongs to.", valueName: "module/group"))
    var group: String

    @Option(help: "Display name.")
    var name: String

    @Option(help: "Value type.")
    var type: OptionTypeArgument

    @OptionGroup var fields: OptionFields
    @OptionGroup var output: EntityOutputOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try KeyPath.plainKey(key, kind: .option)
        _ = try KeyPath.split(group, count: 2, form: "MODULE/GROUP")
    }

    func run() async throws {
        let parts = try KeyPath.split(group, count: 2, form: "MODULE/GROUP")
        let option = Stb_Catalog_V1_Option(
            moduleKey: parts[0], groupKey: parts[1], key: key, name: name,
            description_p: fields.description ?? "", type: type.proto, defaultValue: fields.defaultValue ?? "",
            editable: fields.editable ?? true, includedByDefault: fields.includedByDefault ?? false,
            metaJson: fields.meta ?? "")
        let created = try await global.withCatalog {
            try await $0.call(Stb_Catalog_V1_Catalog.createOption, .init(option: option))
        }
        Entity.option(created).print(json: output.json)
    }
}

struct CreateState: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state",
        abstract: "Create a state in a module's state machine.",
        discussion: """
            States cannot be updated once created (the catalog has no UpdateState); delete \
            and create again to change one's meta.

            Examples:
              stbctl create state video/idle
              stbctl create state video/4k_enabled --meta '{"label": "4K on"}'
            """
    )

    @Argument(help: ArgumentHelp("The module and the new state's name.", valueName: "module/state"))
    var path: String

    @Option(help: ArgumentHelp("Metadata, a JSON object.", valueName: "json"), transform: JSONArgument.object)
    var meta: String?

    @OptionGroup var output: EntityOutputOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try KeyPath.split(path, count: 2, form: "MODULE/STATE")
    }

    func run() async throws {
        let parts = try KeyPath.split(path, count: 2, form: "MODULE/STATE")
        let state = Stb_Catalog_V1_State(moduleKey: parts[0], name: parts[1], metaJson: meta ?? "")
        let created = try await global.withCatalog {
            try await $0.call(Stb_Catalog_V1_Catalog.createState, .init(state: state))
        }
        Entity.state(created).print(json: output.json)
    }
}

struct CreateTransition: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transition",
        abstract: "Create a transition between two states of a module.",
        discussion: """
            The transition fires on EVENT in FROM_STATE and leads to --to. Without \
            --condition it is always allowed.

            Examples:
              stbctl create transition video/idle/ENABLE_4K --to 4k_enabled \\
                  --condition '{"==": [{"var": "hdmi_version"}, "2.1"]}'
            """
    )

    @Argument(help: ArgumentHelp("The module, the state it leaves and the event.", valueName: "module/from_state/event"))
    var path: String

    @Option(help: ArgumentHelp("The state it leads to.", valueName: "state"))
    var to: String

    @OptionGroup var fields: TransitionFields
    @OptionGroup var output: EntityOutputOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try KeyPath.split(path, count: 3, form: "MODULE/FROM_STATE/EVENT")
    }

    func run() async throws {
        let parts = try KeyPath.split(path, count: 3, form: "MODULE/FROM_STATE/EVENT")
        let transition = Stb_Catalog_V1_Transition(
            moduleKey: parts[0], fromState: parts[1], event: parts[2], toState: to,
            conditionJson: fields.condition ?? "", metaJson: fields.meta ?? "")
        let created = try await global.withCatalog {
            try await $0.call(Stb_Catalog_V1_Catalog.createTransition, .init(transition: transition))
        }
        Entity.transition(created).print(json: output.json)
    }
}
