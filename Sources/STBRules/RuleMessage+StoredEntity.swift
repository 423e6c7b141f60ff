import STBJSON
import STBMessages
import STBPostgres
import STBService

/// A rule as the `rules` table stores it: the wire message is the row.
extension Stb_Rules_V1_Rule: StoredEntity {
    public static let entityName = "rule"
    public static let table = "rules"
    public static let alias = "r"
    public static let source = "rules r"
    public static let columns = """
        r.id, r.key, r.subject, r.type, r.payload::text, r.severity, r.message, r.active,
        (extract(epoch FROM r.created_at) * 1000)::int8, (extract(epoch FROM r.updated_at) * 1000)::int8
        """

    public init(row: PostgresRow) throws(PostgresError) {
        self.init()
        let type: String
        let severity: String
        (id, key, subject, type, payloadJson, severity, message, active, createdAtMs, updatedAtMs) =
            try row.decode(Int64.self, String.self, String.self, String.self, String.self, String.self, String.self, Bool.self, Int64.self, Int64.self)
        self.type = Stb_Rules_V1_RuleType(named: type) ?? .unspecified
        self.severity = severity == "warning" ? .warning : .error
    }

    public var entityKey: String { key }

    public var auditJSON: JSONValue {
        .object([
            "key": .string(key), "subject": .string(subject), "type": .string(type.name ?? "unspecified"),
            "payload": (try? JSONValue.parse(payloadJson)) ?? .string(payloadJson),
            "severity": .string(severityName), "message": .string(message), "active": .bool(active),
        ])
    }

    /// The severity as the table and documents spell it.
    var severityName: String { severity == .warning ? "warning" : "error" }

    /// Inserts this rule and returns the stored row; with `skippingExisting`, no row when
    /// a rule with its key exists.
    func insertion(skippingExisting: Bool = false) -> PostgresQuery {
        """
        WITH r AS (INSERT INTO rules (key, subject, type, payload, severity, message, active)
                   VALUES (\(key), \(subject), \(type.name), \(PostgresJSON(payloadJson)), \(severityName), \(message), \(active))
                   \(unescaped: skippingExisting ? "ON CONFLICT (key) DO NOTHING " : "")RETURNING *)
        SELECT \(unescaped: Self.columns) FROM r
        """
    }

    /// Writes this rule's fields over the row `id` and returns the stored row.
    func update(id: Int64) -> PostgresQuery {
        """
        WITH r AS (UPDATE rules SET subject = \(subject), type = \(type.name), payload = \(PostgresJSON(payloadJson)),
                   severity = \(severityName), message = \(message), active = \(active), updated_at = now()
                   WHERE id = \(id) RETURNING *)
        SELECT \(unescaped: Self.columns) FROM r
        """
    }

    /// Deletes this rule's row and returns it as it was.
    var deletion: PostgresQuery {
        "WITH r AS (DELETE FROM rules WHERE id = \(id) RETURNING *) SELECT \(unescaped: Self.columns) FROM r"
    }
}

extension Stb_Rules_V1_RuleType {
    private static let names: [(type: Self, name: String)] = [
        (.requires, "requires"), (.forbidden, "forbidden"), (.validation, "validation"), (.choice, "choice"),
    ]

    /// The type as the table, documents and the engine spell it; nil for none.
    var name: String? { Self.names.first { $0.type == self }?.name }

    init?(named name: String) {
        guard let type = Self.names.first(where: { $0.name == name })?.type else { return nil }
        self = type
    }
}
