internal import CLibpq

/// The rows a statement returned, read in place from the server's result.
///
/// Immutable, so it can cross tasks; values are decoded on access:
///
///     for row in rows {
///         let (id, name) = try row.decode(Int64.self, String.self)
///     }
public final class PostgresRows: @unchecked Sendable, RandomAccessCollection {
    // @unchecked: the PGresult is never mutated after it is wrapped, and libpq's
    // result accessors are safe to call from several threads.

    private let result: OpaquePointer?
    public let columnNames: [String]
    private let columnTypes: [PostgresType]
    private let binaryColumns: [Bool]
    public let count: Int
    /// Rows the statement changed (INSERT/UPDATE/DELETE), from the command tag.
    public let affectedRows: Int

    init(result: OpaquePointer) {
        self.result = result
        count = Int(PQntuples(result))
        let columns = Int(PQnfields(result))
        columnNames = (0..<columns).map { String(cString: PQfname(result, Int32($0))) }
        columnTypes = (0..<columns).map { PostgresType(oid: PQftype(result, Int32($0))) }
        binaryColumns = (0..<columns).map { PQfformat(result, Int32($0)) == 1 }
        affectedRows = Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    /// Rows for a statement that returned nothing.
    init() {
        result = nil
        columnNames = []
        columnTypes = []
        binaryColumns = []
        count = 0
        affectedRows = 0
    }

    deinit {
        if let result { PQclear(result) }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public subscript(position: Int) -> PostgresRow { PostgresRow(rows: self, index: position) }

    /// The column's index, or nil when the result has no such column.
    public func columnIndex(_ name: String) -> Int? {
        columnNames.firstIndex(of: name)
    }

    func cell(row: Int, column: Int) -> PostgresCell {
        precondition(column >= 0 && column < columnNames.count, "column \(column) out of range")
        let bytes: UnsafeRawBufferPointer?
        if PQgetisnull(result, Int32(row), Int32(column)) == 1 {
            bytes = nil
        } else {
            let length = Int(PQgetlength(result, Int32(row), Int32(column)))
            bytes = UnsafeRawBufferPointer(start: PQgetvalue(result, Int32(row), Int32(column)), count: length)
        }
        return PostgresCell(
            bytes: bytes, type: columnTypes[column], isBinary: binaryColumns[column],
            columnName: columnNames[column]
        )
    }
}

/// One row of a result.
public struct PostgresRow: Sendable {
    let rows: PostgresRows
    let index: Int

    /// The value of the column at `column`.
    public func decode<T: PostgresDecodable>(_ column: Int, as type: T.Type = T.self) throws(PostgresError) -> T {
        try withExtendedLifetime(rows) { () throws(PostgresError) -> T in
            try T.decode(rows.cell(row: index, column: column))
        }
    }

    /// The value of the column called `name`.
    public func decode<T: PostgresDecodable>(_ name: String, as type: T.Type = T.self) throws(PostgresError) -> T {
        guard let column = rows.columnIndex(name) else {
            throw PostgresError(code: .decodingFailed, message: "the result has no column \"\(name)\"")
        }
        return try decode(column, as: type)
    }

    /// The first columns, in order, as the given types.
    public func decode<each T: PostgresDecodable>(_ types: repeat (each T).Type) throws(PostgresError) -> (repeat each T) {
        var column = 0
        func next<Value: PostgresDecodable>(_: Value.Type) throws(PostgresError) -> Value {
            defer { column += 1 }
            return try decode(column, as: Value.self)
        }
        return (repeat try next((each T).self))
    }
}
