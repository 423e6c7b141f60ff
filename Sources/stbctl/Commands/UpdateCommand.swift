import ArgumentParser
import STBMessages

/// `stbctl update KIND REF …`.
struct UpdateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "update",
        abstract: "Change some fields of a module, group, option or transition.",
        discussion: """
            Only the fields given are sent; the others keep their values. Prints the entity \
            as the catalog stored it. States have no fields to update (the catalog has no \
            UpdateState).

            Examples:
              stbctl update option hdr --default false
              stbctl update option hdr --group video/hdmi
              stbctl update module video --inactive
              stbctl update group video/output --position 2
              stbctl update transition video/idle/ENABLE_4K --condition ''
            """,
        subcommands: [UpdateModule.self, UpdateGroup.self, UpdateOption.self, UpdateState.self, UpdateTransition.self]
    )
}

/// The error for an update that names no field.
private func nothingToUpdate(_ flags: String) -> ValidationError {
    ValidationError("nothing to update: give at least one of \(flags).")
}

struct UpdateModule: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "module",
        abstract: "Change a module's fields.",
        discussion: """
            Examples:
              stbctl update module video --name "Video output"
              stbctl update module video --inactive
              stbctl update module 3 --initial-state idle --meta '{"icon": "tv"}'
            """
    )

    @Argument(help: ArgumentHelp("Which module: its key or id.", valueName: "ref"))
    var ref: String

    @Option(help: "Display name.")
    var name: String?

    @OptionGroup var fields: ModuleFields
    @OptionGroup var output: EntityOutputOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try EntityRef(.module, ref)
        if name == nil, fields.isEmpty {
            throw nothingToUpdate("--name, --description, --active/--inactive, --initial-state, --meta")
        }
    }

    func run() async throws {
        guard case .module(let ref) = try EntityRef(.module, ref).target else { return }
        let request = Stb_Catalog_V1_UpdateModuleRequest(
            ref: ref, name: name, description_p: fields.description, active: fields.status.map { $0 == .active },
            initialState: fields.initialState, metaJson: fields.meta)
        let updated = try await global.withCatalog { try await $0.call(Stb_Catalog_V1_Catalog.updateModule, request) }
        Entity.module(updated).print(json: output.json)
    }
}

struct UpdateGroup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group",
        abstract: "Change a group's fields.",
        discussion: """
            Examples:
              stbctl update group video/output --name "Outputs" --position 2
            """
    )

    @Argument(help: ArgumentHelp("Which group: MODULE/GROUP or its id.", valueName: "ref"))
    var ref: String

    @Option(help: "Display name.")
    var name: String?

    @OptionGroup var fields: GroupFields
    @OptionGroup var output: EntityOutputOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try EntityRef(.group, ref)
        if name == nil, fields.isEmpty {
            throw nothingToUpdate("--name, --description, --position, --meta")
        }
    }

    func run() async throws {
        guard case .group(let ref) = try EntityRef(.group, ref).target else { return }
        let request = Stb_Catalog_V1_UpdateGroupRequest(
            ref: ref, name: name, description_p: fields.description, position: fields.position, metaJson: fields.meta)
        let updated = try await global.withCatalog { try await $0.call(Stb_Catalog_V1_Catalog.updateGroup, request) }
        Entity.group(updated).print(json: output.json)
    }
}

struct UpdateOption: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "option",
        abstract: "Change an option's fields, or move it to another group.",
        discussion: """
            --group moves the option to another group, of any module; its key stays.

            Examples:
              stbctl update option hdr --default false
              stbctl update option resolution --default 720p \\
                  --meta '{"values": ["720p", "1080p"]}'
              stbctl update option hdr --no-editable --included-by-default
              stbctl update option hdr --group video/hdmi
            """
    )

    @Argument(help: ArgumentHelp("Which option: its key or id.", valueName: "ref"))
    var ref: String

    @Option(help: "Display name.")
    var name: String?

    @Option(help: "Value type.")
    var type: OptionTypeArgument?

    @Option(help: ArgumentHelp("Move the option to this group.", valueName: "module/group"))
    var group: String?

    @OptionGroup var fields: OptionFields
    @OptionGroup var output: EntityOutputOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try EntityRef(.option, ref)
        if let group { _ = try KeyPath.split(group, count: 2, form: "MODULE/GROUP") }
        if name == nil, type == nil, group == nil, fields.isEmpty {
            throw nothingToUpdate(
                "--name, --description, --type, --default, --editable/--no-editable, "
                    + "--included-by-default/--no-included-by-default, --meta, --group")
        }
    }

    func run() async throws {
        guard case .option(let ref) = try EntityRef(.option, ref).target else { return }
        let destination = try group.map { try KeyPath.split($0, count: 2, form: "MODULE/GROUP") }
        let request = Stb_Catalog_V1_UpdateOptionRequest(
            ref: ref, name: name, description_p: fields.description, type: type?.proto,
            defaultValue: fields.defaultValue, editable: fields.editable, includedByDefault: fields.includedByDefault,
            metaJson: fields.meta, moduleKey: destination?[0], groupKey: destination?[1])
        let updated = try await global.withCatalog { try await $0.call(Stb_Catalog_V1_Catalog.updateOption, request) }
        Entity.option(updated).print(json: output.json)
    }
}

struct UpdateState: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state",
        abstract: "Change a state's meta.",
        discussion: """
            A state's module and name are its key (transitions refer to it) and cannot change.

            Examples:
              stbctl update state video/idle --meta '{"label": "Idle"}'
            """
    )

    @Argument(help: ArgumentHelp("Which state: MODULE/STATE or its id.", valueName: "ref"))
    var ref: String

    @Option(help: ArgumentHelp("Metadata, a JSON object ('' for {}).", valueName: "json"), transform: JSONArgument.object)
    var meta: String?

    @OptionGroup var output: EntityOutputOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try EntityRef(.state, ref)
        if meta == nil { throw nothingToUpdate("--meta") }
    }

    func run() async throws {
        guard case .state(let ref) = try EntityRef(.state, ref).target else { return }
        var request = Stb_Catalog_V1_UpdateStateRequest()
        request.ref = ref
        request.metaJson = meta
        let updated = try await global.withCatalog { try await $0.call(Stb_Catalog_V1_Catalog.updateState, request) }
        Entity.state(updated).print(json: output.json)
    }
}

struct UpdateTransition: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transition",
        abstract: "Change where a transition leads, its condition or its meta.",
        discussion: """
            A transition's module, from-state and event are its key and cannot change; \
            delete it and create another instead. --condition '' removes the condition.

            Examples:
              stbctl update transition video/idle/ENABLE_4K --to 4k_pending
              stbctl update transition video/idle/ENABLE_4K \\
                  --condition '{">=": [{"var": "hdmi_version"}, "2.0"]}'
              stbctl update transition 17 --condition ''
            """
    )

    @Argument(help: ArgumentHelp("Which transition: MODULE/FROM_STATE/EVENT or its id.", valueName: "ref"))
    var ref: String

    @Option(help: ArgumentHelp("The state it leads to.", valueName: "state"))
    var to: String?

    @OptionGroup var fields: TransitionFields
    @OptionGroup var output: EntityOutputOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try EntityRef(.transition, ref)
        if to == nil, fields.isEmpty {
            throw nothingToUpdate("--to, --condition, --meta")
        }
    }

    func run() async throws {
        guard case .transition(let ref) = try EntityRef(.transition, ref).target else { return }
        let request = Stb_Catalog_V1_UpdateTransitionRequest(
            ref: ref, toState: to, conditionJson: fields.condition, metaJson: fields.meta)
        let updated = try await global.withCatalog {
            try await $0.call(Stb_Catalog_V1_Catalog.updateTransition, request)
        }
        Entity.transition(updated).print(json: output.json)
    }
}
