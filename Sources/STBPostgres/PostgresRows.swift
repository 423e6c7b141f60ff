import Glibc
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
    public let count: Int
    public let columnCount: Int

    init(result: OpaquePointer) {
        self.result = result
        count = Int(PQntuples(result))
        columnCount = Int(PQnfields(result))
    }

    /// Rows changed by an INSERT, UPDATE or DELETE (from the command tag).
    public var affectedRows: Int {
        guard let result else { return 0 }
        return Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    public var columnNames: [String] { (0..<columnCount).map(columnName) }

    func columnName(_ column: Int) -> String {
        String(cString: PQfname(result, Int32(column)))
    }

    /// Rows for a statement that returned nothing.
    init() {
        result = nil
        count = 0
        columnCount = 0
    }

    deinit {
        if let result { PQclear(result) }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public subscript(position: Int) -> PostgresRow { PostgresRow(rows: self, index: position) }

    /// The column's index, or nil when the result has no such column.
    /// The index of the first column called exactly `name`.
    public func columnIndex(_ name: String) -> Int? {
        guard let result else { return nil }
        return name.withCString { wanted in
            (0..<columnCount).first { strcmp(PQfname(result, Int32($0)), wanted) == 0 }
        }
    }

    @usableFromInline
    func cell(row: Int, column: Int) -> PostgresCell {
        precondition(column >= 0 && column < columnCount, "column \(column) out of range")
        let bytes: UnsafeRawBufferPointer?
        if PQgetisnull(result, Int32(row), Int32(column)) == 1 {
            bytes = nil
        } else {
            let length = Int(PQgetlength(result, Int32(row), Int32(column)))
            bytes = UnsafeRawBufferPointer(start: PQgetvalue(result, Int32(row), Int32(column)), count: length)
        }
        return PostgresCell(
            bytes: bytes, type: PostgresType(oid: PQftype(result, Int32(column))),
            isBinary: PQfformat(result, Int32(column)) == 1, column: column, rows: self
        )
    }
}

/// One row of a result.
public struct PostgresRow: Sendable {
    @usableFromInline let rows: PostgresRows
    @usableFromInline let index: Int

    /// The value of the column at `column`.
    // Inlinable, so a caller's decode is specialised for its type (no generic copies of
    // the cell per value).
    @inlinable
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
