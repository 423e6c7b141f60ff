import STBMessages
import STBRPC
import STBRules
import Testing

@Suite("Rules service: a rule changed here updates the engine in place")
struct RulesServiceRuleChangeTests {
    /// What an evaluation answers, for comparison.
    static func answer(_ response: Stb_Rules_V1_EvaluateResponse) -> [String] {
        response.violations.map { "\($0.ruleKey) \($0.severity == .warning ? "warning" : "error") \($0.explanation)" } + ["closure \(response.closure)", "valid \(response.valid)"]
    }

    @Test("after each update and deletion, Evaluate answers as after a reload of every rule")
    func changesMatchAReload() async throws {
        try await RulesHarness.with(seed: smallSeed) { harness in
            try await harness.createRule("a-hdr-needs-4k", subject: "hdr", type: .requires, payload: #"{"requires": ["uhd_output"]}"#)
            try await harness.createRule("b-bitrate-bound", subject: "max_bitrate", type: .validation, payload: #"{"logic": {"<=": [{"var": "max_bitrate"}, 50000]}}"#)
            try await harness.createRule("c-hdr-needs-hdmi", subject: "hdr", type: .requires, payload: #"{"requires": ["hdmi_2_1"]}"#)
            let selection: [(String, Bool?, String?)] = [("max_bitrate", true, "60000")]
            func ref(_ key: String) -> Stb_Rules_V1_RuleRef {
                var ref = Stb_Rules_V1_RuleRef()
                ref.ref = .key(key)
                return ref
            }
            func update(_ key: String, _ change: (inout Stb_Rules_V1_UpdateRuleRequest) -> Void) async throws {
                var request = Stb_Rules_V1_UpdateRuleRequest()
                request.ref = ref(key)
                change(&request)
                _ = try await harness.rules.unary(Rules.updateRule, request: request)
            }
            let steps: [(String, () async throws -> Void, ([String]) -> Bool)] = [
                ("severity", { try await update("b-bitrate-bound") { $0.severity = .warning } },
                 { $0.contains { $0.hasPrefix("b-bitrate-bound warning") } }),
                ("targets", { try await update("a-hdr-needs-4k") { $0.payloadJson = #"{"requires": ["uhd_output", "hdmi_2_1"]}"# } },
                 { $0.contains { $0.hasPrefix("a-hdr-needs-4k") && $0.contains("hdmi_2_1") } }),
                ("inactive", { try await update("c-hdr-needs-hdmi") { $0.active = false } },
                 { !$0.contains { $0.hasPrefix("c-hdr-needs-hdmi") } }),
                ("deleted", { _ = try await harness.rules.unary(Rules.deleteRule, request: ref("a-hdr-needs-4k")) },
                 { !$0.contains { $0.hasPrefix("a-hdr-needs-4k") } }),
            ]
            for (name, change, shows) in steps {
                try await change()
                // Answered by the engine the commit left, before anything reloads it.
                let inPlace = Self.answer(try await harness.evaluate(selection))
                #expect(shows(inPlace), "\(name): \(inPlace)")
                try await harness.service.reloadRules()
                let reloaded = Self.answer(try await harness.evaluate(selection))
                #expect(inPlace == reloaded, "\(name)")
            }
        }
    }
}
