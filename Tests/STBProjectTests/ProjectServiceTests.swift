import STBAuth
import STBAuthTestSupport
import STBMessages
import STBPostgres
import STBProject
import STBRPC
import STBServiceTestSupport
import Testing

@Suite("project service", .serialized)
struct ProjectServiceTests {
    @Test("a project is visible to its members and admins only; to anybody else it does not exist")
    func membershipIsolation() async throws {
        try await ProjectHarness.with(seed: demoSeed) { harness in
            let created = try await harness.createProject("stb-one")
            #expect(created.myRole == .owner && created.key == "stb-one" && created.draftHash.count == 32)
            await expectStatus(.alreadyExists) { try await harness.createProject("stb-one", as: "mallory") }

            let stranger = try harness.client("mallory")
            let missing = await expectStatus(.notFound) { _ = try await stranger.unary(Projects.getProject, request: .init(key: "stb-one")) }
            #expect(missing?.message == #"project "stb-one" not found"#)
            await expectStatus(.notFound) { _ = try await harness.config("stb-one", as: "mallory") }
            await expectStatus(.notFound) { try await harness.set("stb-one", [value("max_bitrate", "9000")], as: "mallory") }
            let strangerList = try await stranger.unary(Projects.listProjects, request: .init())
            #expect(strangerList.projects.isEmpty)

            let admin = try harness.client("ada", .admin)
            let adminList = try await admin.unary(Projects.listProjects, request: .init())
            #expect(adminList.projects.map(\.key) == ["stb-one"])

            // A viewer member reads but cannot edit.
            let owner = try harness.client("olivia")
            _ = try await owner.unary(Projects.setMember, request: .init(projectKey: "stb-one", userID: ProjectHarness.userID("vic"), username: "vic", role: .viewer))
            let viewer = try await harness.config("stb-one", as: "vic")
            #expect(viewer.option("max_bitrate")?.valueJson == "8000")
            await expectStatus(.permissionDenied) { try await harness.set("stb-one", [value("max_bitrate", "9000")], as: "vic") }
            let members = try await harness.client("vic").unary(Projects.listMembers, request: .init(key: "stb-one"))
            #expect(Set(members.members.map(\.username)) == ["olivia", "vic"])

            // Removed, the member no longer sees it.
            _ = try await owner.unary(Projects.removeMember, request: .init(projectKey: "stb-one", userID: ProjectHarness.userID("vic")))
            await expectStatus(.notFound) { _ = try await harness.config("stb-one", as: "vic") }
            // The last owner stays.
            await expectStatus(.failedPrecondition) {
                _ = try await owner.unary(Projects.removeMember, request: .init(projectKey: "stb-one", userID: ProjectHarness.userID("olivia")))
            }
        }
    }

    @Test("SetOptions writes an accepted batch, and GetProjectConfig shows effective values with their sources and the hash")
    func setAndRead() async throws {
        try await ProjectHarness.with(seed: demoSeed, rules: demoRules) { harness in
            let project = try await harness.createProject("stb-two")
            let initial = try await harness.config("stb-two")
            #expect(initial.hash_p == project.draftHash)
            #expect(initial.option("max_bitrate")?.valueSource == .default)

            let reply = try await harness.set("stb-two", [value("max_bitrate", "12000"), include("dolby", true), value("codec", #""h265""#)])
            #expect(reply.changed && reply.hash_p != initial.hash_p)
            // dolby at 12000 > 100: the warning comes back with the success.
            #expect(reply.warnings.map(\.ruleKey) == ["dolby-warning"])

            // Nothing built yet since the change: the stored hash answers a current copy...
            let current = try await harness.config("stb-two", known: reply.hash_p)
            #expect(current.unchanged && current.modules.isEmpty && current.hash_p == reply.hash_p)
            // ... and an old copy gets the whole tree.
            let stale = try await harness.config("stb-two", known: initial.hash_p)
            #expect(!stale.unchanged && stale.hash_p == reply.hash_p && !stale.modules.isEmpty)
            let config = try await harness.config("stb-two")
            #expect(config.hash_p == reply.hash_p)
            #expect(config.option("max_bitrate")?.valueJson == "12000" && config.option("max_bitrate")?.valueSource == .override)
            #expect(config.option("dolby")?.included == true && config.option("dolby")?.includedSource == .override)
            #expect(config.option("hdr")?.valueSource == .default && config.option("hdr")?.includedSource == .default)
            #expect(config.canonicalJson == #"{"4k_output":false,"codec":"h265","dolby":true,"hdr":false,"max_bitrate":12000}"#)

            let unchanged = try await harness.config("stb-two", known: config.hash_p)
            #expect(unchanged.unchanged && unchanged.modules.isEmpty)

            // Repeating the batch changes nothing.
            let again = try await harness.set("stb-two", [value("max_bitrate", "12000")])
            #expect(!again.changed && again.hash_p == reply.hash_p)
        }
    }

    @Test("a selection the rules refuse is FAILED_PRECONDITION with each violation, and writes nothing")
    func refusedWritesNothing() async throws {
        try await ProjectHarness.with(seed: demoSeed, rules: demoRules) { harness in
            try await harness.createProject("stb-three")
            try await harness.set("stb-three", [value("max_bitrate", "9000")])
            let before = try await harness.config("stb-three")
            let auditBefore = try await harness.audit("stb-three")

            let error = await expectStatus(.failedPrecondition) {
                try await harness.set("stb-three", [value("hdr", "true"), include("4k_output", false)])
            }
            #expect(error?.message.contains("hdr-needs-4k") == true)
            let violations = error?.details.compactMap { detail -> [Google_Rpc_PreconditionFailure.Violation]? in
                if case .preconditionFailure(let failure) = detail { return failure.violations }
                return nil
            }.flatMap { $0 } ?? []
            #expect(violations.map(\.subject) == ["hdr-needs-4k"])
            #expect(violations.first?.type == "RULE_VIOLATION")
            #expect(violations.first?.description_p.contains("4k_output=excluded") == true)

            let after = try await harness.config("stb-three")
            #expect(after.hash_p == before.hash_p && after.canonicalJson == before.canonicalJson)
            #expect(try await harness.audit("stb-three").count == auditBefore.count)
        }
    }

    @Test("bad input is INVALID_ARGUMENT naming the field, and writes nothing")
    func badInput() async throws {
        try await ProjectHarness.with(seed: demoSeed) { harness in
            try await harness.createProject("stb-four")
            let cases: [(Stb_Project_V1_OptionChange, String)] = [
                (value("nope", "1"), #"changes[0].key: unknown option "nope""#),
                (value("max_bitrate", #""fast""#), "changes[0].value_json"),
                (value("max_bitrate", "60000"), "changes[0].value_json"),
                (value("codec", #""mpeg2""#), "changes[0].value_json"),
                (value("serial", #""y""#), #"changes[0].value_json: option "serial" is not editable"#),
                (value("hdr", "{"), "changes[0].value_json"),
                (Stb_Project_V1_OptionChange(key: "hdr"), "changes[0]: set one of"),
            ]
            for (change, expected) in cases {
                let error = await expectStatus(.invalidArgument) { try await harness.set("stb-four", [change]) }
                #expect(error?.message.contains(expected) == true, "\(change): \(error?.message ?? "")")
            }
            let twice = await expectStatus(.invalidArgument) { try await harness.set("stb-four", [value("hdr", "true"), value("hdr", "false")]) }
            #expect(twice?.message.contains("changes[1].key") == true)
            await expectStatus(.invalidArgument) {
                _ = try await harness.client("olivia").unary(Projects.createProject, request: .init(key: "Bad Key", name: "x"))
            }
            #expect(try await harness.audit("stb-four").count == 2)  // the creation and the owner
        }
    }

    @Test("the audit chain verifies, and finds a row edited behind the service's back")
    func auditChain() async throws {
        try await ProjectHarness.with(seed: demoSeed) { harness in
            try await harness.createProject("stb-five")
            for bitrate in [9000, 10000, 11000] { try await harness.set("stb-five", [value("max_bitrate", "\(bitrate)")]) }
            let owner = try harness.client("olivia")
            let intact = try await owner.unary(Projects.verifyAudit, request: .init(key: "stb-five"))
            #expect(intact.intact && intact.rows == 5)
            let entries = try await harness.audit("stb-five")
            #expect(entries.count == 5 && entries[1].previousRowHash == entries[0].rowHash)
            #expect(entries.last?.actorID == ProjectHarness.userID("olivia") && entries.last?.oldHash == entries[3].newHash)

            // The table owner can switch the append-only trigger off; the chain still tells.
            let tampered = entries[3].id
            let pool = PostgresPool(configuration: PostgresConfiguration(conninfo: harness.projectConninfo, poolSize: 1), group: harness.group)
            try await pool.withTransaction { transaction in
                _ = try await transaction.query("SELECT set_config('stb.role', 'admin', true)")
                _ = try await transaction.query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
                _ = try await transaction.query(#"UPDATE audit_log SET after = '{"max_bitrate": {"value": 5}}' WHERE id = \#(tampered)"#)
                _ = try await transaction.query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
            }
            await pool.close()
            let broken = try await owner.unary(Projects.verifyAudit, request: .init(key: "stb-five"))
            #expect(!broken.intact && broken.firstBrokenID == tampered)
        }
    }

    @Test("row-level security: without the identity of a member, the project tables show nothing")
    func rowLevelSecurity() async throws {
        try await ProjectHarness.with(seed: demoSeed) { harness in
            try await harness.createProject("stb-six")
            try await harness.set("stb-six", [value("max_bitrate", "9000")])
            let pool = PostgresPool(configuration: PostgresConfiguration(conninfo: harness.projectConninfo, poolSize: 1), group: harness.group)
            let tables = ["projects", "members", "project_options", "versions", "signoffs", "change_requests", "audit_log"]
            func counts(user: String, role: String) async throws -> [String: Int64] {
                try await pool.withTransaction { transaction in
                    _ = try await transaction.query("SELECT set_config('stb.user_id', \(user), true), set_config('stb.role', \(role), true)")
                    var counts: [String: Int64] = [:]
                    for table in tables {
                        counts[table] = try await transaction.query(PostgresQuery(sql: "SELECT count(*) FROM \(table)"))[0].decode(0, as: Int64.self)
                    }
                    return counts
                }
            }
            let stranger = try await counts(user: ProjectHarness.userID("mallory"), role: "engineer")
            #expect(stranger.values.allSatisfy { $0 == 0 }, "\(stranger)")
            let nobody = try await counts(user: "", role: "")
            #expect(nobody.values.allSatisfy { $0 == 0 }, "\(nobody)")
            let member = try await counts(user: ProjectHarness.userID("olivia"), role: "engineer")
            #expect(member["projects"] == 1 && member["members"] == 1 && member["project_options"] == 1 && member["audit_log"] == 3)
            // Nor can a stranger write into the project.
            let projectID = try await counts(user: "", role: "admin")["projects"]
            #expect(projectID == 1)
            await #expect(throws: PostgresError.self) {
                try await pool.withTransaction { transaction in
                    _ = try await transaction.query("SELECT set_config('stb.user_id', 'user:mallory', true), set_config('stb.role', 'engineer', true)")
                    _ = try await transaction.query("INSERT INTO project_options (project_id, option_key, included) SELECT 1, 'hdr', true")
                }
            }
            await pool.close()
        }
    }

    @Test("selections go to the rules service by difference from the project's last one, with the same verdicts as whole ones")
    func evaluationByDifference() async throws {
        try await ProjectHarness.with(seed: demoSeed, rules: demoRules) { harness in
            try await harness.createProject("stb-seven")
            try await harness.set("stb-seven", [value("hdr", "true"), value("4k_output", "true")])
            // Back to the default (false) by an empty choice: hdr is left without 4K.
            let error = await expectStatus(.failedPrecondition) {
                try await harness.set("stb-seven", [Stb_Project_V1_OptionChange(key: "4k_output", change: .reset(true))])
            }
            #expect(error?.message.contains("hdr-needs-4k") == true)
            try await harness.set("stb-seven", [value("hdr", "false")])
            try await harness.set("stb-seven", [Stb_Project_V1_OptionChange(key: "4k_output", change: .reset(true))])
            let config = try await harness.config("stb-seven")
            #expect(config.valid && config.option("4k_output")?.valueSource == .default && config.option("hdr")?.valueJson == "false")
            // The rules service evaluated each by difference (its selection cache held the bases).
            #expect(config.rulesRevision > 0)
        }
    }

    @Test("a new project is checked like any draft: catalog defaults a rule refuses make it invalid from the start")
    func newProjectIsChecked() async throws {
        let rules = #"{"rules": [{"key": "codec-needs-dolby", "subject": "codec", "type": "requires", "payload": {"requires": ["dolby"]}}]}"#
        try await ProjectHarness.with(seed: demoSeed, rules: rules) { harness in
            let project = try await harness.createProject("stb-eight")
            #expect(!project.valid)
            let config = try await harness.config("stb-eight")
            #expect(!config.valid && config.violations.map(\.ruleKey) == ["codec-needs-dolby"] && config.rulesRevision > 0)
            // Including dolby (on by default) fixes it.
            try await harness.set("stb-eight", [include("dolby", true)])
            #expect(try await harness.config("stb-eight").valid)
        }
    }

    @Test("a SetMember or SetSignoffAspects that changes nothing writes nothing")
    func noOpWritesNothing() async throws {
        try await ProjectHarness.with(seed: demoSeed) { harness in
            try await harness.createProject("stb-nine")
            let owner = try harness.client("olivia")
            let member = Stb_Project_V1_SetMemberRequest(projectKey: "stb-nine", userID: ProjectHarness.userID("vic"), username: "vic", role: .editor)
            let aspects = Stb_Project_V1_SetSignoffAspectsRequest(projectKey: "stb-nine", aspects: [.init(name: "security", leastRole: .approver)])
            _ = try await owner.unary(Projects.setMember, request: member)
            _ = try await owner.unary(Projects.setSignoffAspects, request: aspects)
            let rows = try await harness.audit("stb-nine").count
            _ = try await owner.unary(Projects.setMember, request: member)
            _ = try await owner.unary(Projects.setSignoffAspects, request: aspects)
            #expect(try await harness.audit("stb-nine").count == rows)
        }
    }
}
