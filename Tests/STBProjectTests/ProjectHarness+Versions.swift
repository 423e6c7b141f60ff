import STBAuth
import STBMessages
import STBProject
import STBRPC
import Testing

/// Calls the version, signoff and change request tests share.
extension ProjectHarness {
    @discardableResult
    func commit(_ project: String, _ message: String = "", as user: String = "olivia") async throws -> Stb_Project_V1_Version {
        try await client(user).unary(Projects.commitVersion, request: Stb_Project_V1_CommitVersionRequest(projectKey: project, message: message))
    }

    func versions(_ project: String, as user: String = "olivia") async throws -> [Stb_Project_V1_Version] {
        try await client(user).unary(Projects.listVersions, request: Stb_Project_V1_ListVersionsRequest(projectKey: project)).versions
    }

    func version(_ project: String, _ number: UInt32, as user: String = "olivia") async throws -> Stb_Project_V1_Version {
        try await client(user).unary(Projects.getVersion, request: Stb_Project_V1_GetVersionRequest(projectKey: project, number: number))
    }

    func diff(_ project: String, from: UInt32, to: UInt32, as user: String = "olivia") async throws -> Stb_Project_V1_DiffVersionsResponse {
        try await client(user).unary(Projects.diffVersions, request: Stb_Project_V1_DiffVersionsRequest(projectKey: project, from: from, to: to))
    }

    @discardableResult
    func rollback(_ project: String, to: UInt32, as user: String = "olivia") async throws -> Stb_Project_V1_Version {
        try await client(user).unary(Projects.rollback, request: Stb_Project_V1_RollbackRequest(projectKey: project, to: to))
    }

    /// Makes `name` a member of `project` with `role` (as its owner, olivia).
    func addMember(_ project: String, _ name: String, _ role: Stb_Project_V1_ProjectRole) async throws {
        _ = try await client("olivia").unary(Projects.setMember, request: Stb_Project_V1_SetMemberRequest(
            projectKey: project, userID: ProjectHarness.userID(name), username: name, role: role))
    }

    /// Adds the rules of `document` to the rules service (keeping the others).
    func addRules(_ document: String) async throws {
        let admin = try client("root", .admin, port: rulesPort)
        _ = try await admin.unary(Rules.importRules, request: Stb_Rules_V1_ImportRulesRequest(documentJson: document))
    }

    /// Deletes a catalog option and waits until the project service's copy lacks it.
    func deleteCatalogOption(_ key: String, seenBy project: String) async throws {
        let admin = try client("root", .admin, port: catalogPort)
        _ = try await admin.unary(Catalog.deleteOption, request: Stb_Catalog_V1_OptionRef(ref: .key(key)))
        let deadline = ContinuousClock.now + .seconds(30)
        while try await config(project).option(key) != nil {
            guard ContinuousClock.now < deadline else { throw RPCError(code: .deadlineExceeded, message: "the catalog copy kept \(key)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// What a refused call must leave as it was.
    struct ProjectSnapshot: Equatable {
        let auditRows: Int
        let versions: [UInt32]
        let latest: UInt32
        let draftHash: [UInt8]
        let canonical: String
    }

    func snapshot(_ project: String) async throws -> ProjectSnapshot {
        let owner = try client("olivia")
        let state = try await owner.unary(Projects.getProject, request: Stb_Project_V1_ProjectRef(key: project))
        let config = try await config(project)
        return ProjectSnapshot(
            auditRows: try await audit(project).count, versions: try await versions(project).map(\.number),
            latest: state.latestVersion, draftHash: state.draftHash, canonical: config.canonicalJson)
    }
}

/// The precondition failures an error's details list.
func preconditionViolations(_ error: RPCError?) -> [Google_Rpc_PreconditionFailure.Violation] {
    (error?.details ?? []).flatMap { detail -> [Google_Rpc_PreconditionFailure.Violation] in
        if case .preconditionFailure(let failure) = detail { return failure.violations }
        return []
    }
}

func reset(_ key: String) -> Stb_Project_V1_OptionChange {
    Stb_Project_V1_OptionChange(key: key, change: .reset(true))
}

/// A rule refusing bitrates above 40000 (an error).
let bitrateCapRule = """
{"rules": [
  {"key": "bitrate-cap", "subject": "max_bitrate", "type": "validation",
   "payload": {"logic": {"<=": [{"var": "max_bitrate"}, 40000]}}, "message": "bitrate above the cap"}
]}
"""
