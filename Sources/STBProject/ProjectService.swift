import Logging
import STBAPI
import STBJSON
import STBMessages
import STBPostgres
import STBRPC
import STBService
import Synchronization

/// The project service: projects and their members, option selections checked by the
/// rules service, hashed versions, signoffs, change requests, a hash-chained audit log
/// and the change feed.
///
/// Every database read and write runs in a transaction that carries the caller's
/// identity (`withIdentity`), under row-level security: a project is invisible to
/// anybody but its members, admins and service accounts, whatever a handler asks for.
public final class ProjectService: Stb_Project_V1_ProjectsService, Sendable {
    let pool: PostgresPool
    /// The change feed: one event per change, in commit order.
    public let outbox: Outbox
    let feed: OutboxFeed
    let logger: Logger
    let rules: RPCClient
    /// The gateway, for members named by username (nil: members are named by id only).
    let gateway: RPCClient?
    let state = Mutex(State())
    /// Bumped when drift should run (a new catalog copy, a rules change).
    let driftSignal = ChangeSignal()
    let driftConcurrency: Int

    /// The outbox channel woken on every project commit.
    public static let channel = "project_events"

    struct State {
        var catalog: ProjectCatalog?
        var catalogBehind: String?
        /// The newest rules revision seen (a rules change event, an evaluation).
        var rulesRevision: UInt64 = 0
        /// Built configurations, by project id.
        var configs: [Int64: CachedConfig] = [:]
        /// Bumped per project whenever its cached configuration is dropped: a build that
        /// started before is not cached (it may have read the old draft).
        var generations: [Int64: UInt64] = [:]
        /// Each project's last selection the rules service evaluated, by project id: the
        /// base of the next evaluation by difference.
        var ruleBases: [Int64: RuleBase] = [:]
        /// Drafts as last committed here, by project id, with their `draft_revision`: used
        /// only when the row still has that revision (every change of a draft bumps it).
        var drafts: [Int64: (revision: Int64, draft: Draft)] = [:]
        /// Project ids by key, for invalidation by the change feed (which names keys).
        var ids: [String: Int64] = [:]
        /// What a caller may do with a project, by (subject, project key).
        var access: [AccessKey: ProjectAccess] = [:]
    }

    struct AccessKey: Hashable {
        let subject: String
        let project: String
    }

    /// A caller's standing in a project it can see.
    struct ProjectAccess: Sendable {
        let id: Int64
        let key: String
        /// The member's role; `owner` for admins and service accounts.
        let role: Stb_Project_V1_ProjectRole
        let memberRole: Stb_Project_V1_ProjectRole
        let archived: Bool
    }

    struct RuleBase: Sendable {
        let hash: [UInt8]
        let draft: Draft
        let catalogRevision: UInt64
    }

    struct CachedConfig: Sendable {
        let catalogRevision: UInt64
        let config: Stb_Project_V1_ProjectConfig
    }

    /// A service on `pool`'s project database that checks selections with the rules
    /// service at `rules` (the caller's token is forwarded; `serviceCredentials` are the
    /// service's own, for drift). Call `catalogChanged` with a catalog copy before serving.
    public init(
        pool: PostgresPool, signal: ChangeSignal, rules: RPCClient, gateway: RPCClient? = nil, driftConcurrency: Int = 8,
        logger: Logger
    ) {
        self.gateway = gateway
        self.pool = pool
        self.outbox = Outbox(table: "events", channel: Self.channel, revisionTable: "project_revision")
        self.feed = OutboxFeed(outbox: outbox, pool: pool, signal: signal)
        self.rules = rules
        self.driftConcurrency = driftConcurrency
        self.logger = logger
    }

    // MARK: - Catalog copy

    /// A new catalog copy arrived: cached configurations are rebuilt on demand and drift
    /// re-evaluates every project.
    public func catalogChanged(_ configuration: Stb_Catalog_V1_GetConfigResponse) {
        let catalog = ProjectCatalog(configuration)
        state.withLock { state in
            state.catalog = catalog
            state.configs.removeAll()
            for id in state.generations.keys { state.generations[id]! &+= 1 }
        }
        driftSignal.bump()
        logger.info("catalog copy updated", metadata: ["revision": "\(configuration.revision)"])
    }

    /// The catalog copy fell behind or is current again.
    public func catalogFreshnessChanged(_ freshness: CatalogReplica.Freshness) {
        let reason: String? = switch freshness {
        case .current: nil
        case .behind(let have, let announced, _):
            "the catalog copy is behind (revision \(have); the catalog is at \(announced) or later) and cannot be refreshed"
        }
        state.withLock { $0.catalogBehind = reason }
    }

    /// The revision of the catalog copy, if any.
    public var catalogRevision: UInt64? { state.withLock { $0.catalog?.revision } }

    /// Whether calls can be served: a current catalog copy exists.
    public var isServing: Bool { state.withLock { $0.catalog != nil && $0.catalogBehind == nil } }

    /// The rules changed (another revision): drift re-evaluates every project.
    public func rulesChanged(revision: UInt64) {
        let newer = state.withLock { state -> Bool in
            guard revision > state.rulesRevision else { return false }
            state.rulesRevision = revision
            return true
        }
        if newer { driftSignal.bump() }
    }

    func catalog() throws -> ProjectCatalog {
        try state.withLock { state in
            guard let catalog = state.catalog else {
                throw RPCError(code: .unavailable, message: "no copy of the catalog yet; retry shortly")
            }
            if let behind = state.catalogBehind { throw RPCError(code: .unavailable, message: "\(behind); retry later") }
            return catalog
        }
    }

    // MARK: - Identity and access

    /// Runs `body` in a transaction that carries `caller`'s identity for row-level security.
    func withIdentity<R: Sendable>(
        _ caller: CallerIdentity, _ body: (PostgresTransaction) async throws -> R
    ) async throws -> R {
        try await pool.withTransaction(maxAttempts: 3) { transaction in
            _ = try await transaction.query(
                "SELECT set_config('stb.user_id', \(caller.subject), true), set_config('stb.role', \(caller.role), true)")
            return try await body(transaction)
        }
    }

    /// The caller's standing in the project `key`: NOT_FOUND when the project does not
    /// exist or the caller may not see it (the two are indistinguishable), PERMISSION_DENIED
    /// when its role is below `least`, FAILED_PRECONDITION for a change to an archived
    /// project.
    func access(
        _ caller: CallerIdentity, _ key: String, least: Stb_Project_V1_ProjectRole = .viewer, changing: Bool = false
    ) async throws -> ProjectAccess {
        guard !key.isEmpty else { throw invalidArgument(["project_key: required"]) }
        let cacheKey = AccessKey(subject: caller.subject, project: key)
        let found: ProjectAccess
        if let cached = state.withLock({ $0.access[cacheKey] }) {
            found = cached
        } else {
            let loaded = try await withIdentity(caller) { transaction in
                try await Self.loadAccess(key, caller: caller, in: transaction)
            }
            guard let loaded else { throw Self.notFound(key) }
            state.withLock { state in
                if state.access.count > 100_000 { state.access.removeAll() }
                state.access[cacheKey] = loaded
            }
            found = loaded
        }
        guard found.role.rawValue >= least.rawValue else {
            throw RPCError(code: .permissionDenied, message: "this needs the project role \(Self.roleName(least)) in \(quoted(key))")
        }
        if changing && found.archived {
            throw RPCError(code: .failedPrecondition, message: "project \(quoted(key)) is archived; unarchive it first")
        }
        return found
    }

    static func loadAccess(_ key: String, caller: CallerIdentity, in transaction: PostgresTransaction) async throws -> ProjectAccess? {
        let rows = try await transaction.query("""
            SELECT p.id, p.archived, coalesce(m.role, '') FROM projects p
            LEFT JOIN members m ON m.project_id = p.id AND m.user_id = stb_user()
            WHERE p.key = \(key)
            """)
        guard let row = rows.first else { return nil }
        let (id, archived, roleName) = try row.decode(Int64.self, Bool.self, String.self)
        let member = role(named: roleName)
        let privileged = caller.role == "admin" || caller.role == "service"
        return ProjectAccess(id: id, key: key, role: privileged ? .owner : member, memberRole: member, archived: archived)
    }

    /// Forgets cached standings and the configuration of a project (its members or state
    /// changed, here or in another instance).
    func invalidate(project key: String, id: Int64? = nil) {
        state.withLock { state in
            state.access = state.access.filter { $0.key.project != key }
            if let id = id ?? state.ids[key] { Self.drop(id, in: &state) }
        }
    }

    /// Forgets the cached configuration of a project whose draft or validity changed.
    func invalidateConfig(_ id: Int64) {
        state.withLock { Self.drop(id, in: &$0) }
    }

    private static func drop(_ id: Int64, in state: inout State) {
        state.configs[id] = nil
        state.generations[id, default: 0] &+= 1
    }

    static func notFound(_ key: String) -> RPCError {
        RPCError(code: .notFound, message: "project \(quoted(key)) not found")
    }

    static func role(named name: String) -> Stb_Project_V1_ProjectRole {
        switch name {
        case "viewer": .viewer
        case "editor": .editor
        case "approver": .approver
        case "owner": .owner
        default: .unspecified
        }
    }

    static func roleName(_ role: Stb_Project_V1_ProjectRole) -> String {
        switch role {
        case .viewer: "viewer"
        case .editor: "editor"
        case .approver: "approver"
        case .owner: "owner"
        default: "none"
        }
    }
}
