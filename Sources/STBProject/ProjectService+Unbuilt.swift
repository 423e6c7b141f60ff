import Logging
import Synchronization
import STBMessages
import STBRPC

/// Methods not written yet: UNIMPLEMENTED.
extension ProjectService {
    public func commitVersion(_ request: Stb_Project_V1_CommitVersionRequest, context: ServerContext) async throws -> Stb_Project_V1_Version { throw Self.unbuilt }
    public func listVersions(_ request: Stb_Project_V1_ListVersionsRequest, context: ServerContext) async throws -> Stb_Project_V1_ListVersionsResponse { throw Self.unbuilt }
    public func getVersion(_ request: Stb_Project_V1_GetVersionRequest, context: ServerContext) async throws -> Stb_Project_V1_Version { throw Self.unbuilt }
    public func diffVersions(_ request: Stb_Project_V1_DiffVersionsRequest, context: ServerContext) async throws -> Stb_Project_V1_DiffVersionsResponse { throw Self.unbuilt }
    public func rollback(_ request: Stb_Project_V1_RollbackRequest, context: ServerContext) async throws -> Stb_Project_V1_Version { throw Self.unbuilt }
    public func signoff(_ request: Stb_Project_V1_SignoffRequest, context: ServerContext) async throws -> Stb_Project_V1_SignoffRecord { throw Self.unbuilt }
    public func getReleaseStatus(_ request: Stb_Project_V1_GetReleaseStatusRequest, context: ServerContext) async throws -> Stb_Project_V1_ReleaseStatus { throw Self.unbuilt }
    public func createChangeRequest(_ request: Stb_Project_V1_CreateChangeRequestRequest, context: ServerContext) async throws -> Stb_Project_V1_ChangeRequest { throw Self.unbuilt }
    public func getChangeRequest(_ request: Stb_Project_V1_ChangeRequestRef, context: ServerContext) async throws -> Stb_Project_V1_ChangeRequest { throw Self.unbuilt }
    public func listChangeRequests(_ request: Stb_Project_V1_ListChangeRequestsRequest, context: ServerContext) async throws -> Stb_Project_V1_ListChangeRequestsResponse { throw Self.unbuilt }
    public func reviewChangeRequest(_ request: Stb_Project_V1_ReviewChangeRequestRequest, context: ServerContext) async throws -> Stb_Project_V1_ChangeRequest { throw Self.unbuilt }
    public func applyChangeRequest(_ request: Stb_Project_V1_ChangeRequestRef, context: ServerContext) async throws -> Stb_Project_V1_ChangeRequest { throw Self.unbuilt }

    static var unbuilt: RPCError { RPCError(code: .unimplemented, message: "not available yet") }
}
