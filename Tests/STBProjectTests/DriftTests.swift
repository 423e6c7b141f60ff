import STBAuth
import STBAuthTestSupport
import STBMessages
import STBPostgres
@testable import STBProject
import STBRPC
import STBServiceTestSupport
import Synchronization
import Testing

@Suite("project drift", .serialized)
struct DriftTests {
    @Test("a rule added later makes a project invalid: its row flips and a validity event carries the violations; removing the rule clears it")
    func ruleDrift() async throws {
        try await ProjectHarness.with(seed: demoSeed) { harness in
            try await harness.createProject("drift-a")
            try await harness.createProject("drift-b")
            try await harness.set("drift-a", [value("hdr", "true"), include("dolby", true)])
            // A follower of the project feed, from now on, as an admin.
            let events = Mutex<[Stb_Project_V1_ChangeEvent]>([])
            let admin = try harness.client("ada", .admin)
            let watcher = Task {
                try await admin.serverStreaming(Projects.watch, request: Stb_Project_V1_WatchRequest()) { stream in
                    for try await event in stream { events.withLock { $0.append(event) } }
                }
            }
            try await Task.sleep(for: .milliseconds(300))

            let rules = try harness.client("root", .admin, port: harness.rulesPort)
            var rule = Stb_Rules_V1_Rule()
            (rule.key, rule.subject, rule.type, rule.payloadJson, rule.severity, rule.active, rule.message) =
                ("hdr-needs-dolby-off", "hdr", .forbidden, #"{"forbidden": ["dolby"]}"#, .error, true, "no Dolby with HDR")
            _ = try await rules.unary(Rules.createRule, request: Stb_Rules_V1_CreateRuleRequest(rule: rule))

            let report = try await harness.service.reevaluateAll()
            #expect(report.evaluated == 2 && report.changed == 1 && report.failed == 0)
            let project = try await harness.client("olivia").unary(Projects.getProject, request: .init(key: "drift-a"))
            #expect(!project.valid)
            let config = try await harness.config("drift-a")
            #expect(!config.valid && config.violations.map(\.ruleKey) == ["hdr-needs-dolby-off"])
            try await harness.waitUntil { events.withLock { $0.contains { $0.entity == "validity" } } }
            let validity = events.withLock { $0.first { $0.entity == "validity" } }
            #expect(validity?.projectKey == "drift-a" && validity?.valid == false)
            #expect(validity?.violations.map(\.ruleKey) == ["hdr-needs-dolby-off"])
            #expect(validity?.actor == "project")

            // A second pass finds nothing new.
            #expect(try await harness.service.reevaluateAll().changed == 0)
            _ = try await rules.unary(Rules.deleteRule, request: Stb_Rules_V1_RuleRef(ref: .key("hdr-needs-dolby-off")))
            #expect(try await harness.service.reevaluateAll().changed == 1)
            #expect(try await harness.config("drift-a").valid)
            let verified = try await harness.client("olivia").unary(Projects.verifyAudit, request: .init(key: "drift-a"))
            #expect(verified.intact)
            watcher.cancel()
        }
    }

    @Test("an option deleted from the catalog makes the projects that set it invalid, named in missing_options")
    func catalogDrift() async throws {
        try await ProjectHarness.with(seed: demoSeed) { harness in
            try await harness.createProject("drift-c")
            try await harness.set("drift-c", [value("max_bitrate", "9000")])
            let before = try #require(harness.service.catalogRevision)
            let catalog = try harness.client("root", .admin, port: harness.catalogPort)
            _ = try await catalog.unary(Catalog.deleteOption, request: Stb_Catalog_V1_OptionRef(ref: .key("max_bitrate")))
            try await harness.waitUntil { (harness.service.catalogRevision ?? 0) > before }
            // The rules copy must have it too, or rules would refuse the unknown key.
            try await harness.waitUntil { harness.rulesService.isServing }
            try await Task.sleep(for: .milliseconds(200))
            let report = try await harness.service.reevaluateAll()
            #expect(report.changed == 1)
            let config = try await harness.config("drift-c")
            #expect(!config.valid && config.missingOptions == ["max_bitrate"])
            #expect(config.violations.map(\.ruleKey) == ["option:max_bitrate/missing"])
        }
    }

    @Test("the drift follower runs by itself after a rules change")
    func follower() async throws {
        try await ProjectHarness.with(seed: demoSeed) { harness in
            try await harness.createProject("drift-d")
            try await harness.set("drift-d", [include("dolby", true)])
            let followers = [Task { await harness.service.followDrift() }, Task { await harness.service.followRules() }]
            try await Task.sleep(for: .milliseconds(300))
            let rules = try harness.client("root", .admin, port: harness.rulesPort)
            var rule = Stb_Rules_V1_Rule()
            (rule.key, rule.subject, rule.type, rule.payloadJson, rule.severity, rule.active) =
                ("dolby-needs-serial", "dolby", .requires, #"{"requires": ["serial"]}"#, .error, true)
            _ = try await rules.unary(Rules.createRule, request: Stb_Rules_V1_CreateRuleRequest(rule: rule))
            let owner = try harness.client("olivia")
            try await harness.waitUntil(timeout: .seconds(30)) {
                try await !owner.unary(Projects.getProject, request: .init(key: "drift-d")).valid
            }
            for follower in followers { follower.cancel() }
        }
    }
}
