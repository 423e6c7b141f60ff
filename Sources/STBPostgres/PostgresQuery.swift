/// A statement and its parameters.
///
/// Written as a string literal, every interpolated value becomes a bound parameter
/// (`$1`, `$2`, ...), never SQL text:
///
///     try await connection.query("SELECT name FROM modules WHERE key = \(key)")
///
/// Statements are prepared once per connection and reused, keyed by their text and
/// parameter types.
public struct PostgresQuery: Sendable, ExpressibleByStringInterpolation {
    public private(set) var sql: String
    public private(set) var bindings: PostgresBindings

    /// A statement from SQL text built by the program (never from input) and its
    /// parameters. Labelled on purpose: `PostgresQuery("...\(x)")` would be read as an
    /// interpolated literal and bind `x`.
    public init(sql: String, bindings: PostgresBindings = PostgresBindings()) {
        self.sql = sql
        self.bindings = bindings
    }

    public init(stringLiteral value: String) {
        self.init(sql: value)
    }

    public init(stringInterpolation: StringInterpolation) {
        self.init(sql: stringInterpolation.sql, bindings: stringInterpolation.bindings)
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var bindings = PostgresBindings()

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
            bindings.reserveCapacity(interpolationCount)
        }

        public mutating func appendLiteral(_ literal: String) {
            sql += literal
        }

        /// Binds `value` as the next parameter.
        public mutating func appendInterpolation(_ value: some PostgresEncodable) {
            bindings.append(value)
            appendPlaceholder()
        }

        /// Binds `value` as the next parameter, NULL when nil (typed by `Wrapped`).
        public mutating func appendInterpolation<Wrapped: PostgresEncodable>(_ value: Wrapped?) {
            bindings.append(value)
            appendPlaceholder()
        }

        /// Appends `$N` for the parameter just bound. Not through string interpolation,
        /// whose buffer would cost an allocation per parameter of every query.
        private mutating func appendPlaceholder() {
            sql.append("$")
            sql.append(String(bindings.count))
        }

        /// Splices trusted SQL text (a column list, a table name chosen by the program)
        /// into the statement as it is. Never pass input here: values are interpolated
        /// without a label, which binds them.
        public mutating func appendInterpolation(unescaped sql: String) {
            self.sql += sql
        }
    }
}

/// Parameters in binary format, packed into one buffer.
public struct PostgresBindings: Sendable {
    /// One parameter: its type, and where its value is in `bytes`.
    struct Parameter: Sendable {
        var type: UInt32
        var offset: Int
        /// -1 for NULL.
        var length: Int32
    }

    /// Types and spans in one array: one allocation per query, and the prepared-statement
    /// cache keys on it without building a types array.
    var parameters: [Parameter] = []
    var bytes: [UInt8] = []

    public init() {}

    /// The values, bound in order (`$1`, `$2`, ...).
    public init<each Value: PostgresEncodable>(_ values: repeat each Value) {
        for value in repeat each values { append(value) }
    }

    public var count: Int { parameters.count }

    /// The parameters' type OIDs, in order.
    var types: [UInt32] { parameters.map(\.type) }

    mutating func reserveCapacity(_ count: Int) {
        guard count > 0 else { return }
        parameters.reserveCapacity(count)
        // Room for `count` eight-byte values up front: appending the first value to an
        // empty array would take the slower growth path.
        bytes.reserveCapacity(count * 8)
    }

    public mutating func append<Value: PostgresEncodable>(_ value: Value) {
        let start = bytes.count
        let present = value.encode(into: &bytes)
        parameters.append(Parameter(type: Value.postgresType.oid, offset: start, length: present ? Int32(bytes.count - start) : -1))
    }

}
