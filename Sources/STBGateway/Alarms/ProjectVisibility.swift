import STBAuth
import STBMessages
import STBRPC

/// Which projects a caller may see: admins and service accounts every one, any other
/// user the projects they are a member of, as the project service's `ListMemberships`
/// says (asked as the gateway's service account).
public struct ProjectVisibility: Sendable {
    /// The project keys `userID` is a member of.
    public typealias Memberships = @Sendable (_ userID: String) async throws -> [String]

    private let memberships: Memberships

    public init(memberships: @escaping Memberships) {
        self.memberships = memberships
    }

    /// Asks the project service at `projects` (a client presenting the gateway's token).
    public static func projectService(_ projects: RPCClient) -> ProjectVisibility {
        ProjectVisibility { userID in
            var request = Stb_Project_V1_ListMembershipsRequest()
            request.userID = userID
            do {
                let reply = try await projects.unary(Stb_Project_V1_Projects.listMemberships, request: request, timeout: .seconds(10))
                return reply.memberships.map(\.projectKey)
            } catch {
                throw RPCError(code: .unavailable, message: "project memberships are unavailable; try again")
            }
        }
    }

    /// Nobody but admins and service accounts sees anything (no project service configured).
    public static let adminsOnly = ProjectVisibility { _ in [] }

    /// The caller's visible project keys; nil when the caller sees every project.
    func visibleProjects(for caller: CallerIdentity) async throws -> Set<String>? {
        if caller.role == Role.admin.claim || caller.role == Role.service.claim { return nil }
        return Set(try await memberships(caller.subject))
    }
}
