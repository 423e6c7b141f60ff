import STBJSON
import ArgumentParser
import STBMessages

/// `stbctl config`: the assembled catalog tree.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Show the assembled catalog: modules with their groups, options, states and transitions.",
        discussion: """
            Prints the catalog revision, then one block per module: its groups (by position) \
            with their options (key, type, default, and the constraints from meta: enum \
            values, integer range, string length or pattern), then its states and transitions. \
            Naming a --module the catalog does not hold is an error (exit 1), reported after \
            the modules it does hold.

            --json prints the same tree as one JSON document with sorted keys: revision, \
            cursor (pass it to `stbctl watch --after` to follow changes made after this \
            snapshot) and modules → groups → options, states, transitions. Field names are \
            the proto's; meta_json and condition_json appear parsed as meta and condition.

            Examples:
              stbctl config
              stbctl config --module video --module audio
              stbctl config --json | jq '.modules[].groups[].options[].key'
            """
    )

    @Option(name: .customLong("module"), help: ArgumentHelp("Only this module; repeat for several. (default: all)", valueName: "key"))
    var modules: [String] = []

    @Flag(help: "Print one JSON document instead of the tree.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let request = Stb_Catalog_V1_GetConfigRequest(moduleKeys: modules)
        let reply = try await global.withCatalog { try await $0.call(Stb_Catalog_V1_Catalog.getConfig, request) }
        let tree = ConfigTree(config: reply)
        Terminal.write(json ? tree.json.rendered(pretty: true) : tree.text)
        let found = Set(reply.modules.compactMap { $0.module?.key })
        let missing = modules.filter { !found.contains($0) }
        if !missing.isEmpty {
            throw CommandFailure("no module \(missing.joined(separator: ", ")) in the catalog")
        }
    }
}
