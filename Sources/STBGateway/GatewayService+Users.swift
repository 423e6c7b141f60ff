import STBAuth
import STBJSON
import STBMessages
import STBPostgres
import STBRPC
import STBService

extension GatewayService {
    public func createUser(_ request: Stb_Gateway_V1_CreateUserRequest, context: ServerContext) async throws -> Stb_Gateway_V1_User {
        let origin = CallOrigin(context, trustedProxies: configuration.trustedProxies)
        let username = request.username.lowercased()
        var problems = Self.usernameProblems(username) + Self.profileProblems(displayName: request.displayName, email: request.email)
        if Role(userRole: request.role) == nil { problems.append("role: must be viewer, operator, engineer or admin") }
        problems += passwordProblems(request.password, at: "password")
        try check(problems)
        let admin = try await pool.withConnection { try await administrator(context, on: $0) }
        let hash = try await hasher.hash(request.password)
        let account = try await Self.create(
            username: username, displayName: request.displayName, email: request.email, role: Role(userRole: request.role) ?? .viewer,
            hash: hash, actorID: admin.id, origin: origin, pool: pool)
        return account.message
    }

    public func listUsers(_ request: Stb_Gateway_V1_ListUsersRequest, context: ServerContext) async throws -> Stb_Gateway_V1_ListUsersResponse {
        let page = try Page(request.page)
        return try await pool.withConnection { connection in
            _ = try await administrator(context, on: connection)
            let rows = try await connection.query("""
                SELECT \(unescaped: Account.columns), (SELECT count(*) FROM users) AS total
                FROM users u WHERE u.seq > \(page.after) ORDER BY u.seq LIMIT \(Int64(page.size))
                """)
            let accounts = try rows.map { row throws(PostgresError) in try Account(row: row) }
            var response = Stb_Gateway_V1_ListUsersResponse()
            response.users = accounts.map(\.message)
            response.page = try page.info(rows, lastID: accounts.last?.seq)
            return response
        }
    }

    public func updateUser(_ request: Stb_Gateway_V1_UpdateUserRequest, context: ServerContext) async throws -> Stb_Gateway_V1_User {
        let origin = CallOrigin(context, trustedProxies: configuration.trustedProxies)
        var problems = Self.profileProblems(displayName: request.displayName ?? "", email: request.email ?? "")
        if request.user.isEmpty { problems.append("user: required (an id or a username)") }
        if let role = request.role, Role(userRole: role) == nil { problems.append("role: must be viewer, operator, engineer or admin") }
        try check(problems)
        return try await pool.withTransaction { transaction in
            let admin = try await administrator(context, on: transaction.connection)
            let before = try await Self.target(request.user, on: transaction.connection)
            var after = before
            if let name = request.displayName { after.displayName = name }
            if let email = request.email { after.email = email }
            if let role = request.role.flatMap(Role.init(userRole:)) { after.role = role }
            if let enabled = request.enabled { after.enabled = enabled }
            guard after.id != admin.id || (after.role == .admin && after.enabled) else {
                throw RPCError(code: .failedPrecondition, message: "an admin cannot demote or disable their own account")
            }
            return try await Self.write(after, before: before, actorID: admin.id, origin: origin, in: transaction).message
        }
    }

    public func setPassword(_ request: Stb_Gateway_V1_SetPasswordRequest, context: ServerContext) async throws -> Stb_Gateway_V1_SetPasswordResponse {
        let origin = CallOrigin(context, trustedProxies: configuration.trustedProxies)
        var problems = passwordProblems(request.newPassword, at: "new_password")
        if request.user.isEmpty { problems.append("user: required (an id or a username)") }
        try check(problems)
        let admin = try await pool.withConnection { try await administrator(context, on: $0) }
        let hash = try await hasher.hash(request.newPassword)
        try await pool.withTransaction { transaction in
            let account = try await Self.target(request.user, forUpdate: true, on: transaction.connection)
            try await setPassword(of: account, hash: hash, in: transaction)
            try await transaction.record(ActivityEntry(
                kind: "password_changed", userID: account.id, username: account.username, origin: origin, actorID: admin.id))
        }
        return Stb_Gateway_V1_SetPasswordResponse()
    }

    public func disableUser(_ request: Stb_Gateway_V1_DisableUserRequest, context: ServerContext) async throws -> Stb_Gateway_V1_User {
        var update = Stb_Gateway_V1_UpdateUserRequest()
        update.user = request.user
        update.enabled = false
        return try await updateUser(update, context: context)
    }

    public func listActivity(_ request: Stb_Gateway_V1_ListActivityRequest, context: ServerContext) async throws -> Stb_Gateway_V1_ListActivityResponse {
        let page = try Page(request.page)
        return try await pool.withConnection { connection in
            _ = try await administrator(context, on: connection)
            var userID: String?
            if !request.user.isEmpty {
                userID = try await Self.target(request.user, on: connection).id
            }
            // Newest first: the token is the last id shown, the next page holds older rows.
            let rows = try await connection.query("""
                SELECT \(unescaped: ActivityRow.columns),
                       (SELECT count(*) FROM activity a WHERE \(userID)::uuid IS NULL OR a.user_id = \(userID)::uuid) AS total
                FROM activity a
                WHERE (\(userID)::uuid IS NULL OR a.user_id = \(userID)::uuid) AND (\(page.after) = 0 OR a.id < \(page.after))
                ORDER BY a.id DESC LIMIT \(Int64(page.size))
                """)
            var response = Stb_Gateway_V1_ListActivityResponse()
            response.activities = try rows.map { row throws(PostgresError) in try ActivityRow.message(row) }
            response.page = try page.info(rows, lastID: response.activities.last?.id)
            return response
        }
    }

    // MARK: - Shared

    /// The account `reference` (an id or a username) names, or NOT_FOUND.
    static func target(_ reference: String, forUpdate: Bool = false, on connection: PostgresConnection) async throws -> Account {
        guard let account = try await Account.find(reference, forUpdate: forUpdate, on: connection) else {
            throw RPCError(code: .notFound, message: "user \(quoted(reference)) not found")
        }
        return account
    }

    /// Creates an account with its password hash, recording it; ALREADY_EXISTS for a
    /// taken username.
    static func create(
        username: String, displayName: String, email: String, role: Role, hash: String, actorID: String,
        origin: CallOrigin, pool: PostgresPool
    ) async throws -> Account {
        try await pool.withTransaction { transaction in
            let rows = try await transaction.query("""
                WITH u AS (INSERT INTO users (username, display_name, email, role) VALUES (\(username), \(displayName), \(email), \(role.claim))
                           ON CONFLICT (username) DO NOTHING RETURNING *)
                SELECT \(unescaped: Account.columns) FROM u
                """)
            guard let row = rows.first else {
                throw RPCError(code: .alreadyExists, message: "user \(quoted(username)) already exists")
            }
            let account = try Account(row: row)
            _ = try await transaction.query("INSERT INTO password_hashes (user_id, hash) VALUES (\(account.id)::uuid, \(hash))")
            try await transaction.record(ActivityEntry(
                kind: "user_created", userID: account.id, username: account.username, origin: origin, actorID: actorID,
                detail: ["role": .string(role.claim)]))
            return account
        }
    }

    /// Writes `after` over `before`, recording what changed; a disabled account's
    /// sessions end.
    static func write(_ after: Account, before: Account, actorID: String, origin: CallOrigin, in transaction: PostgresTransaction) async throws -> Account {
        var changed: [String: JSONValue] = [:]
        if after.displayName != before.displayName { changed["display_name"] = .string(after.displayName) }
        if after.email != before.email { changed["email"] = .string(after.email) }
        // Disabling is recorded as `user_disabled`, enabling as an update.
        if after.enabled && !before.enabled { changed["enabled"] = .bool(true) }
        guard !changed.isEmpty || after.role != before.role || after.enabled != before.enabled else { return before }
        let rows = try await transaction.query("""
            UPDATE users u SET display_name = \(after.displayName), email = \(after.email), role = \(after.role.claim),
                   enabled = \(after.enabled), updated_at = now()
            WHERE u.id = \(after.id)::uuid RETURNING \(unescaped: Account.columns)
            """)
        let written = try Account(row: rows[0])
        if after.role != before.role {
            try await transaction.record(ActivityEntry(
                kind: "role_changed", userID: after.id, username: after.username, origin: origin, actorID: actorID,
                detail: ["from": .string(before.role.claim), "to": .string(after.role.claim)]))
        }
        if !after.enabled && before.enabled {
            try await transaction.record(ActivityEntry(kind: "user_disabled", userID: after.id, username: after.username, origin: origin, actorID: actorID))
        }
        if after.role != before.role || !after.enabled {
            // A changed role is in the next access token only: end the sessions so that
            // the next token is not minted from an old refresh token.
            try await GatewayRevocation.revokeSessions(of: after.id, in: transaction)
        }
        if !changed.isEmpty {
            try await transaction.record(ActivityEntry(
                kind: "user_updated", userID: after.id, username: after.username, origin: origin, actorID: actorID, detail: changed))
        }
        return written
    }

    /// Problems with a new username.
    static func usernameProblems(_ username: String) -> [String] {
        let bytes = Array(username.utf8)
        let allowed = bytes.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2e || $0 == 0x5f || $0 == 0x2d }
        guard let first = bytes.first, bytes.count <= 64, allowed, first != 0x2e, first != 0x5f, first != 0x2d else {
            return ["username: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"]
        }
        return []
    }

    /// Problems with a display name and an email.
    static func profileProblems(displayName: String, email: String) -> [String] {
        var problems: [String] = []
        if displayName.count > 200 { problems.append("display_name: at most 200 characters") }
        if email.count > 254 { problems.append("email: at most 254 characters") }
        if !email.isEmpty, !(email.contains("@") && !email.hasPrefix("@") && !email.hasSuffix("@")) || email.contains(" ") {
            problems.append("email: \(quoted(email)) is not an email address")
        }
        return problems
    }
}

/// Session revocation usable from static helpers.
enum GatewayRevocation {
    static func revokeSessions(of userID: String, in transaction: PostgresTransaction) async throws {
        _ = try await transaction.query("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = \(userID)::uuid AND revoked_at IS NULL")
    }
}

extension GatewayService {
    /// A user's id by username (service accounts and admins: the method table says so).
    public func lookupUser(_ request: Stb_Gateway_V1_LookupUserRequest, context: ServerContext) async throws -> Stb_Gateway_V1_UserRef {
        guard !request.username.isEmpty else { throw invalidArgument(["username: required"]) }
        let account = try await pool.withConnection { connection in
            try await Account.find(request.username, on: connection)
        }
        guard let account, account.username == request.username else {
            throw RPCError(code: .notFound, message: "user \(quoted(request.username)) not found")
        }
        return Stb_Gateway_V1_UserRef(id: account.id, username: account.username, enabled: account.enabled)
    }
}
