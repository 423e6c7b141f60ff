import STBAuth
import STBMessages
import STBProject
import STBRPC
import STBServiceTestSupport
import Testing

@Suite("project signoffs", .serialized)
struct ProjectSignoffTests {
    func sign(_ harness: ProjectHarness, _ project: String, _ version: UInt32, _ aspect: String, as user: String, role: Role = .engineer) async throws -> Stb_Project_V1_SignoffRecord {
        try await harness.client(user, role).unary(Projects.signoff, request: Stb_Project_V1_SignoffRequest(
            projectKey: project, version: version, aspect: aspect, notes: "checked by \(user)"))
    }

    func status(_ harness: ProjectHarness, _ project: String, _ version: UInt32 = 0, as user: String = "olivia") async throws -> Stb_Project_V1_ReleaseStatus {
        try await harness.client(user).unary(Projects.getReleaseStatus, request: Stb_Project_V1_GetReleaseStatusRequest(projectKey: project, version: version))
    }

    @Test("a version is released when every declared aspect is signed for its hash, by those allowed to sign it")
    func signoffRound() async throws {
        try await ProjectHarness.with(seed: demoSeed, rules: demoRules) { harness in
            try await harness.createProject("s-one")
            try await harness.addMember("s-one", "alice", .approver)
            try await harness.addMember("s-one", "eddie", .editor)
            try await harness.addMember("s-one", "quinn", .viewer)
            _ = try await harness.client("olivia").unary(Projects.setSignoffAspects, request: .init(projectKey: "s-one", aspects: [
                .init(name: "security", leastRole: .approver),
                .init(name: "quality", userIds: [ProjectHarness.userID("quinn")]),
            ]))
            await expectStatus(.failedPrecondition) { _ = try await status(harness, "s-one") }
            try await harness.set("s-one", [value("max_bitrate", "12000")])
            let first = try await harness.commit("s-one")

            let undeclared = await expectStatus(.invalidArgument) { _ = try await sign(harness, "s-one", 1, "legal", as: "alice") }
            #expect(undeclared?.message.contains("declared: security, quality") == true)
            // An editor is below the aspect's role, and is not named for `quality`.
            await expectStatus(.permissionDenied) { _ = try await sign(harness, "s-one", 1, "security", as: "eddie") }
            await expectStatus(.permissionDenied) { _ = try await sign(harness, "s-one", 1, "quality", as: "eddie") }
            // An admin who is not a member signs nothing: a signoff is a member's word.
            await expectStatus(.permissionDenied) { _ = try await sign(harness, "s-one", 1, "security", as: "ada", role: .admin) }
            await expectStatus(.notFound) { _ = try await sign(harness, "s-one", 1, "security", as: "mallory") }
            // Only committed versions are signed.
            await expectStatus(.notFound) { _ = try await sign(harness, "s-one", 2, "security", as: "alice") }
            await expectStatus(.invalidArgument) { _ = try await sign(harness, "s-one", 0, "security", as: "alice") }

            let security = try await sign(harness, "s-one", 1, "security", as: "alice")
            #expect(security.hash_p == first.hash_p && security.version == 1 && security.signerID == ProjectHarness.userID("alice"))
            #expect(security.notes == "checked by alice" && security.signedAtMs > 0)
            await expectStatus(.alreadyExists) { _ = try await sign(harness, "s-one", 1, "security", as: "olivia") }

            let half = try await status(harness, "s-one")
            #expect(half.version == 1 && half.hash_p == first.hash_p && !half.released)
            #expect(half.signed.map(\.aspect) == ["security"] && half.missing == ["quality"] && half.stale.isEmpty)

            _ = try await sign(harness, "s-one", 1, "quality", as: "quinn")
            let released = try await status(harness, "s-one", as: "quinn")
            #expect(released.released && released.missing.isEmpty && Set(released.signed.map(\.aspect)) == ["security", "quality"])

            let entry = try #require(try await harness.audit("s-one").last)
            #expect(entry.entity == "signoff" && entry.entityKey == "1/quality" && entry.newHash == first.hash_p)
        }
    }

    @Test("a signoff is never carried over: a new version starts unsigned and the old signoffs show as stale")
    func newVersionStartsUnsigned() async throws {
        try await ProjectHarness.with(seed: demoSeed, rules: demoRules) { harness in
            try await harness.createProject("s-two")
            try await harness.addMember("s-two", "alice", .approver)
            _ = try await harness.client("olivia").unary(Projects.setSignoffAspects, request: .init(projectKey: "s-two", aspects: [
                .init(name: "security", leastRole: .approver), .init(name: "quality", leastRole: .owner),
            ]))
            try await harness.commit("s-two")
            _ = try await sign(harness, "s-two", 1, "security", as: "alice")
            _ = try await sign(harness, "s-two", 1, "quality", as: "olivia")
            #expect(try await status(harness, "s-two").released)

            try await harness.set("s-two", [value("max_bitrate", "11000")])
            let second = try await harness.commit("s-two")
            let fresh = try await status(harness, "s-two")
            #expect(fresh.version == 2 && fresh.hash_p == second.hash_p && !fresh.released)
            #expect(fresh.signed.isEmpty && fresh.missing == ["security", "quality"])
            #expect(fresh.stale.map(\.aspect) == ["security", "quality"] && fresh.stale.allSatisfy { $0.version == 1 && $0.hash_p != second.hash_p })
            // Version 1 keeps its own round.
            let old = try await status(harness, "s-two", 1)
            #expect(old.released && old.stale.isEmpty)

            // Signing version 1 again does not touch version 2.
            await expectStatus(.alreadyExists) { _ = try await sign(harness, "s-two", 1, "security", as: "alice") }
            _ = try await sign(harness, "s-two", 2, "security", as: "alice")
            let partly = try await status(harness, "s-two")
            #expect(partly.signed.map(\.aspect) == ["security"] && partly.missing == ["quality"] && !partly.released)
        }
    }

    @Test("a project without declared aspects is never released")
    func noAspects() async throws {
        try await ProjectHarness.with(seed: demoSeed) { harness in
            try await harness.createProject("s-three")
            try await harness.commit("s-three")
            let status = try await status(harness, "s-three")
            #expect(status.version == 1 && !status.released && status.missing.isEmpty && status.signed.isEmpty)
            await expectStatus(.notFound) { _ = try await self.status(harness, "s-three", as: "mallory") }
        }
    }
}
