import STBMessages
import STBRPC
import Synchronization

/// Which projects each user belongs to, asked of the project service
/// (`ListMemberships`, as the gateway's service account) and cached for a minute; a
/// stream that passes a `member` event of a project asks again, so a removed member stops
/// receiving that project from the next event on.
public final class MembershipDirectory: Sendable {
    private let fetch: @Sendable (String) async throws -> Set<String>
    private let cache = Mutex<[String: (projects: Set<String>, at: ContinuousClock.Instant)]>([:])
    private let lifetime: Duration

    public init(lifetime: Duration = .seconds(60), fetch: @escaping @Sendable (String) async throws -> Set<String>) {
        self.fetch = fetch
        self.lifetime = lifetime
    }

    /// Asks the project service through `client`.
    public convenience init(client: RPCClient) {
        self.init { user in
            var request = Stb_Project_V1_ListMembershipsRequest()
            request.userID = user
            let reply = try await client.unary(Stb_Project_V1_Projects.listMemberships, request: request, timeout: .seconds(10))
            return Set(reply.memberships.map(\.projectKey))
        }
    }

    /// The projects `user` belongs to; `fresh` asks the project service even when cached.
    public func projects(of user: String, fresh: Bool = false) async throws -> Set<String> {
        if !fresh, let cached = cache.withLock({ $0[user] }), ContinuousClock.now - cached.at < lifetime {
            return cached.projects
        }
        let projects = try await fetch(user)
        cache.withLock { cache in
            if cache.count > 100_000 { cache.removeAll() }
            cache[user] = (projects, .now)
        }
        return projects
    }
}
