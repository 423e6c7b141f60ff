import STBAuth
import STBMessages
import STBPostgres

/// A user account as stored in `users`.
struct Account: Sendable {
    /// The select list, in the order `init(row:)` reads it.
    static let columns = """
        u.id::text, u.seq, u.username, u.display_name, u.email, u.role, u.enabled,
        (extract(epoch FROM u.created_at) * 1000)::int8, (extract(epoch FROM u.updated_at) * 1000)::int8,
        coalesce((extract(epoch FROM u.last_login_at) * 1000)::int8, 0)
        """

    var id: String
    var seq: Int64
    var username: String
    var displayName: String
    var email: String
    var role: Role
    var enabled: Bool
    var createdAtMs: Int64
    var updatedAtMs: Int64
    var lastLoginAtMs: Int64

    init(row: PostgresRow) throws(PostgresError) {
        let (id, seq, username, displayName, email, role, enabled, created, updated, lastLogin) = try row.decode(
            String.self, Int64.self, String.self, String.self, String.self, String.self, Bool.self, Int64.self, Int64.self, Int64.self)
        self.id = id
        self.seq = seq
        self.username = username
        self.displayName = displayName
        self.email = email
        // The column's CHECK allows only user roles.
        self.role = Role(claim: role) ?? .viewer
        self.enabled = enabled
        self.createdAtMs = created
        self.updatedAtMs = updated
        self.lastLoginAtMs = lastLogin
    }

    var message: Stb_Gateway_V1_User {
        var user = Stb_Gateway_V1_User()
        user.id = id
        user.username = username
        user.displayName = displayName
        user.email = email
        user.role = role.message
        user.enabled = enabled
        user.createdAtMs = createdAtMs
        user.updatedAtMs = updatedAtMs
        user.lastLoginAtMs = lastLoginAtMs
        return user
    }

    /// The account whose id or username is `reference`, locked when `forUpdate`.
    static func find(_ reference: String, forUpdate: Bool = false, on connection: PostgresConnection) async throws -> Account? {
        let lock: String = forUpdate ? " FOR UPDATE" : ""
        let rows: PostgresRows
        if isUUID(reference) {
            rows = try await connection.query("SELECT \(unescaped: columns) FROM users u WHERE u.id = \(reference)::uuid\(unescaped: lock)")
        } else {
            rows = try await connection.query("SELECT \(unescaped: columns) FROM users u WHERE u.username = \(reference.lowercased())\(unescaped: lock)")
        }
        return try rows.first.map { row throws(PostgresError) in try Account(row: row) }
    }

    /// Whether `text` has the form of a UUID (so a cast cannot fail).
    static func isUUID(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return false }
        for (index, byte) in bytes.enumerated() {
            if [8, 13, 18, 23].contains(index) {
                guard byte == UInt8(ascii: "-") else { return false }
            } else {
                let hex = (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
                    || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
                guard hex else { return false }
            }
        }
        return true
    }
}

extension Role {
    /// The proto enum of this role.
    var message: Stb_Gateway_V1_Role {
        switch self {
        case .viewer: .viewer
        case .operator: .operator
        case .engineer: .engineer
        case .admin: .admin
        case .service: .service
        }
    }

    /// The user role a proto enum names; nil for unspecified, `service` and unknown values.
    init?(userRole message: Stb_Gateway_V1_Role) {
        switch message {
        case .viewer: self = .viewer
        case .operator: self = .operator
        case .engineer: self = .engineer
        case .admin: self = .admin
        default: return nil
        }
    }
}
