import ArgumentParser
import Foundation
import STBJSON
import STBMessages

/// What `stubs fault` and `stubs delay` change: a whole mock when the name is a service of
/// `Protos/` (stb.rules.v1.Rules), else the stub with that id.
struct StubsSettingTarget: ParsableArguments {
    @Argument(help: ArgumentHelp(
        "A mock (a service, e.g. stb.rules.v1.Rules: every call its stubs answer without a setting of their own) or a stub's id.",
        valueName: "mock|stub"))
    var target: String

    @Flag(help: "Remove the setting instead.")
    var clear = false

    /// (stub id, mock service): one of the two is empty.
    var names: (stub: String, mock: String) {
        Set(ProtoMethodDescriptor.generated.map(\.serviceName)).contains(target) ? ("", target) : (target, "")
    }

    /// `name: setting` as stubd put it in force.
    static func describe(_ setting: Stb_Stubs_V1_Setting, _ kind: String) -> String {
        let name = setting.mock.isEmpty ? "stub \(setting.stubID)" : "mock \(setting.mock)"
        return setting.json.isEmpty ? "\(name): no \(kind)" : "\(name): \(kind) \(JSONValue.compact(setting.json))"
    }
}

/// `stbctl stubs fault MOCK|STUB --kind KIND [--probability P] …` (or `--clear`).
struct StubsFault: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fault",
        abstract: "Set (or --clear) at run time the fault of a mock or a stub.",
        discussion: """
            A fault strikes each call with its --probability (default 1). A mock's fault \
            strikes every call its stubs answer without a fault of their own and lasts until \
            stubd stops; a stub's is saved with the stub (stubs of a file change only in the \
            file). Stock grpcio sees RST_STREAM --code 2 as INTERNAL; RST_STREAM --code 7, \
            GOAWAY and CONNECTION_RESET as UNAVAILABLE; NEVER_ANSWER and a SLOW_STREAM slower \
            than its deadline as DEADLINE_EXCEEDED.

            Examples:
              stbctl stubs fault stb.rules.v1.Rules --kind RST_STREAM --probability 0.2
              stbctl stubs fault rules-evaluate --kind STATUS --status UNAVAILABLE --message "rules are down"
              stbctl stubs fault stb.catalog.v1.Catalog --kind SLOW_STREAM --gap-ms 50 --chunk-bytes 8
              stbctl stubs fault stb.rules.v1.Rules --clear
            """)

    @OptionGroup var target: StubsSettingTarget

    @Option(help: "RST_STREAM, GOAWAY, CONNECTION_RESET, SLOW_STREAM, NEVER_ANSWER or STATUS.")
    var kind: String?

    @Option(help: "The share of calls it strikes, 0 to 1.")
    var probability: Double = 1

    @Option(help: "RST_STREAM and GOAWAY: the HTTP/2 error code (RST_STREAM 2 by default, GOAWAY 0).")
    var code: Int?

    @Option(help: "STATUS: the gRPC status (a name such as UNAVAILABLE, or a number).")
    var status: String?

    @Option(help: "STATUS: the status message.")
    var message: String?

    @Option(name: .customLong("gap-ms"), help: "SLOW_STREAM: milliseconds between messages (or chunks).")
    var gapMs: Double?

    @Option(name: .customLong("chunk-bytes"), help: "SLOW_STREAM: send the framed answer this many bytes at a time.")
    var chunkBytes: Int?

    @OptionGroup var stubs: StubsAddress
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if target.clear {
            guard kind == nil, code == nil, status == nil, message == nil, gapMs == nil, chunkBytes == nil else {
                throw ValidationError("--clear takes no fault options")
            }
            return
        }
        guard let kind else { throw ValidationError("give --kind (or --clear)") }
        let kinds = ["RST_STREAM", "GOAWAY", "CONNECTION_RESET", "SLOW_STREAM", "NEVER_ANSWER", "STATUS"]
        guard kinds.contains(kind) else { throw ValidationError("--kind must be one of \(kinds.joined(separator: ", "))") }
        guard (0...1).contains(probability) else { throw ValidationError("--probability must be from 0 to 1") }
        guard code == nil || ["RST_STREAM", "GOAWAY"].contains(kind) else { throw ValidationError("--code goes with RST_STREAM and GOAWAY") }
        guard (status == nil && message == nil) || kind == "STATUS" else { throw ValidationError("--status and --message go with STATUS") }
        guard kind != "STATUS" || status != nil else { throw ValidationError("STATUS needs --status") }
        guard (gapMs == nil && chunkBytes == nil) || kind == "SLOW_STREAM" else {
            throw ValidationError("--gap-ms and --chunk-bytes go with SLOW_STREAM")
        }
    }

    /// The fault in the stub file's form; stubd checks the values.
    var faultJSON: String {
        guard let kind, !target.clear else { return "" }
        var members: [String: JSONValue] = ["kind": .string(kind), "probability": .double(probability)]
        if let code { members["code"] = .number(code) }
        if let status {
            var body: [String: JSONValue] = ["code": Int(status).map { JSONValue.number($0) } ?? .string(status)]
            if let message { body["message"] = .string(message) }
            members["status"] = .object(body)
        }
        if let gapMs { members["gapMs"] = .double(gapMs) }
        if let chunkBytes { members["chunkBytes"] = .number(chunkBytes) }
        return JSONValue.object(members).canonicalText
    }

    func run() async throws {
        let (stubID, mock) = target.names
        let request = Stb_Stubs_V1_SetFaultRequest(stubID: stubID, mock: mock, faultJson: faultJSON)
        let setting = try await global.withStubs(stubs) { try await $0.call(Stb_Stubs_V1_Stubs.setFault, request) }
        Terminal.write(StubsSettingTarget.describe(setting, "fault"))
    }
}

/// `stbctl stubs delay MOCK|STUB --fixed-ms N | --uniform-ms MIN,MAX | --lognormal-ms M --sigma S`
/// (or `--clear`).
struct StubsDelay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delay",
        abstract: "Set (or --clear) at run time the delay before a mock's or a stub's answers.",
        discussion: """
            A mock's delay applies to every call its stubs answer without a delay of their \
            own and lasts until stubd stops; a stub's is saved with the stub.

            Examples:
              stbctl stubs delay stb.rules.v1.Rules --fixed-ms 100
              stbctl stubs delay rules-evaluate --uniform-ms 5,50
              stbctl stubs delay rules-evaluate --lognormal-ms 20 --sigma 0.5
              stbctl stubs delay stb.rules.v1.Rules --clear
            """)

    @OptionGroup var target: StubsSettingTarget

    @Option(name: .customLong("fixed-ms"), help: "Always this many milliseconds.")
    var fixedMs: Double?

    @Option(name: .customLong("uniform-ms"), help: ArgumentHelp("Uniform between MIN and MAX milliseconds.", valueName: "min,max"))
    var uniformMs: String?

    @Option(name: .customLong("lognormal-ms"), help: "Lognormal with this median in milliseconds (with --sigma).")
    var lognormalMs: Double?

    @Option(help: "The lognormal's sigma (of the underlying normal), 0 to 4.")
    var sigma: Double = 0.5

    @OptionGroup var stubs: StubsAddress
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        let given = [fixedMs != nil, uniformMs != nil, lognormalMs != nil].filter { $0 }.count
        if target.clear {
            guard given == 0 else { throw ValidationError("--clear takes no delay") }
            return
        }
        guard given == 1 else { throw ValidationError("give one of --fixed-ms, --uniform-ms and --lognormal-ms (or --clear)") }
        if uniformMs != nil, uniformBounds.count != 2 {
            throw ValidationError("--uniform-ms is MIN,MAX in milliseconds")
        }
    }

    /// The numbers of `--uniform-ms MIN,MAX`.
    var uniformBounds: [Double] {
        (uniformMs ?? "").split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// The delay in the stub file's form; stubd checks the values.
    var delayJSON: String {
        guard !target.clear else { return "" }
        let delay: JSONValue
        if let fixedMs {
            delay = ["fixedMs": .double(fixedMs)]
        } else if uniformMs != nil {
            delay = ["uniformMs": .array(uniformBounds.map { JSONValue.double($0) })]
        } else {
            delay = ["lognormal": ["medianMs": .double(lognormalMs ?? 0), "sigma": .double(sigma)]]
        }
        return delay.canonicalText
    }

    func run() async throws {
        let (stubID, mock) = target.names
        let request = Stb_Stubs_V1_SetDelayRequest(stubID: stubID, mock: mock, delayJson: delayJSON)
        let setting = try await global.withStubs(stubs) { try await $0.call(Stb_Stubs_V1_Stubs.setDelay, request) }
        Terminal.write(StubsSettingTarget.describe(setting, "delay"))
    }
}
