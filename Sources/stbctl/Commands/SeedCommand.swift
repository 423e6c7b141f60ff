import STBJSON
import ArgumentParser
import Foundation
import STBMessages

/// `stbctl seed …`: seed documents.
struct SeedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seed",
        abstract: "Load the catalog from a seed document.",
        subcommands: [SeedImport.self]
    )
}

/// `stbctl seed import FILE`.
struct SeedImport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a seed document: plan the changes by key, then apply them in one transaction.",
        discussion: """
            The catalog validates the document (services/catalog/seed.schema.json), compares \
            it with what it holds, and applies the difference. Importing the same document \
            twice changes nothing. Without --prune, entities the document does not mention \
            are kept.

            Prints the plan: a counts line, then one line per entity created (+), updated \
            (~) or deleted (-), then the outcome: "applied at revision N", "dry run: \
            nothing written" or "no changes".

            Examples:
              stbctl seed import services/catalog/seeds/demo.json --dry-run
              stbctl seed import services/catalog/seeds/demo.json
              stbctl seed import full.json --prune --dry-run
              generate-seed | stbctl seed import -
            """
    )

    @Argument(help: ArgumentHelp("The seed document (JSON), or - for standard input.", valueName: "file"))
    var file: String

    @Flag(help: "Plan only: print what would change and write nothing.")
    var dryRun = false

    @Flag(help: "Also delete the entities the document does not mention.")
    var prune = false

    @Flag(help: "Print the catalog's reply as JSON instead of the plan.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let request = Stb_Catalog_V1_ImportSeedRequest(
            documentJson: try readDocument(), dryRun: dryRun, prune: prune,
            fileName: file == "-" ? "stdin" : URL(fileURLWithPath: file).lastPathComponent)
        let reply = try await global.withCatalog { try await $0.call(Stb_Catalog_V1_Catalog.importSeed, request) }
        Terminal.write(json ? json(reply).rendered(pretty: true) : text(reply))
    }

    private func readDocument() throws -> String {
        let data: Data
        if file == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) else {
                throw CommandFailure("no such file: \(file)")
            }
            guard !isDirectory.boolValue else { throw CommandFailure("\(file) is a directory, not a seed document") }
            guard let contents = FileManager.default.contents(atPath: file) else {
                throw CommandFailure("cannot read \(file)")
            }
            data = contents
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CommandFailure("\(file == "-" ? "standard input" : file) is not UTF-8 text")
        }
        return text
    }

    private func text(_ reply: Stb_Catalog_V1_ImportSeedResponse) -> String {
        let plan = reply.plan ?? .init()
        var lines = [
            "created \(plan.created.count), updated \(plan.updated.count), deleted \(plan.deleted.count), unchanged \(plan.unchanged)"
        ]
        for (mark, items) in [("+", plan.created), ("~", plan.updated), ("-", plan.deleted)] {
            lines += items.map { "\(mark) \($0.entity) \($0.key)" }
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

    private func json(_ reply: Stb_Catalog_V1_ImportSeedResponse) -> JSONValue {
        let plan = reply.plan ?? .init()
        let items = { (items: [Stb_Catalog_V1_PlanItem]) -> JSONValue in
            .array(items.map { ["entity": .string($0.entity), "key": .string($0.key)] })
        }
        return [
            "applied": .bool(reply.applied),
            "dry_run": .bool(dryRun),
            "revision": .number(reply.revision),
            "seed_id": .number(reply.seedID),
            "plan": [
                "created": items(plan.created), "updated": items(plan.updated), "deleted": items(plan.deleted),
                "unchanged": .number(plan.unchanged),
            ],
        ]
    }
}
