import STBAuth
import STBJSON
import STBPostgres
import STBRPC

/// The first admin: created only while the `users` table is empty, so that the bootstrap
/// path cannot be used to add an account to a running system.
public enum GatewayBootstrap {
    /// Why the bootstrap refused.
    public struct Refusal: Error, CustomStringConvertible {
        public var description: String
    }

    /// Creates admin `username` with `password` when there are no users yet; returns the
    /// new account's id.
    public static func createFirstAdmin(username: String, password: String, configuration: GatewayConfiguration, pool: PostgresPool) async throws -> String {
        let username = username.lowercased()
        var problems = GatewayService.usernameProblems(username)
        if password.count < configuration.passwordMinimumLength {
            problems.append("password: must be at least \(configuration.passwordMinimumLength) characters")
        }
        guard problems.isEmpty else { throw Refusal(description: problems.joined(separator: "; ")) }
        let hash = try await PasswordHasher(concurrency: 1).hash(password)
        return try await pool.withTransaction { transaction in
            // Serialises concurrent bootstraps: the emptiness check and the insert are one step.
            _ = try await transaction.query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            let count = try await transaction.query("SELECT count(*) FROM users")[0].decode(0, as: Int64.self)
            guard count == 0 else { throw Refusal(description: "users exist already: the first admin is created only in an empty gateway") }
            let rows = try await transaction.query("""
                INSERT INTO users (username, display_name, role) VALUES (\(username), 'Administrator', 'admin') RETURNING id::text
                """)
            let id = try rows[0].decode(0, as: String.self)
            _ = try await transaction.query("INSERT INTO password_hashes (user_id, hash) VALUES (\(id)::uuid, \(hash))")
            try await transaction.record(ActivityEntry(
                kind: "user_created", userID: id, username: username, origin: CallOrigin(peer: "local", userAgent: "gatewayd bootstrap-admin"),
                actorID: "bootstrap", detail: ["role": .string("admin")]))
            return id
        }
    }
}
