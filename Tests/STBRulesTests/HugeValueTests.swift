import STBMessages
import STBRPC
import STBServiceTestSupport
import Testing

/// User values of 100 KB and more quoted back in statuses: the status must still arrive,
/// promptly, with the value shortened.
@Suite("Huge values in statuses")
struct HugeValueTests {
    static let huge = String(repeating: "x", count: 100_000)

    @Test("Fire with a 100 KB context value that fails the condition")
    func fire() async throws {
        try await RulesHarness.with(seed: smallSeed) { harness in
            var fire = Stb_Rules_V1_FireRequest()
            fire.moduleKey = "video"
            fire.state = "idle"
            fire.event = "ENABLE_4K"
            fire.contextJson = #"{"hdmi_version": "\#(Self.huge)"}"#
            let started = ContinuousClock.now
            let error = await expectStatus(.failedPrecondition) {
                _ = try await harness.rules.unary(Rules.fire, request: fire, timeout: .seconds(20))
            }
            #expect(ContinuousClock.now - started < .seconds(10))
            #expect((error?.message.utf8.count ?? .max) < 4096, "the status quotes \(error?.message.utf8.count ?? 0) bytes")
        }
    }

    @Test("100 KB keys, names, defaults, event names and cursors")
    func catalogAndRules() async throws {
        try await RulesHarness.with(seed: smallSeed) { harness in
            var module = Stb_Catalog_V1_Module()
            module.key = Self.huge
            module.name = Self.huge
            var createModule = Stb_Catalog_V1_CreateModuleRequest()
            createModule.module = module
            var option = Stb_Catalog_V1_Option()
            option.moduleKey = "video"
            option.groupKey = "output"
            option.key = "long_default"
            option.name = "Long"
            option.type = .integer
            option.defaultValue = Self.huge
            var createOption = Stb_Catalog_V1_CreateOptionRequest()
            createOption.option = option
            var getOption = Stb_Catalog_V1_OptionRef()
            getOption.ref = .key(Self.huge)
            var fire = Stb_Rules_V1_FireRequest()
            fire.moduleKey = "video"
            fire.state = "idle"
            fire.event = Self.huge
            var watch = Stb_Rules_V1_WatchRequest()
            watch.after = Self.huge

            let calls: [(String, RPCError.Code, () async throws -> Void)] = [
                ("CreateModule", .invalidArgument, { _ = try await harness.catalog.unary(Catalog.createModule, request: createModule, timeout: .seconds(20)) }),
                ("CreateOption", .invalidArgument, { _ = try await harness.catalog.unary(Catalog.createOption, request: createOption, timeout: .seconds(20)) }),
                ("GetOption", .notFound, { _ = try await harness.catalog.unary(Catalog.getOption, request: getOption, timeout: .seconds(20)) }),
                ("Fire", .failedPrecondition, { _ = try await harness.rules.unary(Rules.fire, request: fire, timeout: .seconds(20)) }),
                ("Watch", .invalidArgument, {
                    _ = try await harness.rules.serverStreaming(Rules.watch, request: watch, timeout: .seconds(20)) { stream in
                        for try await _ in stream {}
                    }
                }),
            ]
            for (name, code, call) in calls {
                let started = ContinuousClock.now
                let error = await expectStatus(code, call)
                #expect(ContinuousClock.now - started < .seconds(10), "\(name) took \(ContinuousClock.now - started)")
                #expect((error?.message.utf8.count ?? .max) < 4096, "\(name): the status quotes \(error?.message.utf8.count ?? 0) bytes")
            }
        }
    }
}
