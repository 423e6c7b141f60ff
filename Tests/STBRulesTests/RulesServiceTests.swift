import STBMessages
import STBPostgres
import STBRPC
import STBServiceTestSupport
import STBRules
import STBService
import STBAuth
import STBAuthTestSupport
import Testing

@Suite("Rules service with a real catalog and Postgres")
struct RulesServiceTests {
    @Test("rules are validated against the catalog copy, and evaluated with every referenced value")
    func createAndEvaluate() async throws {
        try await RulesHarness.with(seed: smallSeed) { harness in
            try await harness.createRule("hdr-needs-4k", subject: "hdr", type: .requires, payload: #"{"requires": ["uhd_output", "hdmi_2_1"]}"#, message: "HDR needs 4K over HDMI 2.1")
            try await harness.createRule("bitrate-bound", subject: "max_bitrate", type: .validation, payload: #"{"logic": {"<=": [{"var": "max_bitrate"}, 50000]}}"#)

            let unknown = await expectStatus(.invalidArgument) {
                try await harness.createRule("bad", subject: "hdr", type: .requires, payload: #"{"requires": ["nope"]}"#)
            }
            #expect(unknown?.message.contains(#"option "nope" is not in the catalog"#) == true)
            let badLogic = await expectStatus(.invalidArgument) {
                try await harness.createRule("bad2", subject: "hdr", type: .validation, payload: #"{"logic": {"frobnicate": [1]}}"#)
            }
            #expect(badLogic?.message.contains("payload.logic") == true)
            await expectStatus(.alreadyExists) {
                try await harness.createRule("hdr-needs-4k", subject: "hdr", type: .requires, payload: #"{"requires": ["uhd_output"]}"#)
            }

            // hdr is on by default (included, true); uhd_output and hdmi_2_1 are not.
            let result = try await harness.evaluate([("max_bitrate", true, "60000")])
            #expect(!result.valid)
            let requires = try #require(result.violations.first { $0.ruleKey == "hdr-needs-4k" })
            #expect(requires.message == "HDR needs 4K over HDMI 2.1")
            #expect(Set(requires.references.map(\.optionKey)) == ["hdr", "uhd_output", "hdmi_2_1"])
            #expect(requires.references.first { $0.optionKey == "uhd_output" }?.included == false)
            #expect(requires.explanation.contains("uhd_output [=n]"))
            let bound = try #require(result.violations.first { $0.ruleKey == "bitrate-bound" })
            #expect(bound.references.first?.valueJson == "60000")
            #expect(Set(result.closure) == ["uhd_output", "hdmi_2_1"])

            // Included at their default, false, the two booleans are still off.
            let included = try await harness.evaluate([("uhd_output", true, nil), ("hdmi_2_1", true, nil), ("max_bitrate", true, "40000")])
            #expect(included.violations.map(\.ruleKey) == ["hdr-needs-4k"])
            #expect(included.violations.first?.explanation == "hdr requires uhd_output [=n], hdmi_2_1 [=n]")
            let uhd = try #require(included.violations.first?.references.first { $0.optionKey == "uhd_output" })
            #expect(uhd.included && uhd.valueJson == "false")
            #expect(Set(included.closure) == ["uhd_output", "hdmi_2_1"])

            let fixed = try await harness.evaluate([("uhd_output", true, "true"), ("hdmi_2_1", true, "true"), ("max_bitrate", true, "40000")])
            #expect(fixed.valid && fixed.violations.isEmpty)
        }
    }

    @Test("Evaluate by difference from a selection evaluated before, by its hash; an unknown hash is FAILED_PRECONDITION")
    func evaluateByDifference() async throws {
        try await RulesHarness.with(seed: smallSeed) { harness in
            try await harness.createRule("hdr-needs-4k", subject: "hdr", type: .requires, payload: #"{"requires": ["uhd_output"]}"#)
            try await harness.createRule("bitrate-bound", subject: "max_bitrate", type: .validation, payload: #"{"logic": {"<=": [{"var": "max_bitrate"}, 50000]}}"#)

            let defaults = try await harness.evaluate([])
            #expect(defaults.selectionHash.count == 32)
            #expect(defaults.violations.map(\.ruleKey) == ["hdr-needs-4k"])
            // Listing the defaults is the same selection.
            #expect(try await harness.evaluate([("hdr", true, nil)]).selectionHash == defaults.selectionHash)

            let first = try await harness.evaluate([("max_bitrate", true, "60000")])
            #expect(Set(first.violations.map(\.ruleKey)) == ["hdr-needs-4k", "bitrate-bound"])
            #expect(first.selectionHash != defaults.selectionHash)

            // On top of it: turn uhd_output on; the override of max_bitrate stays.
            let second = try await harness.evaluate([("uhd_output", true, "true")], base: first.selectionHash)
            #expect(second.violations.map(\.ruleKey) == ["bitrate-bound"])
            let whole = try await harness.evaluate([("max_bitrate", true, "60000"), ("uhd_output", true, "true")])
            #expect(second.selectionHash == whole.selectionHash)
            #expect(second.violations == whole.violations)

            // A choice with neither flag nor value returns the option to its default.
            let reset = try await harness.evaluate([("max_bitrate", nil, nil)], base: second.selectionHash)
            #expect(reset.valid && reset.violations.isEmpty)

            let unknown = await expectStatus(.failedPrecondition) {
                _ = try await harness.evaluate([("hdr", false, nil)], base: [UInt8](repeating: 7, count: 32))
            }
            #expect(unknown?.message.contains("send the whole selection") == true)
            #expect(unknown?.details.contains { detail in
                if case .preconditionFailure(let failure) = detail { return failure.violations.first?.type == "UNKNOWN_BASE_SELECTION" }
                return false
            } == true)

            // Every reply names the rules revision it was computed at, the defaults' too.
            func storedRevision() async throws -> UInt64 {
                UInt64(try await harness.pools[1].query("SELECT revision FROM rules_revision")[0].decode(0, as: Int64.self))
            }
            let revision = try await storedRevision()
            #expect(revision > 0)
            #expect(defaults.rulesRevision == revision && second.rulesRevision == revision)
            #expect(try await harness.evaluate([]).rulesRevision == revision)

            // A rule change keeps the cache: the base still names the same selection.
            try await harness.createRule("4k-forbids-legacy", subject: "uhd_output", type: .forbidden, payload: #"{"forbidden": ["legacy_mode"]}"#)
            let after = try await harness.evaluate([("legacy_mode", true, "true")], base: second.selectionHash)
            #expect(Set(after.violations.map(\.ruleKey)) == ["bitrate-bound", "4k-forbids-legacy"])
            let changed = try await storedRevision()
            #expect(changed > revision)
            #expect(after.rulesRevision == changed)
            #expect(try await harness.evaluate([]).rulesRevision == changed)
        }
    }

    @Test("CheckRules reports cycles and dead options, and follows a catalog change without a restart")
    func checkFollowsCatalog() async throws {
        try await RulesHarness.with(seed: smallSeed) { harness in
            try await harness.createRule("a", subject: "uhd_output", type: .requires, payload: #"{"requires": ["hdmi_2_1"]}"#)
            try await harness.createRule("b", subject: "hdmi_2_1", type: .requires, payload: #"{"requires": ["uhd_output"]}"#)
            try await harness.createRule("c", subject: "legacy_mode", type: .forbidden, payload: #"{"forbidden": ["legacy_mode"]}"#)
            var report = try await harness.rules.unary(Rules.checkRules, request: Stb_Rules_V1_CheckRulesRequest())
            #expect(report.cycles.count == 1 && Set(report.cycles[0].chain) == ["uhd_output", "hdmi_2_1"])
            #expect(report.deadOptions.map(\.optionKey).contains("legacy_mode"))
            #expect(report.unknownReferences.isEmpty)

            // The catalog drops an option a rule refers to: CheckRules sees it once the copy follows.
            var ref = Stb_Catalog_V1_OptionRef()
            ref.ref = .key("hdmi_2_1")
            let before = report.catalogRevision
            _ = try await harness.catalog.unary(Catalog.deleteOption, request: ref)
            try await harness.waitUntil { (harness.replica.configuration?.revision ?? 0) > before }
            report = try await harness.rules.unary(Rules.checkRules, request: Stb_Rules_V1_CheckRulesRequest())
            #expect(report.unknownReferences.contains { $0.optionKey == "hdmi_2_1" })
            #expect(report.catalogRevision > before)
        }
    }

    @Test("the copy follows a catalog whose GetConfig reply is larger than the default 4 MiB message limit")
    func largeCatalog() async throws {
        try await RulesHarness.with(seed: smallSeed) { harness in
            // 2 × 300 options with 8 KiB of meta each: a GetConfig reply of about 5 MB.
            let hint = String(repeating: "x", count: 8 * 1024)
            for part in 0..<2 {
                let options = (0..<300).map { #"{"key": "big_\#(part)_\#($0)", "name": "Big", "type": "string", "default": "", "meta": {"hint": "\#(hint)"}}"# }
                var request = Stb_Catalog_V1_ImportSeedRequest()
                request.documentJson = #"{"modules": [{"key": "big\#(part)", "name": "Big", "groups": [{"key": "all", "name": "All", "options": [\#(options.joined(separator: ","))]}]}]}"#
                _ = try await harness.catalog.unary(Catalog.importSeed, request: request, timeout: .seconds(60))
            }
            let config = Stb_Catalog_V1_GetConfigRequest()
            var client = RPCClient.Configuration.authenticated(.viewer)
            client.maxReceiveMessageSize = 64 * 1024 * 1024
            let reader = try RPCClient(host: harness.catalog.host, port: harness.catalog.port, configuration: client)
            let full = try await reader.unary(Catalog.getConfig, request: config, timeout: .seconds(30))
            await reader.close()
            #expect(full.serializedBytes().count > 4 * 1024 * 1024)
            try await harness.waitUntil(timeout: .seconds(30)) { harness.replica.configuration?.revision == full.revision }
            #expect(harness.replica.freshness == .current && harness.service.isServing)
            let result = try await harness.evaluate([("big_1_299", true, #""""#)])
            #expect(result.catalogRevision == full.revision)
        }
    }

    @Test("a copy that cannot fetch an announced revision says so (health, UNAVAILABLE) and recovers")
    func staleCopy() async throws {
        // A copy limited to 32 KiB replies stands for one that cannot fetch the catalog.
        try await RulesHarness.with(seed: smallSeed, replicaMaxMessageSize: 32 * 1024) { harness in
            let before = try #require(harness.replica.configuration?.revision)
            // Each change event is small, the whole configuration is not.
            let options = (0..<100).map { #"{"key": "bulk_\#($0)", "name": "Bulk", "type": "string", "default": "", "meta": {"hint": "\#(String(repeating: "y", count: 500))"}}"# }
            var bulk = Stb_Catalog_V1_ImportSeedRequest()
            bulk.documentJson = #"{"modules": [{"key": "bulk", "name": "Bulk", "groups": [{"key": "all", "name": "All", "options": [\#(options.joined(separator: ","))]}]}]}"#
            _ = try await harness.catalog.unary(Catalog.importSeed, request: bulk)
            try await harness.waitUntil(timeout: .seconds(30)) { harness.replica.freshness != .current && !harness.service.isServing }
            guard case .behind(let have, let announced, let reason) = harness.replica.freshness else { return }
            #expect(have == before && announced > before)
            #expect(reason.contains("RESOURCE_EXHAUSTED"), "\(reason)")
            #expect(!harness.service.isServing)
            let refused = await expectStatus(.unavailable) { _ = try await harness.evaluate([("hdr", true, nil)]) }
            #expect(refused?.message.contains("behind") == true, "\(refused?.message ?? "")")
            await expectStatus(.unavailable) { _ = try await harness.rules.unary(Rules.checkRules, request: Stb_Rules_V1_CheckRulesRequest()) }

            // The catalog shrinks again: the copy catches up and serves.
            var ref = Stb_Catalog_V1_ModuleRef()
            ref.ref = .key("bulk")
            _ = try await harness.catalog.unary(Catalog.deleteModule, request: ref)
            try await harness.waitUntil(timeout: .seconds(30)) { harness.replica.freshness == .current && harness.service.isServing }
            #expect(harness.service.isServing)
            #expect(try await harness.evaluate([("hdr", true, nil)]).catalogRevision > before)
        }
    }

    @Test("importing the rules section twice changes nothing the second time")
    func importIdempotent() async throws {
        try await RulesHarness.with(seed: smallSeed) { harness in
            var request = Stb_Rules_V1_ImportRulesRequest()
            request.documentJson = """
                {"modules": [], "rules": [
                  {"key": "codec-choice", "subject": "codec", "type": "choice", "payload": {"choice": ["h264", "h265"], "optional": false}, "message": "one codec"},
                  {"key": "hdr-needs-4k", "subject": "hdr", "type": "requires", "payload": {"requires": ["uhd_output"]}}]}
                """
            request.dryRun = true
            let dry = try await harness.rules.unary(Rules.importRules, request: request)
            #expect(!dry.applied && dry.created == ["codec-choice", "hdr-needs-4k"])
            request.dryRun = false
            let first = try await harness.rules.unary(Rules.importRules, request: request)
            #expect(first.applied && first.created.count == 2)
            let second = try await harness.rules.unary(Rules.importRules, request: request)
            #expect(!second.applied && second.created.isEmpty && second.updated.isEmpty && second.unchanged == 2 && second.revision == first.revision)

            // Both codecs are included by default: the choice is violated.
            let result = try await harness.evaluate([])
            #expect(result.violations.contains { $0.ruleKey == "codec-choice" })

            request.documentJson = #"{"rules": [{"key": "Bad Key", "subject": "hdr", "type": "requires", "payload": {"requires": []}}]}"#
            let error = await expectStatus(.invalidArgument) { _ = try await harness.rules.unary(Rules.importRules, request: request) }
            #expect(error?.message.contains("rules[0].key") == true)
        }
    }

    @Test("state machines: Fire moves when the condition holds, and says why not otherwise")
    func stateMachine() async throws {
        try await RulesHarness.with(seed: smallSeed) { harness in
            var fire = Stb_Rules_V1_FireRequest()
            fire.moduleKey = "video"
            fire.state = "idle"
            fire.event = "ENABLE_4K"
            fire.contextJson = #"{"hdmi_version": "2.1"}"#
            let moved = try await harness.rules.unary(Rules.fire, request: fire)
            #expect(moved.nextState == "4k_enabled")
            fire.contextJson = #"{"hdmi_version": "2.0"}"#
            let failed = await expectStatus(.failedPrecondition) { _ = try await harness.rules.unary(Rules.fire, request: fire) }
            #expect(failed?.message.contains(#"hdmi_version [="2.0"]"#) == true)
            fire.event = "NOPE"
            let missing = await expectStatus(.failedPrecondition) { _ = try await harness.rules.unary(Rules.fire, request: fire) }
            #expect(missing?.message.contains("ENABLE_4K") == true)

            var available = Stb_Rules_V1_AvailableEventsRequest()
            available.moduleKey = "video"
            available.state = "idle"
            available.contextJson = #"{"hdmi_version": "2.1"}"#
            let open = try await harness.rules.unary(Rules.availableEvents, request: available)
            #expect(open.events.map(\.event) == ["ENABLE_4K"])
            available.contextJson = "{}"
            let closed = try await harness.rules.unary(Rules.availableEvents, request: available)
            #expect(closed.events.isEmpty)
        }
    }

    @Test("Watch delivers rule changes; the audit log has a row per change")
    func watchAndAudit() async throws {
        try await RulesHarness.with(seed: smallSeed) { harness in
            var request = Stb_Rules_V1_WatchRequest()
            request.after = "0:0"
            let created = try await harness.createRule("hdr-needs-4k", subject: "hdr", type: .requires, payload: #"{"requires": ["uhd_output"]}"#)
            var update = Stb_Rules_V1_UpdateRuleRequest()
            var ref = Stb_Rules_V1_RuleRef()
            ref.ref = .key("hdr-needs-4k")
            update.ref = ref
            update.severity = .warning
            let updated = try await harness.rules.unary(Rules.updateRule, request: update)
            #expect(updated.severity == .warning && updated.id == created.id)
            let events = try await harness.rules.serverStreaming(Rules.watch, request: request, timeout: .seconds(30)) { stream in
                var events: [Stb_Rules_V1_ChangeEvent] = []
                for try await event in stream {
                    events.append(event)
                    if events.count == 2 { break }
                }
                return events
            }
            #expect(events.map(\.action) == [.created, .updated])
            #expect(events[1].state?.severity == .warning)
        }
    }

    @Test("a change's events name the caller its verified token names; stb-actor decides nothing")
    func changeActor() async throws {
        try await RulesHarness.with(seed: smallSeed) { harness in
            let created = try await harness.createRule("hdr-needs-4k", subject: "hdr", type: .requires, payload: #"{"requires": ["uhd_output"]}"#)
            var ref = Stb_Rules_V1_RuleRef()
            ref.ref = .id(created.id)
            var metadata = Metadata.bearer(TestIdentity.token(.engineer, name: "rules-tester"))
            metadata.addString("somebody-else", forKey: "stb-actor")
            _ = try await harness.rules.unary(Rules.deleteRule, request: ref, metadata: metadata)
            var request = Stb_Rules_V1_WatchRequest()
            request.after = "0:0"
            let events = try await harness.rules.serverStreaming(Rules.watch, request: request, timeout: .seconds(30)) { stream in
                var events: [Stb_Rules_V1_ChangeEvent] = []
                for try await event in stream {
                    events.append(event)
                    if events.count == 2 { break }
                }
                return events
            }
            #expect(events.map(\.action) == [.created, .deleted])
            #expect(events.map(\.actor) == ["tester", "rules-tester"])
            let audit = try await harness.pools[1].query("SELECT actor, actor_id FROM audit_log ORDER BY id")
            #expect(try audit.map { try $0.decode(String.self, String.self) }.map { "\($0.0) \($0.1)" } == ["tester user:tester", "rules-tester user:rules-tester"])
        }
    }
}
