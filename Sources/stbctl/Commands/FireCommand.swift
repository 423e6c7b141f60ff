import STBJSON
import ArgumentParser
import STBMessages

/// The json-logic data a transition's condition sees, from `--context`.
struct ContextOption: ParsableArguments {
    @Option(
        name: .customLong("context"),
        help: ArgumentHelp(
            "The data the transitions' conditions see, a JSON object: '{\"hdmi_version\": \"2.1\"}'. (default: {})",
            valueName: "json"))
    var text: String?

    func validate() throws {
        _ = try json()
    }

    /// The context as compact JSON text ("{}" when not given).
    func json() throws(ValidationError) -> String {
        guard let text else { return "{}" }
        guard let value = (try? JSONValue.parse(text)) else { throw ValidationError("--context is not JSON: \(text)") }
        guard value.objectValue != nil else { throw ValidationError("--context must be a JSON object, not \(value.rendered())") }
        return value.rendered()
    }
}

/// `stbctl fire MODULE STATE EVENT`.
struct FireCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fire",
        abstract: "Fire an event in a module's state machine; print the next state.",
        discussion: """
            The state machines are the catalog's states and transitions. The rules service \
            finds the transition from STATE on EVENT, checks its condition against \
            --context and prints the state it leads to. A transition whose condition does \
            not hold fails with FAILED_PRECONDITION and the service's reason (exit 1).

            Examples:
              stbctl fire video idle ENABLE_4K --context '{"hdmi_version": "2.1", "hdcp_version": "2.2"}'
              stbctl fire video 4k_enabled DISABLE_4K
            """
    )

    @Argument(help: ArgumentHelp("The module.", valueName: "module"))
    var module: String

    @Argument(help: ArgumentHelp("The state the module is in.", valueName: "state"))
    var state: String

    @Argument(help: ArgumentHelp("The event to fire.", valueName: "event"))
    var event: String

    @OptionGroup var context: ContextOption

    @Flag(help: "Print a JSON object instead of the state's name.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let request = Stb_Rules_V1_FireRequest(
            moduleKey: module, state: state, event: event, contextJson: try context.json())
        let reply = try await global.withRules { try await $0.call(Stb_Rules_V1_Rules.fire, request) }
        if json {
            let object: JSONValue = [
                "module_key": .string(module), "state": .string(state), "event": .string(event),
                "next_state": .string(reply.nextState),
            ]
            Terminal.write(object.rendered(pretty: true))
        } else {
            Terminal.write(reply.nextState)
        }
    }
}

/// `stbctl events MODULE STATE`.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "List the events a module's state accepts, and where each leads.",
        discussion: """
            Only transitions whose condition holds for --context are listed. Prints a table \
            EVENT / TO, or "no events from MODULE/STATE".

            Examples:
              stbctl events video idle --context '{"hdmi_version": "2.1", "hdcp_version": "2.2"}'
              stbctl events video 4k_enabled --json
            """
    )

    @Argument(help: ArgumentHelp("The module.", valueName: "module"))
    var module: String

    @Argument(help: ArgumentHelp("The state the module is in.", valueName: "state"))
    var state: String

    @OptionGroup var context: ContextOption

    @Flag(help: "Print a JSON array instead of a table.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let request = Stb_Rules_V1_AvailableEventsRequest(moduleKey: module, state: state, contextJson: try context.json())
        let reply = try await global.withRules { try await $0.call(Stb_Rules_V1_Rules.availableEvents, request) }
        if json {
            let events = reply.events.map { ["event": .string($0.event), "to_state": .string($0.toState)] as JSONValue }
            Terminal.write(JSONValue.array(events).rendered(pretty: true))
        } else if reply.events.isEmpty {
            Terminal.write("no events from \(module)/\(state)")
        } else {
            var table = Table(header: ["EVENT", "TO"])
            for event in reply.events { table.append([event.event, event.toState]) }
            Terminal.write(table.text)
        }
    }
}
