/// A failed database operation.
///
/// `code` is what callers branch on; `message` is the server's primary message (or a
/// fixed sentence for client-side failures): never the statement's text, though it may
/// quote one value or token of it (`invalid input syntax for type integer: "x"`).
/// Services map `code` to their own wording before anything reaches a caller. `sqlState`, `detail`, `constraint`, `table` and `column` are the server's
/// diagnostic fields, for mapping to domain errors and for logs.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// 23505. Services report ALREADY_EXISTS.
        public static let uniqueViolation = Code("unique_violation")
        /// 23503. Usually NOT_FOUND (a referenced row is missing) or FAILED_PRECONDITION.
        public static let foreignKeyViolation = Code("foreign_key_violation")
        /// 23514. INVALID_ARGUMENT.
        public static let checkViolation = Code("check_violation")
        /// 23502. INVALID_ARGUMENT.
        public static let notNullViolation = Code("not_null_violation")
        /// 22xxx: a value the column's type rejects. INVALID_ARGUMENT.
        public static let invalidData = Code("invalid_data")
        /// 40001. Retry the transaction; ABORTED if retries run out.
        public static let serializationFailure = Code("serialization_failure")
        /// 40P01. Retry the transaction; ABORTED if retries run out.
        public static let deadlockDetected = Code("deadlock_detected")
        /// 57014, or a cancelled task. CANCELLED (or DEADLINE_EXCEEDED when a deadline fired).
        public static let queryCancelled = Code("query_cancelled")
        /// The connection broke (server restart, network). Retryable: UNAVAILABLE.
        public static let connectionLost = Code("connection_lost")
        /// No connection could be opened. Retryable: UNAVAILABLE.
        public static let connectionFailed = Code("connection_failed")
        /// The pool was shut down.
        public static let poolClosed = Code("pool_closed")
        /// A result column could not be decoded as the requested Swift type. INTERNAL.
        public static let decodingFailed = Code("decoding_failed")
        /// Anything else the server reported. INTERNAL.
        public static let server = Code("server_error")
    }

    public let code: Code
    /// Safe to show a caller: never SQL.
    public let message: String
    public let sqlState: String?
    public let detail: String?
    public let constraint: String?
    public let table: String?
    public let column: String?

    public init(
        code: Code, message: String, sqlState: String? = nil, detail: String? = nil,
        constraint: String? = nil, table: String? = nil, column: String? = nil
    ) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.constraint = constraint
        self.table = table
        self.column = column
    }

    /// Whether running the same work again (on a fresh connection or transaction) may succeed.
    public var isRetryable: Bool {
        switch code {
        case .serializationFailure, .deadlockDetected, .connectionLost, .connectionFailed: true
        default: false
        }
    }

    public var description: String {
        var text = "\(code): \(message)"
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let detail { text += " — \(detail)" }
        return text
    }

    /// The code for a server SQLSTATE.
    static func code(forSQLState state: String) -> Code {
        switch state {
        case "23505": .uniqueViolation
        case "23503": .foreignKeyViolation
        case "23514": .checkViolation
        case "23502": .notNullViolation
        case "40001": .serializationFailure
        case "40P01": .deadlockDetected
        case "57014": .queryCancelled
        // admin_shutdown, crash_shutdown, cannot_connect_now, and the connection-exception class.
        case "57P01", "57P02", "57P03": .connectionLost
        default:
            if state.hasPrefix("08") { .connectionLost }
            else if state.hasPrefix("22") { .invalidData }
            else { .server }
        }
    }

    static func connectionLost(_ reason: String) -> PostgresError {
        PostgresError(code: .connectionLost, message: "the database connection was lost: \(reason)")
    }

    static let cancelled = PostgresError(code: .queryCancelled, message: "the query was cancelled")
}
