import STBMessages
import STBPostgres

/// One row of `dashboards` and its message.
struct StoredDashboard: Sendable {
    /// The select list `init(row:)` reads, over `dashboards d`.
    static let columns = """
        d.id, d.owner_id, d.owner, d.name, d.description, d.shared, d.layout::text,
        (extract(epoch FROM d.created_at) * 1000)::int8, (extract(epoch FROM d.updated_at) * 1000)::int8
        """

    let message: Stb_Gateway_V1_Dashboard

    init(row: PostgresRow) throws {
        var dashboard = Stb_Gateway_V1_Dashboard()
        dashboard.id = try row.decode(0, as: Int64.self)
        dashboard.ownerID = try row.decode(1, as: String.self)
        dashboard.owner = try row.decode(2, as: String.self)
        dashboard.name = try row.decode(3, as: String.self)
        dashboard.description_p = try row.decode(4, as: String.self)
        dashboard.shared = try row.decode(5, as: Bool.self)
        dashboard.layoutJson = try row.decode(6, as: String.self)
        dashboard.createdAtMs = try row.decode(7, as: Int64.self)
        dashboard.updatedAtMs = try row.decode(8, as: Int64.self)
        message = dashboard
    }
}
