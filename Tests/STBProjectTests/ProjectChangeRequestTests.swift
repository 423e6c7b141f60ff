import STBAuth
import STBMessages
import STBProject
import STBRPC
import STBServiceTestSupport
import Testing

@Suite("project change requests", .serialized)
struct ProjectChangeRequestTests {
    func create(_ harness: ProjectHarness, _ project: String, _ changes: [Stb_Project_V1_OptionChange], base: UInt32 = 0, as user: String) async throws -> Stb_Project_V1_ChangeRequest {
        try await harness.client(user).unary(Projects.createChangeRequest, request: Stb_Project_V1_CreateChangeRequestRequest(
            projectKey: project, baseVersion: base, changes: changes, reason: "asked by \(user)"))
    }

    @discardableResult
    func review(_ harness: ProjectHarness, _ project: String, _ id: Int64, approve: Bool = true, as user: String) async throws -> Stb_Project_V1_ChangeRequest {
        try await harness.client(user).unary(Projects.reviewChangeRequest, request: Stb_Project_V1_ReviewChangeRequestRequest(
            projectKey: project, id: id, approve: approve, notes: "reviewed by \(user)"))
    }

    @discardableResult
    func apply(_ harness: ProjectHarness, _ project: String, _ id: Int64, as user: String) async throws -> Stb_Project_V1_ChangeRequest {
        try await harness.client(user).unary(Projects.applyChangeRequest, request: Stb_Project_V1_ChangeRequestRef(projectKey: project, id: id))
    }

    func get(_ harness: ProjectHarness, _ project: String, _ id: Int64) async throws -> Stb_Project_V1_ChangeRequest {
        try await harness.client("olivia").unary(Projects.getChangeRequest, request: Stb_Project_V1_ChangeRequestRef(projectKey: project, id: id))
    }

    /// A project with a first version, an owner (olivia), two approvers (alice, bob) and an
    /// editor (eddie).
    func prepare(_ harness: ProjectHarness, _ project: String) async throws -> Stb_Project_V1_Version {
        try await harness.createProject(project)
        try await harness.addMember(project, "alice", .approver)
        try await harness.addMember(project, "bob", .approver)
        try await harness.addMember(project, "eddie", .editor)
        try await harness.set(project, [value("max_bitrate", "12000")])
        return try await harness.commit(project, "base")
    }

    @Test("a request is reviewed by an approver who is not its author, and applying it commits a version")
    func reviewAndApply() async throws {
        try await ProjectHarness.with(seed: demoSeed, rules: demoRules) { harness in
            let base = try await prepare(harness, "c-one")
            let created = try await create(harness, "c-one", [value("max_bitrate", "15000"), value("codec", #" "h265" "#)], as: "alice")
            #expect(created.status == .pending && created.baseVersion == 1 && created.baseHash == base.hash_p)
            #expect(created.authorID == ProjectHarness.userID("alice") && created.reason == "asked by alice")
            // The changes are kept as validated (the value in canonical form).
            #expect(created.changes.map(\.key) == ["max_bitrate", "codec"] && created.changes[1].change == .valueJson(#""h265""#))

            let bad = await expectStatus(.invalidArgument) { _ = try await create(harness, "c-one", [value("nope", "1")], as: "eddie") }
            #expect(bad?.message.contains(#"changes[0].key: unknown option "nope""#) == true)
            await expectStatus(.invalidArgument) { _ = try await create(harness, "c-one", [], as: "eddie") }
            await expectStatus(.notFound) { _ = try await create(harness, "c-one", [value("max_bitrate", "9000")], base: 5, as: "eddie") }
            await expectStatus(.notFound) { _ = try await create(harness, "c-one", [value("max_bitrate", "9000")], as: "mallory") }

            // Its author may not approve it, even as an approver; an editor may not review at all.
            let own = await expectStatus(.permissionDenied) { try await review(harness, "c-one", created.id, as: "alice") }
            #expect(own?.message.contains("author") == true)
            await expectStatus(.permissionDenied) { try await review(harness, "c-one", created.id, as: "eddie") }
            await expectStatus(.failedPrecondition) { try await apply(harness, "c-one", created.id, as: "eddie") }

            let approved = try await review(harness, "c-one", created.id, as: "bob")
            #expect(approved.status == .approved && approved.reviewerID == ProjectHarness.userID("bob") && approved.reviewNotes == "reviewed by bob")
            await expectStatus(.failedPrecondition) { try await review(harness, "c-one", created.id, approve: false, as: "olivia") }

            let applied = try await apply(harness, "c-one", created.id, as: "eddie")
            #expect(applied.status == .applied && applied.appliedVersion == 2)
            let version = try await harness.version("c-one", 2)
            #expect(version.parent == 1 && version.message == "Change request \(created.id): asked by alice" && version.authorID == ProjectHarness.userID("eddie"))
            let config = try await harness.config("c-one")
            #expect(config.hash_p == version.hash_p && config.option("max_bitrate")?.valueJson == "15000" && config.option("codec")?.valueJson == #""h265""#)
            let again = await expectStatus(.failedPrecondition) { try await apply(harness, "c-one", created.id, as: "eddie") }
            #expect(again?.message.contains("applied (as version 2)") == true)

            // A rejected request is never applied.
            let other = try await create(harness, "c-one", [value("max_bitrate", "16000")], as: "eddie")
            #expect(other.baseVersion == 2)
            let rejected = try await review(harness, "c-one", other.id, approve: false, as: "alice")
            #expect(rejected.status == .rejected)
            await expectStatus(.failedPrecondition) { try await apply(harness, "c-one", other.id, as: "eddie") }

            let owner = try harness.client("olivia")
            let all = try await owner.unary(Projects.listChangeRequests, request: .init(projectKey: "c-one"))
            #expect(all.requests.map(\.id) == [created.id, other.id] && all.page?.total == 2)
            let onlyApplied = try await owner.unary(Projects.listChangeRequests, request: .init(projectKey: "c-one", status: .applied))
            #expect(onlyApplied.requests.map(\.id) == [created.id])
            let pending = try await owner.unary(Projects.listChangeRequests, request: .init(projectKey: "c-one", status: .pending))
            #expect(pending.requests.isEmpty)
            await expectStatus(.notFound) { _ = try await get(harness, "c-one", 999) }

            let actions = try await harness.audit("c-one").filter { $0.entity == "change_request" }.map(\.action)
            #expect(actions == ["created", "updated", "updated", "created", "updated"])
        }
    }

    @Test("two approved requests on the same base applied at once: exactly one wins, the other becomes stale and says why")
    func concurrentApplies() async throws {
        try await ProjectHarness.with(seed: demoSeed, rules: demoRules) { harness in
            _ = try await prepare(harness, "c-two")
            let first = try await create(harness, "c-two", [value("max_bitrate", "15000")], as: "eddie")
            let second = try await create(harness, "c-two", [value("codec", #""av1""#)], as: "eddie")
            try await review(harness, "c-two", first.id, as: "alice")
            try await review(harness, "c-two", second.id, as: "bob")

            async let a: Result<Stb_Project_V1_ChangeRequest, RPCError> = capture { try await apply(harness, "c-two", first.id, as: "eddie") }
            async let b: Result<Stb_Project_V1_ChangeRequest, RPCError> = capture { try await apply(harness, "c-two", second.id, as: "alice") }
            let outcomes = [(first, await a), (second, await b)]
            let winners = outcomes.filter { if case .success = $0.1 { true } else { false } }
            try #require(winners.count == 1, "\(outcomes.map(\.1))")
            let (winner, loser) = winners[0].0.id == first.id ? (first, second) : (second, first)
            guard case .failure(let error) = outcomes.first(where: { $0.0.id == loser.id })!.1 else { return }
            #expect(error.code == .aborted)
            #expect(preconditionViolations(error).map { [$0.type, $0.subject] } == [["STALE_CHANGE_REQUEST", "change_request/\(loser.id)"]])

            // The stale status is kept although the call failed, with the option that moved.
            let stale = try await get(harness, "c-two", loser.id)
            let moved = winner.id == first.id ? "max_bitrate" : "codec"
            #expect(stale.status == .stale && stale.staleReason.contains("1 option differs (\(moved))"), "\(stale.staleReason)")
            #expect(try await get(harness, "c-two", winner.id).status == .applied)
            #expect(try await harness.versions("c-two").map(\.number) == [2, 1])
            await expectStatus(.failedPrecondition) { try await apply(harness, "c-two", loser.id, as: "eddie") }
        }
    }

    @Test("a request becomes stale when the draft moved on since its base")
    func staleAfterEdit() async throws {
        try await ProjectHarness.with(seed: demoSeed, rules: demoRules) { harness in
            _ = try await prepare(harness, "c-three")
            let request = try await create(harness, "c-three", [value("codec", #""av1""#)], as: "eddie")
            try await review(harness, "c-three", request.id, as: "alice")
            try await harness.set("c-three", [include("dolby", true)])
            let before = try await harness.snapshot("c-three")
            let error = await expectStatus(.aborted) { try await apply(harness, "c-three", request.id, as: "eddie") }
            #expect(error?.message.contains("dolby") == true)
            let stale = try await get(harness, "c-three", request.id)
            #expect(stale.status == .stale && stale.staleReason.contains("dolby"))
            let after = try await harness.snapshot("c-three")
            // Only the request's own status change is written (one audit row).
            #expect(after.auditRows == before.auditRows + 1 && after.versions == before.versions && after.draftHash == before.draftHash)
        }
    }

    @Test("a request the rules refuse stays approved, and the refusal writes nothing")
    func refusedApply() async throws {
        try await ProjectHarness.with(seed: demoSeed, rules: demoRules) { harness in
            _ = try await prepare(harness, "c-four")
            let request = try await create(harness, "c-four", [value("hdr", "true"), include("4k_output", false)], as: "eddie")
            try await review(harness, "c-four", request.id, as: "alice")
            let before = try await harness.snapshot("c-four")
            let error = await expectStatus(.failedPrecondition) { try await apply(harness, "c-four", request.id, as: "eddie") }
            #expect(preconditionViolations(error).map(\.subject) == ["hdr-needs-4k"])
            #expect(try await get(harness, "c-four", request.id).status == .approved)
            #expect(try await harness.snapshot("c-four") == before)
        }
    }
}

func capture<T>(_ body: () async throws -> T) async -> Result<T, RPCError> {
    do {
        return .success(try await body())
    } catch let error as RPCError {
        return .failure(error)
    } catch {
        return .failure(RPCError(code: .unknown, message: "\(error)"))
    }
}
