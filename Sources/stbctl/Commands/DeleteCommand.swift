import ArgumentParser

/// `stbctl delete KIND REF`.
struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete one module, group, option, state or transition.",
        discussion: """
            REF names the entity as for `stbctl get`: video, video/output, hdr, video/idle, \
            video/idle/ENABLE_4K, or an id. Whether deleting a module or a group also \
            deletes what it holds, or is refused while it holds anything, is the catalog's \
            rule. Nothing asks for confirmation.

            Examples:
              stbctl delete option hdr
              stbctl delete transition video/idle/ENABLE_4K
              stbctl delete group 12
            """
    )

    @Argument(help: "What to delete.")
    var kind: EntityKind

    @Argument(help: ArgumentHelp("Which one: a key path or an id.", valueName: "ref"))
    var ref: String

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try EntityRef(kind, ref)
    }

    func run() async throws {
        let ref = try EntityRef(kind, ref)
        try await global.withCatalog { try await $0.delete(ref) }
        Terminal.write("deleted \(ref)")
    }
}
