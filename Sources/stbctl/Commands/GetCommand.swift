import ArgumentParser

/// `stbctl get KIND REF`.
struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Show one module, group, option, state or transition.",
        discussion: """
            REF names the entity by key, or by id when it is all digits:

              module      video
              group       video/output
              option      hdr
              state       video/idle
              transition  video/idle/ENABLE_4K

            Prints one `field: value` line per field (proto field names; meta and condition \
            as one-line JSON, times in UTC), or a JSON object with --json.

            Examples:
              stbctl get option hdr
              stbctl get group video/output
              stbctl get transition video/idle/ENABLE_4K --json
              stbctl get module 3
            """
    )

    @Argument(help: "What to show.")
    var kind: EntityKind

    @Argument(help: ArgumentHelp("Which one: a key path (see above) or an id.", valueName: "ref"))
    var ref: String

    @Flag(help: "Print a JSON object instead of field: value lines.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try EntityRef(kind, ref)
    }

    func run() async throws {
        let ref = try EntityRef(kind, ref)
        let entity = try await global.withCatalog { try await $0.get(ref) }
        entity.print(json: json)
    }
}
