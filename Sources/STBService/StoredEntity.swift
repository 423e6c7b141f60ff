import STBJSON
import STBMessages
import STBPostgres
import STBRPC

/// A kind of row a service stores and serves: where it lives, which columns make it,
/// and how a row decodes. Get, list and delete of an entity are then a few lines
/// (`fetch`, `list`, `delete`); what is particular to it (validation, refs, cascades)
/// stays in the service.
public protocol StoredEntity: Sendable {
    /// The entity's name in messages, audit rows and events: "option".
    static var entityName: String { get }
    /// Its own table: "options".
    static var table: String { get }
    /// Its table's alias in `source`: "o".
    static var alias: String { get }
    /// The joins its columns need after its own table (`JOIN modules m ON …`); none by default.
    static var joins: String { get }
    /// The `FROM` clause: its table with `alias`, then `joins`.
    static var source: String { get }
    /// The select list, in the order `init(row:)` reads it.
    static var columns: String { get }

    /// Decodes one row of `SELECT columns FROM source`.
    init(row: PostgresRow) throws(PostgresError)

    /// The row's id (keyset pagination, deletes).
    var id: Int64 { get }
    /// The key audit rows and events name it by.
    var entityKey: String { get }
    /// Its state as audit rows record it.
    var auditJSON: JSONValue { get }
}

/// An equality filter of a list call: `column = value`, or no filter when `value` is empty.
public struct ListFilter: Sendable {
    public let column: String
    public let value: String

    /// `column` is SQL written by the service (`m.key`), `value` the caller's.
    public init(_ column: String, _ value: String) {
        self.column = column
        self.value = value
    }
}

extension StoredEntity {
    public static var joins: String { "" }
    public static var source: String { joins.isEmpty ? "\(table) \(alias)" : "\(table) \(alias) \(joins)" }

    /// `SELECT columns` from rows a statement just wrote: use as
    /// `WITH <alias> AS (INSERT … RETURNING *) \(unescaped: selectWritten)`.
    public static var selectWritten: String { joins.isEmpty ? "SELECT \(columns) FROM \(alias)" : "SELECT \(columns) FROM \(alias) \(joins)" }

    /// Every row, ordered by `order` (SQL written by the service).
    public static func selectAll(orderedBy order: String) -> PostgresQuery {
        "SELECT \(unescaped: columns) FROM \(unescaped: source) ORDER BY \(unescaped: order)"
    }

    /// The rows decoded.
    public static func decode(_ rows: PostgresRows) throws(PostgresError) -> [Self] {
        var entities: [Self] = []
        entities.reserveCapacity(rows.count)
        for row in rows { entities.append(try Self(row: row)) }
        return entities
    }

    /// The row with `id`, or NOT_FOUND.
    public static func find(id: Int64, forUpdate: Bool = false, on connection: PostgresConnection) async throws -> Self {
        guard let entity = try await fetch(where: "\(alias).id", equals: id, forUpdate: forUpdate, on: connection) else {
            throw RPCError(code: .notFound, message: "\(entityName) id \(id) not found")
        }
        return entity
    }

    /// The row whose `columns` (SQL written by the service) equal `values`, or NOT_FOUND
    /// naming it as `described`.
    public static func find(
        where columns: [String], equal values: [String], described: String, forUpdate: Bool = false, on connection: PostgresConnection
    ) async throws -> Self {
        precondition(columns.count == values.count && !columns.isEmpty, "one value per column")
        var query = PostgresQuery.StringInterpolation(literalCapacity: 128, interpolationCount: values.count)
        query.appendLiteral("SELECT \(self.columns) FROM \(source) WHERE ")
        for (index, column) in columns.enumerated() {
            query.appendLiteral(index == 0 ? "\(column) = " : " AND \(column) = ")
            query.appendInterpolation(values[index])
        }
        if forUpdate { query.appendLiteral(" FOR UPDATE OF \(alias)") }
        let rows = try await connection.query(PostgresQuery(stringInterpolation: query))
        guard let row = rows.first else { throw RPCError(code: .notFound, message: "\(entityName) \(described) not found") }
        return try Self(row: row)
    }

    /// The first row where `column` (SQL written by the service) equals `value`, locked
    /// for the transaction when `forUpdate`; nil when there is none.
    public static func fetch(
        where column: String, equals value: some PostgresEncodable, forUpdate: Bool = false, on connection: PostgresConnection
    ) async throws(PostgresError) -> Self? {
        let lock = forUpdate ? " FOR UPDATE OF \(alias)" : ""
        let rows = try await connection.query("SELECT \(unescaped: columns) FROM \(unescaped: source) WHERE \(unescaped: column) = \(value)\(unescaped: lock)")
        return try rows.first.map { row throws(PostgresError) in try Self(row: row) }
    }

    /// Every row where `column` equals `value`, by id: what a cascading delete walks.
    public static func all(where column: String, equals value: some PostgresEncodable, on connection: PostgresConnection) async throws(PostgresError) -> [Self] {
        try decode(try await connection.query("SELECT \(unescaped: columns) FROM \(unescaped: source) WHERE \(unescaped: column) = \(value) ORDER BY \(unescaped: alias).id"))
    }

    /// One page of the rows that pass `filters`, by id, with the page info (its total
    /// counts every match).
    public static func list(_ page: Page, filters: [ListFilter] = [], pool: PostgresPool) async throws -> (entities: [Self], info: Stb_Common_V1_PageInfo) {
        var query = PostgresQuery.StringInterpolation(literalCapacity: 256, interpolationCount: 2 + filters.count * 4)
        func appendFilters(to query: inout PostgresQuery.StringInterpolation) {
            for filter in filters {
                query.appendLiteral(" AND (")
                query.appendInterpolation(filter.value)
                query.appendLiteral(" = '' OR \(filter.column) = ")
                query.appendInterpolation(filter.value)
                query.appendLiteral(")")
            }
        }
        query.appendLiteral("SELECT \(columns), (SELECT count(*) FROM \(source) WHERE true")
        appendFilters(to: &query)
        query.appendLiteral(") AS total FROM \(source) WHERE \(alias).id > ")
        query.appendInterpolation(page.after)
        appendFilters(to: &query)
        query.appendLiteral(" ORDER BY \(alias).id LIMIT ")
        query.appendInterpolation(Int64(page.size))
        let rows = try await pool.query(PostgresQuery(stringInterpolation: query))
        let entities = try decode(rows)
        return (entities, try page.info(rows, lastID: entities.last?.id))
    }

    /// Deletes this row (in the caller's transaction).
    public func delete(in transaction: PostgresTransaction) async throws(PostgresError) {
        _ = try await transaction.query("DELETE FROM \(unescaped: Self.table) WHERE id = \(id)")
    }
}
