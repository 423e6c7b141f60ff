import STBAPI
import STBAuth
import STBMessages
import STBPostgres
import STBRPC
import STBService

/// The gateway's `stb.gateway.v1.Dashboards`: saved dashboards per user. A user sees their
/// own and the shared ones; only the owner (or an admin) changes or deletes one.
public struct DashboardsService: Stb_Gateway_V1_DashboardsService {
    /// The longest name and description, in characters.
    static let maxNameLength = 200
    static let maxDescriptionLength = 2000

    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    public func createDashboard(_ request: Stb_Gateway_V1_CreateDashboardRequest, context: ServerContext) async throws -> Stb_Gateway_V1_Dashboard {
        let caller = try AlarmsService.caller(context)
        let layout = try Self.checked(name: request.name, description: request.description_p, layout: request.layoutJson)
        let rows = try await pool.query("""
            WITH d AS (INSERT INTO dashboards (owner_id, owner, name, description, shared, layout)
                       VALUES (\(caller.subject), \(caller.name), \(request.name), \(request.description_p), \(request.shared), \(PostgresJSON(layout)))
                       RETURNING *)
            SELECT \(unescaped: StoredDashboard.columns) FROM d
            """)
        return try StoredDashboard(row: rows[0]).message
    }

    public func getDashboard(_ request: Stb_Gateway_V1_GetDashboardRequest, context: ServerContext) async throws -> Stb_Gateway_V1_Dashboard {
        let caller = try AlarmsService.caller(context)
        return try await visible(request.id, to: caller, on: pool)
    }

    public func listDashboards(_ request: Stb_Gateway_V1_ListDashboardsRequest, context: ServerContext) async throws -> Stb_Gateway_V1_ListDashboardsResponse {
        let caller = try AlarmsService.caller(context)
        let page = try Page(request.page)
        let admin = caller.role == Role.admin.claim
        let rows = try await pool.query("""
            SELECT \(unescaped: StoredDashboard.columns),
                   (SELECT count(*) FROM dashboards d WHERE \(admin) OR d.shared OR d.owner_id = \(caller.subject)) AS total
            FROM dashboards d WHERE (\(admin) OR d.shared OR d.owner_id = \(caller.subject)) AND d.id > \(page.after)
            ORDER BY d.id LIMIT \(Int64(page.size))
            """)
        let dashboards = try rows.map { try StoredDashboard(row: $0).message }
        var reply = Stb_Gateway_V1_ListDashboardsResponse()
        reply.dashboards = dashboards
        reply.page = try page.info(rows, lastID: dashboards.last?.id)
        return reply
    }

    public func updateDashboard(_ request: Stb_Gateway_V1_UpdateDashboardRequest, context: ServerContext) async throws -> Stb_Gateway_V1_Dashboard {
        let caller = try AlarmsService.caller(context)
        let layout = try Self.checked(name: request.name, description: request.description_p, layout: request.layoutJson)
        return try await pool.withTransaction { transaction in
            _ = try await owned(request.id, by: caller, on: transaction)
            let rows = try await transaction.query("""
                WITH d AS (UPDATE dashboards SET name = \(request.name), description = \(request.description_p), shared = \(request.shared),
                           layout = \(PostgresJSON(layout)), updated_at = now() WHERE id = \(request.id) RETURNING *)
                SELECT \(unescaped: StoredDashboard.columns) FROM d
                """)
            return try StoredDashboard(row: rows[0]).message
        }
    }

    public func deleteDashboard(_ request: Stb_Gateway_V1_DeleteDashboardRequest, context: ServerContext) async throws -> Stb_Gateway_V1_DeleteDashboardResponse {
        let caller = try AlarmsService.caller(context)
        try await pool.withTransaction { transaction in
            _ = try await owned(request.id, by: caller, on: transaction)
            _ = try await transaction.query("DELETE FROM dashboards WHERE id = \(request.id)")
        }
        return Stb_Gateway_V1_DeleteDashboardResponse()
    }

    // MARK: - Shared

    /// Dashboard `id` when `caller` may see it (theirs, shared, or any for an admin);
    /// NOT_FOUND otherwise, so that private dashboards do not show they exist.
    func visible(_ id: Int64, to caller: CallerIdentity, on pool: PostgresPool) async throws -> Stb_Gateway_V1_Dashboard {
        try Self.visible(id, in: try await pool.query("SELECT \(unescaped: StoredDashboard.columns) FROM dashboards d WHERE d.id = \(id)"), to: caller)
    }

    /// Dashboard `id`, locked, when `caller` owns it or is an admin; PERMISSION_DENIED
    /// for someone else's shared dashboard, NOT_FOUND for one they cannot see.
    func owned(_ id: Int64, by caller: CallerIdentity, on transaction: PostgresTransaction) async throws -> Stb_Gateway_V1_Dashboard {
        let rows = try await transaction.query("SELECT \(unescaped: StoredDashboard.columns) FROM dashboards d WHERE d.id = \(id) FOR UPDATE")
        let dashboard = try Self.visible(id, in: rows, to: caller)
        guard dashboard.ownerID == caller.subject || caller.role == Role.admin.claim else {
            throw RPCError(code: .permissionDenied, message: "only the owner or an admin may change dashboard \(id)")
        }
        return dashboard
    }

    static func visible(_ id: Int64, in rows: PostgresRows, to caller: CallerIdentity) throws -> Stb_Gateway_V1_Dashboard {
        guard let row = rows.first else { throw RPCError(code: .notFound, message: "dashboard \(id) not found") }
        let dashboard = try StoredDashboard(row: row).message
        guard dashboard.shared || dashboard.ownerID == caller.subject || caller.role == Role.admin.claim else {
            throw RPCError(code: .notFound, message: "dashboard \(id) not found")
        }
        return dashboard
    }

    /// The layout's canonical text, or INVALID_ARGUMENT listing every problem.
    static func checked(name: String, description: String, layout: String) throws -> String {
        var problems: [String] = []
        if name.trimmingPrefixSpaces.isEmpty { problems.append("name: required") }
        if name.count > maxNameLength { problems.append("name: must be at most \(maxNameLength) characters") }
        if description.count > maxDescriptionLength { problems.append("description: must be at most \(maxDescriptionLength) characters") }
        if name.utf8.contains(0) || description.utf8.contains(0) { problems.append("name: must not contain NUL") }
        let checked = DashboardLayout.check(layout, at: "layout_json")
        problems += checked.problems
        try check(problems)
        return checked.canonical ?? ""
    }
}

extension String {
    /// The text without leading spaces.
    fileprivate var trimmingPrefixSpaces: Substring { drop { $0 == " " } }
}
