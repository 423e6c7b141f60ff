import STBMessages
import STBRPC

/// Fetches each topic's state for a snapshot: the catalog and the rules as the gateway's
/// service account, projects with the caller's own token (so the project service's access
/// rules apply to what the caller sees).
public struct Snapshots: Sendable {
    let catalog: RPCClient
    let rules: RPCClient
    /// Without credentials: each call carries the caller's token.
    let project: RPCClient

    public init(catalog: RPCClient, rules: RPCClient, project: RPCClient) {
        self.catalog = catalog
        self.rules = rules
        self.project = project
    }

    /// The serialized state of `topic` (see `stb.gateway.v1.Snapshot`).
    func payload(of topic: Topic, caller: Metadata) async throws -> [UInt8] {
        switch topic {
        case .catalog:
            let reply = try await catalog.unary(Stb_Catalog_V1_Catalog.getConfig, request: Stb_Catalog_V1_GetConfigRequest(), timeout: .seconds(30))
            return try reply.serializedBytes()
        case .rules:
            var all = Stb_Rules_V1_ListRulesResponse()
            var request = Stb_Rules_V1_ListRulesRequest()
            var page = Stb_Common_V1_PageRequest()
            page.pageSize = 500
            repeat {
                request.page = page
                let reply = try await rules.unary(Stb_Rules_V1_Rules.listRules, request: request, timeout: .seconds(30))
                all.rules += reply.rules
                page.pageToken = reply.page?.nextPageToken ?? ""
            } while !page.pageToken.isEmpty
            return try all.serializedBytes()
        case .project(let key):
            var request = Stb_Project_V1_GetProjectConfigRequest()
            request.projectKey = key
            let reply = try await project.unary(Stb_Project_V1_Projects.getProjectConfig, request: request, metadata: caller, timeout: .seconds(30))
            return try reply.serializedBytes()
        case .projects:
            var all = Stb_Project_V1_ListProjectsResponse()
            var request = Stb_Project_V1_ListProjectsRequest()
            var page = Stb_Common_V1_PageRequest()
            page.pageSize = 500
            repeat {
                request.page = page
                let reply = try await project.unary(Stb_Project_V1_Projects.listProjects, request: request, metadata: caller, timeout: .seconds(30))
                all.projects += reply.projects
                page.pageToken = reply.page?.nextPageToken ?? ""
            } while !page.pageToken.isEmpty
            return try all.serializedBytes()
        case .alarms:
            return []
        }
    }
}
