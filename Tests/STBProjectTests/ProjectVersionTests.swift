import STBAuth
import STBMessages
import STBProject
import STBRPC
import STBServiceTestSupport
import Testing

@Suite("project versions", .serialized)
struct ProjectVersionTests {
    @Test("CommitVersion freezes the draft with its hash; versions list newest first; a commit without a change is refused")
    func commitListGet() async throws {
        try await ProjectHarness.with(seed: demoSeed, rules: demoRules) { harness in
            try await harness.createProject("v-one")
            try await harness.set("v-one", [value("max_bitrate", "12000"), value("codec", #""h265""#)])
            let draft = try await harness.config("v-one")
            let first = try await harness.commit("v-one", "first")
            #expect(first.number == 1 && first.parent == 0 && first.message == "first" && first.rolledBackFrom == 0)
            #expect(first.hash_p == draft.hash_p && first.canonicalJson == draft.canonicalJson)
            #expect(first.author == "olivia" && first.authorID == ProjectHarness.userID("olivia") && first.valid)
            #expect(first.catalogRevision > 0 && first.createdAtMs > 0)

            let again = await expectStatus(.failedPrecondition) { try await harness.commit("v-one") }
            #expect(again?.message.contains("nothing to commit") == true)

            try await harness.set("v-one", [include("dolby", true)])
            let second = try await harness.commit("v-one", "second")
            #expect(second.number == 2 && second.parent == 1 && second.hash_p != first.hash_p)
            let project = try await harness.client("olivia").unary(Projects.getProject, request: .init(key: "v-one"))
            #expect(project.latestVersion == 2 && project.draftHash == second.hash_p)

            let listed = try await harness.versions("v-one")
            #expect(listed.map(\.number) == [2, 1] && listed.allSatisfy { $0.canonicalJson.isEmpty })
            #expect(listed[1].hash_p == first.hash_p && listed[1].message == "first")
            let owner = try harness.client("olivia")
            let page1 = try await owner.unary(Projects.listVersions, request: .init(projectKey: "v-one", page: .init(pageSize: 1)))
            #expect(page1.versions.map(\.number) == [2] && page1.page?.total == 2 && page1.page?.nextPageToken.isEmpty == false)
            let page2 = try await owner.unary(Projects.listVersions, request: .init(
                projectKey: "v-one", page: .init(pageSize: 1, pageToken: page1.page?.nextPageToken ?? "")))
            #expect(page2.versions.map(\.number) == [1])

            let got = try await harness.version("v-one", 1)
            #expect(got.canonicalJson == first.canonicalJson && got.hash_p == first.hash_p)
            await expectStatus(.notFound) { _ = try await harness.version("v-one", 9) }
            await expectStatus(.invalidArgument) { _ = try await harness.version("v-one", 0) }

            // A viewer reads versions but cannot commit; a stranger does not see them.
            try await harness.addMember("v-one", "vic", .viewer)
            #expect(try await harness.versions("v-one", as: "vic").count == 2)
            try await harness.set("v-one", [value("max_bitrate", "13000")])
            await expectStatus(.permissionDenied) { try await harness.commit("v-one", as: "vic") }
            await expectStatus(.notFound) { _ = try await harness.versions("v-one", as: "mallory") }
            await expectStatus(.notFound) { _ = try await harness.version("v-one", 1, as: "mallory") }

            // The commit is audited with the hashes it moved between.
            let entry = try #require(try await harness.audit("v-one").last { $0.entity == "version" })
            #expect(entry.entityKey == "2" && entry.oldHash == first.hash_p && entry.newHash == second.hash_p)
        }
    }

    @Test("a draft today's rules refuse cannot be committed, and the refusal writes nothing")
    func invalidDraftIsNotCommitted() async throws {
        try await ProjectHarness.with(seed: demoSeed, rules: demoRules) { harness in
            try await harness.createProject("v-two")
            try await harness.set("v-two", [value("max_bitrate", "45000")])
            try await harness.addRules(bitrateCapRule)
            let before = try await harness.snapshot("v-two")
            let error = await expectStatus(.failedPrecondition) { try await harness.commit("v-two") }
            #expect(preconditionViolations(error).map(\.subject) == ["bitrate-cap"])
            #expect(try await harness.snapshot("v-two") == before)
        }
    }

    @Test("DiffVersions lists options added, removed and changed between versions and the draft")
    func diff() async throws {
        try await ProjectHarness.with(seed: demoSeed, rules: demoRules) { harness in
            try await harness.createProject("v-three")
            try await harness.set("v-three", [value("max_bitrate", "12000"), value("codec", #""h265""#)])
            let first = try await harness.commit("v-three")
            try await harness.set("v-three", [value("max_bitrate", "9000"), include("dolby", true), include("codec", false)])
            let second = try await harness.commit("v-three")

            let forward = try await harness.diff("v-three", from: 1, to: 2)
            #expect(forward.added.map { [$0.key, $0.fromJson, $0.toJson] } == [["dolby", "", "true"]])
            #expect(forward.removed.map { [$0.key, $0.fromJson, $0.toJson] } == [["codec", #""h265""#, ""]])
            #expect(forward.changed.map { [$0.key, $0.fromJson, $0.toJson] } == [["max_bitrate", "12000", "9000"]])
            #expect(forward.fromHash == first.hash_p && forward.toHash == second.hash_p)

            let backward = try await harness.diff("v-three", from: 2, to: 1)
            #expect(backward.added.map(\.key) == ["codec"] && backward.removed.map(\.key) == ["dolby"])
            #expect(backward.changed.map { [$0.fromJson, $0.toJson] } == [["9000", "12000"]])

            let same = try await harness.diff("v-three", from: 1, to: 1)
            #expect(same.added.isEmpty && same.removed.isEmpty && same.changed.isEmpty && same.fromHash == same.toHash)

            // 0 is the draft.
            try await harness.set("v-three", [value("max_bitrate", "10000"), include("serial", true)])
            let draft = try await harness.config("v-three")
            let toDraft = try await harness.diff("v-three", from: 2, to: 0)
            #expect(toDraft.changed.map { [$0.key, $0.fromJson, $0.toJson] } == [["max_bitrate", "9000", "10000"]])
            #expect(toDraft.added.map { [$0.key, $0.toJson] } == [["serial", #""x""#]] && toDraft.removed.isEmpty)
            #expect(toDraft.toHash == draft.hash_p && toDraft.fromHash == second.hash_p)
            let draftToDraft = try await harness.diff("v-three", from: 0, to: 0)
            #expect(draftToDraft.changed.isEmpty && draftToDraft.fromHash == draft.hash_p)

            await expectStatus(.notFound) { _ = try await harness.diff("v-three", from: 1, to: 7) }
            await expectStatus(.notFound) { _ = try await harness.diff("v-three", from: 1, to: 2, as: "mallory") }
        }
    }

    @Test("Rollback restores an older version's settings and commits them as a new version naming its origin")
    func rollbackAccepted() async throws {
        try await ProjectHarness.with(seed: demoSeed, rules: demoRules) { harness in
            try await harness.createProject("v-four")
            try await harness.set("v-four", [value("max_bitrate", "12000"), value("codec", #""h265""#)])
            let first = try await harness.commit("v-four")
            try await harness.set("v-four", [value("max_bitrate", "9000"), include("dolby", true), reset("codec")])
            try await harness.commit("v-four")
            let auditBefore = try await harness.audit("v-four").count

            let restored = try await harness.rollback("v-four", to: 1)
            #expect(restored.number == 3 && restored.parent == 2 && restored.rolledBackFrom == 1)
            #expect(restored.hash_p == first.hash_p && restored.canonicalJson == first.canonicalJson)
            #expect(restored.message == "Roll back to version 1")
            // The settings themselves come back, not only the values: dolby follows the catalog again.
            let config = try await harness.config("v-four")
            #expect(config.hash_p == first.hash_p)
            #expect(config.option("dolby")?.includedSource == .default && config.option("codec")?.valueSource == .override)
            let entries = try await harness.audit("v-four")
            #expect(entries.count == auditBefore + 2 && entries.suffix(2).map(\.entity) == ["options", "version"])

            // Rolling back to what the newest version already is commits nothing.
            let nothing = await expectStatus(.failedPrecondition) { try await harness.rollback("v-four", to: 3) }
            #expect(nothing?.message.contains("nothing to commit") == true)
            await expectStatus(.notFound) { try await harness.rollback("v-four", to: 8) }
            await expectStatus(.invalidArgument) { try await harness.rollback("v-four", to: 0) }

            // Rolling back to the newest version drops the draft's uncommitted edits only.
            try await harness.set("v-four", [value("max_bitrate", "20000")])
            let newest = try await harness.rollback("v-four", to: 3)
            let count = try await harness.versions("v-four").count
            #expect(newest.number == 3 && count == 3)
            #expect(try await harness.config("v-four").hash_p == first.hash_p)
        }
    }

    @Test("Rollback is refused with the violations when today's rules forbid the older version, and writes nothing")
    func rollbackRefusedByRules() async throws {
        try await ProjectHarness.with(seed: demoSeed, rules: demoRules) { harness in
            try await harness.createProject("v-five")
            try await harness.set("v-five", [value("max_bitrate", "45000")])
            try await harness.commit("v-five")
            try await harness.set("v-five", [value("max_bitrate", "9000")])
            try await harness.commit("v-five")
            try await harness.addRules(bitrateCapRule)

            let before = try await harness.snapshot("v-five")
            let error = await expectStatus(.failedPrecondition) { try await harness.rollback("v-five", to: 1) }
            #expect(error?.message.contains("bitrate-cap") == true)
            let violations = preconditionViolations(error)
            #expect(violations.map(\.subject) == ["bitrate-cap"] && violations.first?.type == "RULE_VIOLATION")
            #expect(violations.first?.description_p.contains("max_bitrate=45000") == true)
            #expect(try await harness.snapshot("v-five") == before)
        }
    }

    @Test("Rollback is refused naming the options the catalog no longer has, and writes nothing")
    func rollbackRefusedByCatalog() async throws {
        try await ProjectHarness.with(seed: demoSeed, rules: demoRules) { harness in
            try await harness.createProject("v-six")
            try await harness.set("v-six", [value("max_bitrate", "12000"), value("codec", #""av1""#)])
            try await harness.commit("v-six")
            try await harness.set("v-six", [reset("codec")])
            try await harness.commit("v-six")
            try await harness.deleteCatalogOption("codec", seenBy: "v-six")

            let before = try await harness.snapshot("v-six")
            let error = await expectStatus(.failedPrecondition) { try await harness.rollback("v-six", to: 1) }
            #expect(error?.message.contains(#"the catalog no longer has option "codec""#) == true)
            #expect(preconditionViolations(error).map { [$0.type, $0.subject] } == [["MISSING_OPTION", "codec"]])
            #expect(try await harness.snapshot("v-six") == before)
        }
    }
}
