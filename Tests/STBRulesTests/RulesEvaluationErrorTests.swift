import Logging
import STBPostgres
import STBMessages
import STBRPC
import STBServiceTestSupport
import STBRules
import STBService
import Testing

/// A rule or condition whose evaluation fails (an operation with no finite result, a value
/// past the size limits) is answered as a violation or a failed precondition, also for a
/// stored rule after a restart; it never stops the service.
@Suite("Rules service with rules that cannot be evaluated")
struct RulesEvaluationErrorTests {
    static let seed = """
    {"modules": [
      {"key": "video", "name": "Video", "initial_state": "idle",
       "states": [{"name": "idle"}, {"name": "4k_enabled"}],
       "transitions": [
         {"from": "idle", "event": "DIVIDE", "to": "4k_enabled", "condition": {"==": [{"/": [-9223372036854775808, {"var": "d"}]}, 9223372036854775808]}}],
       "groups": [{"key": "output", "name": "Output", "options": [
         {"key": "hdr", "name": "HDR", "type": "boolean", "default": true, "included_by_default": true}]}]}]}
    """

    static let doubling = #"{"reduce": [[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30], {"cat": [{"var": "accumulator"}, {"var": "accumulator"}]}, "abcdefgh"]}"#

    static func expectViolations(_ response: Stb_Rules_V1_EvaluateResponse) {
        #expect(!response.valid)
        let divide = response.violations.first { $0.ruleKey == "divide" }
        #expect(divide?.explanation.hasPrefix("hdr validation failed") == true, "\(divide?.explanation ?? "no violation")")
        let doubling = response.violations.first { $0.ruleKey == "doubling" }
        #expect(doubling?.explanation.hasPrefix("hdr validation error at reduce[1].cat: string longer than 1048576 bytes") == true,
                "\(doubling?.explanation ?? "no violation")")
    }

    @Test("Evaluate, Impact, CheckRules and Fire answer evaluation errors, also for stored rules after a restart")
    func evaluationErrors() async throws {
        try await RulesHarness.with(seed: Self.seed) { harness in
            // -9223372036854775808 / -1 has no 64-bit integer result; it is 2^63, which is not < 0.
            try await harness.createRule("divide", subject: "hdr", type: .validation, payload: #"{"logic": {"<": [{"/": [-9223372036854775808, -1]}, 0]}}"#)
            try await harness.createRule("doubling", subject: "hdr", type: .validation, payload: #"{"logic": \#(Self.doubling)}"#)
            Self.expectViolations(try await harness.evaluate([]))

            var rule = Stb_Rules_V1_Rule()
            rule.key = "impact-doubling"
            rule.subject = "hdr"
            rule.type = .validation
            rule.payloadJson = #"{"logic": {"%": [{"var": "hdr"}, {"reduce": [[1, 2], {"-": [{"var": "accumulator"}, 1]}, -9223372036854775807]}]}}"#
            rule.severity = .error
            rule.active = true
            var impact = Stb_Rules_V1_ImpactRequest()
            impact.change = .add(rule)
            impact.selections = ["defaults": Stb_Rules_V1_EvaluateRequest()]
            let report = try await harness.rules.unary(Rules.impact, request: impact)
            _ = report  // The selection is already invalid; what matters is an answer.
            _ = try await harness.rules.unary(Rules.checkRules, request: Stb_Rules_V1_CheckRulesRequest())

            var fire = Stb_Rules_V1_FireRequest()
            fire.moduleKey = "video"
            fire.state = "idle"
            fire.event = "DIVIDE"
            fire.contextJson = #"{"d": -1}"#
            #expect(try await harness.rules.unary(Rules.fire, request: fire).nextState == "4k_enabled")
            fire.contextJson = #"{"d": 0}"#
            let failed = await expectStatus(.failedPrecondition) { _ = try await harness.rules.unary(Rules.fire, request: fire) }
            #expect(failed?.message.hasSuffix("could not be evaluated: ==[0]./: division by zero") == true)

            // A restart: a new service loads the stored rules and the same catalog.
            let restarted = RulesService(pool: harness.pools[1], signal: harness.listeners[1].signal, logger: Logger(label: "rules-test"))
            try await restarted.reloadRules()
            restarted.catalogChanged(try #require(harness.replica.configuration))
            var configuration = RPCServer.Configuration()
            configuration.port = 0
            let server = try RPCServer(configuration: configuration, services: [restarted], group: harness.group)
            let port = try await server.start()
            let client = try RPCClient(host: "127.0.0.1", port: port)
            do {
                Self.expectViolations(try await client.unary(Rules.evaluate, request: Stb_Rules_V1_EvaluateRequest()))
                _ = try await client.unary(Rules.checkRules, request: Stb_Rules_V1_CheckRulesRequest())
            } catch {
                Issue.record("after a restart: \(error)")
            }
            await client.close()
            await server.shutdown(gracePeriod: .seconds(1))
        }
    }
}
