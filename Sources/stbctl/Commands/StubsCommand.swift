import ArgumentParser
import Foundation
import STBJSON
import STBMessages

/// Where stubd's admin API is: `--stubs-addr`, else `STB_STUBS_ADDR`, else 127.0.0.1:50054.
struct StubsAddress: ParsableArguments {
    @Option(
        name: .customLong("stubs-addr"),
        help: ArgumentHelp("stubd's address. (default: $STB_STUBS_ADDR, else 127.0.0.1:50054)", valueName: "host:port"))
    var address: String?

    var resolved: String {
        if let address { return address }
        if let env = ProcessInfo.processInfo.environment["STB_STUBS_ADDR"], !env.isEmpty { return env }
        return "127.0.0.1:50054"
    }

    func endpoint() throws(ValidationError) -> (host: String, port: Int) {
        let text = resolved
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            throw ValidationError("the stub server's address must be host:port, not \(text)")
        }
        return (String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port)
    }

    func validate() throws { _ = try endpoint() }
}

extension GlobalOptions {
    /// Connects to stubd's admin API, runs `body`, and closes the connection.
    func withStubs<Value: Sendable>(_ address: StubsAddress, _ body: (CatalogSession) async throws -> Value) async throws -> Value {
        try await withService(try address.endpoint(), address: address.resolved, name: "the stub server", body)
    }
}

/// `stbctl stubs …`: the stub server's stubs, mocks and journal.
struct StubsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stubs",
        abstract: "Save, list and delete stubs, start and stop mocks, set faults and delays, read the journal of stubd.",
        discussion: """
            These commands talk to stubd's admin API (--stubs-addr). A stub file is \
            {"mocks": [...], "stubs": [...]} (services/stubs/stub.schema.json); `put` saves \
            each stub of a file, or one stub given alone.

            Examples:
              stbctl stubs put services/stubs/demo-stubs.json
              stbctl stubs list --service stb.rules.v1.Rules
              stbctl stubs start-mock stb.rules.v1.Rules --port 50052
              stbctl stubs fault stb.rules.v1.Rules --kind RST_STREAM --probability 0.2
              stbctl stubs delay stb.rules.v1.Rules --fixed-ms 100
              stbctl stubs verify rules-evaluate 10
              stbctl stubs journal --limit 5
            """,
        subcommands: [StubsPut.self, StubsList.self, StubsDelete.self, StubsMocks.self, StubsStartMock.self,
                      StubsStopMock.self, StubsFault.self, StubsDelay.self, StubsVerify.self, StubsJournal.self, StubsReset.self]
    )
}

struct StubsPut: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "put", abstract: "Save the stubs of a file (or one stub); print their ids.")

    @Argument(help: ArgumentHelp("A stub file or one stub (JSON), or - for standard input.", valueName: "file"))
    var file: String

    @OptionGroup var stubs: StubsAddress
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
        guard let document = try? JSONValue.parse(String(decoding: data, as: UTF8.self)) else {
            throw ValidationError("\(file) is not JSON")
        }
        let definitions = document["stubs"]?.arrayValue ?? [document]
        let saved = try await global.withStubs(stubs) { session in
            var ids: [String] = []
            for definition in definitions {
                let reply = try await session.call(Stb_Stubs_V1_Stubs.putStub, Stb_Stubs_V1_PutStubRequest(definitionJson: definition.canonicalText))
                ids.append(reply.id)
            }
            return ids
        }
        for id in saved { Terminal.write("saved \(id)") }
    }
}

struct StubsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the stubs in force, by method then the order they are tried.")

    @Option(help: "Only this service's stubs (e.g. stb.rules.v1.Rules).")
    var service: String = ""

    @Flag(help: "Print each stub's definition as JSON.")
    var json = false

    @OptionGroup var stubs: StubsAddress
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let reply = try await global.withStubs(stubs) { try await $0.call(Stb_Stubs_V1_Stubs.listStubs, Stb_Stubs_V1_ListStubsRequest(service: service)) }
        for stub in reply.stubs {
            Terminal.write(json ? JSONValue.compact(stub.definitionJson) : "\(stub.service)/\(stub.method)  priority \(stub.priority)  \(stub.id)  (\(stub.source))")
        }
    }
}

struct StubsDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a stub saved through the admin API.")

    @Argument(help: ArgumentHelp("The stub's id.", valueName: "id"))
    var id: String

    @OptionGroup var stubs: StubsAddress
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        _ = try await global.withStubs(stubs) { try await $0.call(Stb_Stubs_V1_Stubs.deleteStub, Stb_Stubs_V1_StubRef(id: id)) }
        Terminal.write("deleted \(id)")
    }
}

struct StubsMocks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mocks", abstract: "List the running mocks and their ports.")

    @OptionGroup var stubs: StubsAddress
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let reply = try await global.withStubs(stubs) { try await $0.call(Stb_Stubs_V1_Stubs.listMocks, Stb_Stubs_V1_ListMocksRequest()) }
        for mock in reply.mocks { Terminal.write("\(mock.service)  \(mock.port)") }
    }
}

struct StubsStartMock: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start-mock", abstract: "Start a mock of a service; print its port.")

    @Argument(help: ArgumentHelp("The service, e.g. stb.rules.v1.Rules.", valueName: "service"))
    var service: String

    @Option(help: "The port (0: one the system picks).")
    var port: Int32 = 0

    @OptionGroup var stubs: StubsAddress
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let reply = try await global.withStubs(stubs) {
            try await $0.call(Stb_Stubs_V1_Stubs.startMock, Stb_Stubs_V1_StartMockRequest(service: service, port: port))
        }
        Terminal.write("\(reply.service)  \(reply.port)")
    }
}

struct StubsStopMock: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop-mock", abstract: "Stop a mock.")

    @Argument(help: ArgumentHelp("The service.", valueName: "service"))
    var service: String

    @OptionGroup var stubs: StubsAddress
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        _ = try await global.withStubs(stubs) { try await $0.call(Stb_Stubs_V1_Stubs.stopMock, Stb_Stubs_V1_MockRef(service: service)) }
        Terminal.write("stopped \(service)")
    }
}

struct StubsVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Check that a stub matched exactly COUNT calls (exit 1 naming both counts when not).")

    @Argument(help: ArgumentHelp("The stub's id.", valueName: "id"))
    var id: String

    @Argument(help: ArgumentHelp("The calls it should have matched.", valueName: "count"))
    var count: Int64

    @OptionGroup var stubs: StubsAddress
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let reply = try await global.withStubs(stubs) {
            try await $0.call(Stb_Stubs_V1_Stubs.verify, Stb_Stubs_V1_VerifyRequest(stubID: id, count: count))
        }
        Terminal.write("\(reply.stubID) matched \(reply.count) calls")
    }
}

struct StubsJournal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "journal", abstract: "Print the counters per stub and the most recent calls.")

    @Option(help: "How many recent calls.")
    var limit: Int32 = 20

    @OptionGroup var stubs: StubsAddress
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let journal = try await global.withStubs(stubs) {
            try await $0.call(Stb_Stubs_V1_Stubs.getJournal, Stb_Stubs_V1_GetJournalRequest(limit: limit))
        }
        Terminal.write("calls \(journal.calls), unmatched \(journal.unmatched)")
        for counter in journal.counters { Terminal.write("  \(counter.stubID): \(counter.matched)") }
        for entry in journal.entries {
            let answer = entry.stubID.isEmpty ? "no match: " + entry.nearMisses.joined(separator: "; ") : entry.stubID
            Terminal.write("#\(entry.sequence) \(entry.method) \(entry.requestJson) -> \(answer) (status \(entry.statusCode))")
        }
    }
}

struct StubsReset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reset", abstract: "Clear the journal's counters and recent calls, and the times stubs have used.")

    @OptionGroup var stubs: StubsAddress
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        _ = try await global.withStubs(stubs) { try await $0.call(Stb_Stubs_V1_Stubs.resetJournal, Stb_Stubs_V1_ResetJournalRequest()) }
        Terminal.write("journal reset")
    }
}

/// `stbctl scenario …`: scenarios run by stubd, and their stored results.
struct ScenarioCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenario",
        abstract: "Run a scenario on stubd and print its report; list stored results.",
        discussion: """
            A scenario is {"name": ..., "actions": [...]} with actions START_MOCK, STOP_MOCK, \
            PUT_STUB, SET_DELAY, SET_FAULT, WAIT, CALL and LOAD (see the README). `run` exits 0 \
            when the result is SUCCESS, 1 otherwise.

            Examples:
              stbctl scenario run scenario.json
              stbctl scenario results --name rules-fault
            """,
        subcommands: [ScenarioRun.self, ScenarioResults.self]
    )
}

struct ScenarioRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run a scenario now and print its result, one line per action.")

    @Argument(help: ArgumentHelp("The scenario (JSON), or - for standard input.", valueName: "file"))
    var file: String

    @Flag(help: "Print the whole result as JSON.")
    var json = false

    @OptionGroup var stubs: StubsAddress
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
        var options = global
        // A scenario runs for as long as its actions take.
        options.timeout = Seconds(max(global.timeout.value, 3600))
        let result = try await options.withStubs(stubs) {
            try await $0.call(Stb_Stubs_V1_Stubs.runScenario, Stb_Stubs_V1_RunScenarioRequest(definitionJson: String(decoding: data, as: UTF8.self)))
        }
        if json {
            let object: JSONValue = [
                "id": .string(result.id), "scenario": .string(result.scenario), "status": .string(result.status),
                "durationMs": .number(result.durationMs), "error": .string(result.error),
                "steps": (try? JSONValue.parse(result.stepsJson)) ?? .array([]),
            ]
            Terminal.write(object.rendered(pretty: true))
        } else {
            for step in (try? JSONValue.parse(result.stepsJson))?.arrayValue ?? [] {
                let held = step["held"] == .bool(true) ? "ok" : "FAILED"
                let type = step["type"]?.stringValue ?? "?"
                let note = step["error"]?.stringValue ?? Self.summary(step["detail"])
                Terminal.write("\(step["position"]?.integerValue ?? 0) \(type): \(held)\(note.isEmpty ? "" : "  \(note)")")
            }
            Terminal.write("\(result.scenario): \(result.status) in \(result.durationMs) ms\(result.error.isEmpty ? "" : ": \(result.error)")")
        }
        if result.status != "SUCCESS" { throw ExitCode(1) }
    }

    private static func summary(_ detail: JSONValue?) -> String {
        guard let detail else { return "" }
        if let total = detail["total"] {
            let statuses = total["statuses"]?.canonicalText ?? "{}"
            let p99 = total["latencyFromIntendedMs"]?["p99"]?.canonicalText ?? "?"
            let verdicts = (detail["thresholds"]?.arrayValue ?? []).map { "\($0["threshold"]?.stringValue ?? ""): \($0["measured"]?.stringValue ?? "")" }
            return "sent \(total["sent"]?.canonicalText ?? "0"), statuses \(statuses), p99 \(p99) ms" + (verdicts.isEmpty ? "" : ", " + verdicts.joined(separator: ", "))
        }
        if let status = detail["status"]?.stringValue { return "status \(status)" }
        return ""
    }
}

struct ScenarioResults: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "results", abstract: "List stored results, newest first.")

    @Option(help: "Only this scenario's results.")
    var name: String = ""

    @Option(help: "How many.")
    var limit: Int32 = 20

    @OptionGroup var stubs: StubsAddress
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let reply = try await global.withStubs(stubs) {
            try await $0.call(Stb_Stubs_V1_Stubs.listResults, Stb_Stubs_V1_ListResultsRequest(scenario: name, limit: limit))
        }
        for result in reply.results {
            Terminal.write("\(result.id)  \(result.scenario)  \(result.status)  \(result.durationMs) ms\(result.error.isEmpty ? "" : "  \(result.error)")")
        }
    }
}
