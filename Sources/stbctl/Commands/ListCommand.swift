import STBJSON
import ArgumentParser
import STBMessages

/// `stbctl list KINDS`.
struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List modules, groups, options, states or transitions.",
        discussion: """
            Prints a table with a header row, one entity per line: key path first, then \
            the short fields and the id, free text (names, conditions) last; \
            --json prints a JSON array of objects as `stbctl get --json` does. Every page is \
            fetched, however many there are.

            --module narrows groups, options, states and transitions to one module; --group \
            narrows options to one group (`--group output --module video`, or `--group \
            video/output`).

            Examples:
              stbctl list modules
              stbctl list options --group video/output
              stbctl list transitions --module video --json
            """
    )

    @Argument(help: "What to list.")
    var kinds: PluralKind

    private var kind: EntityKind { kinds.kind }

    @Option(help: ArgumentHelp("Only this module's entities.", valueName: "key"))
    var module: String?

    @Option(help: ArgumentHelp("Only this group's options: KEY with --module, or MODULE/GROUP.", valueName: "key"))
    var group: String?

    @Flag(help: "Print a JSON array instead of a table.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if module != nil, kind == .module {
            throw ValidationError("--module does not apply to modules.")
        }
        _ = try filter()
    }

    /// The module and group keys to filter by (empty for all).
    private func filter() throws(ValidationError) -> (module: String, group: String) {
        guard let group else { return (module ?? "", "") }
        guard kind == .option else { throw ValidationError("--group applies to options only.") }
        if group.contains("/") {
            let parts = try KeyPath.split(group, count: 2, form: "MODULE/GROUP")
            if let module, module != parts[0] {
                throw ValidationError("--group \(group) is not in --module \(module).")
            }
            return (parts[0], parts[1])
        }
        guard let module else {
            throw ValidationError("group keys are unique within a module only: give --module too, or --group MODULE/GROUP.")
        }
        return (module, group)
    }

    func run() async throws {
        let (moduleKey, groupKey) = try filter()
        let kind = kind
        let entities = try await global.withCatalog { try await $0.list(kind, moduleKey: moduleKey, groupKey: groupKey) }
        if json {
            Terminal.write(JSONValue.array(entities.map { .object($0.record.json) }).rendered(pretty: true))
        } else if entities.isEmpty {
            Terminal.write("no \(kind.plural)")
        } else {
            Terminal.write(Self.table(kind, entities).text)
        }
    }

    private static func table(_ kind: EntityKind, _ entities: [Entity]) -> Table {
        var table: Table
        switch kind {
        case .module: table = Table(header: ["MODULE", "ACTIVE", "INITIAL_STATE", "ID", "NAME"])
        case .group: table = Table(header: ["GROUP", "POSITION", "ID", "NAME"])
        case .option: table = Table(header: ["OPTION", "TYPE", "DEFAULT", "GROUP", "ID", "NAME"])
        case .state: table = Table(header: ["STATE", "ID"])
        case .transition: table = Table(header: ["TRANSITION", "TO", "ID", "CONDITION"])
        }
        for entity in entities {
            switch entity {
            case .module(let m):
                table.append([m.key, m.active ? "yes" : "no", m.initialState.isEmpty ? "-" : m.initialState, "\(m.id)", m.name])
            case .group(let g):
                table.append([g.path, "\(g.position)", "\(g.id)", g.name])
            case .option(let o):
                table.append([o.key, o.type.name, ConfigTree.shown(o.defaultValue), o.groupPath, "\(o.id)", o.name])
            case .state(let s):
                table.append([s.path, "\(s.id)"])
            case .transition(let t):
                table.append([t.path, t.toState, "\(t.id)", t.conditionJson.isEmpty ? "-" : JSONValue.compact(t.conditionJson)])
            }
        }
        return table
    }
}
