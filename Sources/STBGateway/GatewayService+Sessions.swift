import Logging
import STBAuth
import STBJSON
import STBMessages
import STBPostgres
import STBRPC
import STBService

extension GatewayService {
    public func login(_ request: Stb_Gateway_V1_LoginRequest, context: ServerContext) async throws -> Stb_Gateway_V1_LoginResponse {
        let origin = CallOrigin(context, trustedProxies: configuration.trustedProxies)
        // Usernames are stored lowercase; the throttle keys on the same form, capped so a
        // huge name costs nothing.
        let username = String(request.username.lowercased().prefix(64))
        try await admit(username: username, origin: origin)

        // A longer name is no account's (usernames have at most 64 characters): it must
        // not match the account its first 64 characters name.
        let fitting = request.username.count <= 64
        let found = !fitting ? nil : try await pool.withConnection { connection -> (Account, String)? in
            let rows = try await connection.query("""
                SELECT \(unescaped: Account.columns), p.hash FROM users u JOIN password_hashes p ON p.user_id = u.id
                WHERE u.username = \(username)
                """)
            guard let row = rows.first else { return nil }
            return (try Account(row: row), try row.decode(10, as: String.self))
        }
        let verdict: (matches: Bool, needsRehash: Bool)
        do {
            if let (_, stored) = found, request.password.utf8.count <= 1024 {
                verdict = try await hasher.verify(request.password, against: stored)
            } else {
                // An unknown user costs one hash too, so the answer takes as long.
                try await hasher.verifyDummy(String(request.password.prefix(1024)))
                verdict = (false, false)
            }
        } catch is PasswordHasher.Busy {
            throw RPCError(code: .unavailable, message: "the gateway is busy; retry")
        }
        guard let (account, _) = found, verdict.matches, account.enabled else {
            let reason = found == nil ? "unknown_user" : verdict.matches ? "disabled" : "wrong_password"
            try await failedSignIn(username: username, userID: found?.0.id, reason: reason, origin: origin)
            throw RPCError(code: .unauthenticated, message: Self.signInFailed)
        }
        throttle.succeeded(username: username)
        let rehash = verdict.needsRehash ? try await hasher.hash(request.password) : nil
        return try await pool.withTransaction { transaction in
            if let rehash {
                _ = try await transaction.query("UPDATE password_hashes SET hash = \(rehash), updated_at = now() WHERE user_id = \(account.id)::uuid")
            }
            let rows = try await transaction.query("""
                UPDATE users u SET last_login_at = now() WHERE u.id = \(account.id)::uuid RETURNING \(unescaped: Account.columns)
                """)
            let current = try Account(row: rows[0])
            try await transaction.record(ActivityEntry(kind: "login", userID: account.id, username: account.username, origin: origin))
            return try await issue(for: current, family: nil, replacing: nil, origin: origin, in: transaction)
        }
    }

    public func refresh(_ request: Stb_Gateway_V1_RefreshRequest, context: ServerContext) async throws -> Stb_Gateway_V1_LoginResponse {
        let origin = CallOrigin(context, trustedProxies: configuration.trustedProxies)
        let hash = Self.refreshHash(request.refreshToken)
        let overlapSeconds = configuration.refreshOverlap.components.seconds
        enum Outcome: Sendable {
            case issued(Stb_Gateway_V1_LoginResponse)
            case refused
        }
        let outcome: Outcome = try await pool.withTransaction { transaction in
            let rows = try await transaction.query("""
                SELECT t.id, t.family::text, t.user_id::text, t.revoked_at IS NOT NULL, t.expires_at <= now(),
                       t.used_at IS NOT NULL, coalesce(t.used_at > now() - make_interval(secs => \(overlapSeconds)), false)
                FROM refresh_tokens t WHERE t.token_hash = \(hash) FOR UPDATE
                """)
            guard let row = rows.first else { return .refused }
            let (id, family, userID, revoked, expired, used, withinOverlap) = try row.decode(
                Int64.self, String.self, String.self, Bool.self, Bool.self, Bool.self, Bool.self)
            guard !revoked, !expired else { return .refused }
            guard let account = try await Account.find(userID, forUpdate: true, on: transaction.connection), account.enabled else {
                return .refused
            }
            if used && !withinOverlap {
                // A used token presented again: it may have been stolen. End the session.
                _ = try await transaction.query("UPDATE refresh_tokens SET revoked_at = now() WHERE family = \(family)::uuid AND revoked_at IS NULL")
                try await transaction.record(ActivityEntry(
                    kind: "refresh_reused", userID: account.id, username: account.username, origin: origin,
                    detail: ["family": .string(family)]))
                return .refused
            }
            // Inside the overlap a used token gets a fresh pair in the same family (only
            // hashes are stored, so the pair issued first cannot be returned again); the
            // token stays marked used by the first exchange.
            if !used {
                _ = try await transaction.query("UPDATE refresh_tokens SET used_at = now() WHERE id = \(id)")
            }
            try await transaction.record(ActivityEntry(
                kind: "refresh", userID: account.id, username: account.username, origin: origin,
                detail: ["family": .string(family), "overlap": .bool(used)]))
            return .issued(try await issue(for: account, family: family, replacing: id, origin: origin, in: transaction))
        }
        switch outcome {
        case .issued(let response): return response
        case .refused: throw RPCError(code: .unauthenticated, message: "the refresh token is invalid, expired or revoked; log in again")
        }
    }

    public func logout(_ request: Stb_Gateway_V1_LogoutRequest, context: ServerContext) async throws -> Stb_Gateway_V1_LogoutResponse {
        let origin = CallOrigin(context, trustedProxies: configuration.trustedProxies)
        let hash = Self.refreshHash(request.refreshToken)
        try await pool.withTransaction { transaction in
            let rows = try await transaction.query("""
                UPDATE refresh_tokens SET revoked_at = now()
                WHERE family = (SELECT family FROM refresh_tokens WHERE token_hash = \(hash)) AND revoked_at IS NULL
                RETURNING user_id::text, family::text
                """)
            guard let row = rows.first else { return }
            let (userID, family) = try row.decode(String.self, String.self)
            let account = try await Account.find(userID, on: transaction.connection)
            try await transaction.record(ActivityEntry(
                kind: "logout", userID: userID, username: account?.username ?? "", origin: origin, detail: ["family": .string(family)]))
        }
        // The same answer whether or not the token named a live session.
        return Stb_Gateway_V1_LogoutResponse()
    }

    public func serviceLogin(_ request: Stb_Gateway_V1_ServiceLoginRequest, context: ServerContext) async throws -> Stb_Gateway_V1_LoginResponse {
        let origin = CallOrigin(context, trustedProxies: configuration.trustedProxies)
        let name = String(request.service.prefix(64))
        let key = "service:\(name)"
        try await admit(username: key, origin: origin)
        // Compared in constant time; an unknown name is compared with a random secret.
        let expected = configuration.serviceAccounts[name]
        let matches = Crypto.constantTimeEqual(Array((expected ?? Crypto.randomToken()).utf8), Array(request.secret.utf8))
        guard expected != nil, matches else {
            throttle.failed(username: key, peer: origin.peer)
            try await pool.withConnection { connection in
                try await connection.record(ActivityEntry(kind: "service_login_failed", userID: nil, username: key, origin: origin))
            }
            throw RPCError(code: .unauthenticated, message: "invalid service name or secret")
        }
        throttle.succeeded(username: key)
        let (token, expires) = accessToken(subject: key, name: name, role: .service)
        var response = Stb_Gateway_V1_LoginResponse()
        response.accessToken = token
        response.accessExpiresAtMs = expires
        var user = Stb_Gateway_V1_User()
        user.id = key
        user.username = name
        user.role = .service
        user.enabled = true
        response.user = user
        return response
    }

    public func changePassword(_ request: Stb_Gateway_V1_ChangePasswordRequest, context: ServerContext) async throws -> Stb_Gateway_V1_ChangePasswordResponse {
        let origin = CallOrigin(context, trustedProxies: configuration.trustedProxies)
        let caller = try authenticated(context)
        guard caller.subject.serviceAccountName == nil, Account.isUUID(caller.subject) else {
            throw RPCError(code: .permissionDenied, message: "service accounts have no password to change")
        }
        try check(passwordProblems(request.newPassword, at: "new_password"))
        let found = try await pool.withConnection { connection -> (Account, String)? in
            let rows = try await connection.query("""
                SELECT \(unescaped: Account.columns), p.hash FROM users u JOIN password_hashes p ON p.user_id = u.id
                WHERE u.id = \(caller.subject)::uuid
                """)
            guard let row = rows.first else { return nil }
            return (try Account(row: row), try row.decode(10, as: String.self))
        }
        guard let (account, stored) = found, account.enabled else {
            throw RPCError(code: .unauthenticated, message: "the account no longer exists or is disabled")
        }
        try await admit(username: account.username, origin: origin)
        guard request.currentPassword.utf8.count <= 1024, try await hasher.verify(request.currentPassword, against: stored).matches else {
            try await failedSignIn(username: account.username, userID: account.id, reason: "wrong_current_password", origin: origin)
            throw RPCError(code: .unauthenticated, message: "the current password is wrong")
        }
        let hash = try await hasher.hash(request.newPassword)
        let keep = request.refreshToken.isEmpty ? nil : Self.refreshHash(request.refreshToken)
        try await pool.withTransaction { transaction in
            try await setPassword(of: account, hash: hash, keepingFamilyOf: keep, in: transaction)
            try await transaction.record(ActivityEntry(kind: "password_changed", userID: account.id, username: account.username, origin: origin))
        }
        return Stb_Gateway_V1_ChangePasswordResponse()
    }

    // MARK: - Shared

    /// Waits out the throttle's delay for `username` from the caller's peer, or refuses
    /// a locked one with RESOURCE_EXHAUSTED and a RetryInfo.
    func admit(username: String, origin: CallOrigin) async throws {
        switch throttle.verdict(username: username, peer: origin.peer) {
        case .proceed(let delay):
            if delay > .zero { try await Task.sleep(for: delay) }
        case .locked(let retryAfter):
            throw RPCError(
                code: .resourceExhausted, message: "too many failed sign-ins; try again later",
                details: [.retry(after: retryAfter)])
        }
    }

    /// Counts and records a failed sign-in (and the lock it starts).
    func failedSignIn(username: String, userID: String?, reason: String, origin: CallOrigin) async throws {
        let locked = throttle.failed(username: username, peer: origin.peer)
        try await pool.withConnection { connection in
            try await connection.record(ActivityEntry(
                kind: "login_failed", userID: userID, username: username, origin: origin, detail: ["reason": .string(reason)]))
            if locked.username || locked.peer {
                try await connection.record(ActivityEntry(
                    kind: "login_locked", userID: userID, username: username, origin: origin,
                    detail: ["username": .bool(locked.username), "peer": .bool(locked.peer)]))
                logger.warning("sign-in locked after repeated failures", metadata: ["username": "\(username)", "peer": "\(origin.peer)"])
            }
        }
    }

    /// Replaces the account's password hash and ends its sessions: all of them, or all but
    /// the family of the refresh token whose hash is `keep` (the caller's own session).
    func setPassword(of account: Account, hash: String, keepingFamilyOf keep: [UInt8]? = nil, in transaction: PostgresTransaction) async throws {
        _ = try await transaction.query("""
            INSERT INTO password_hashes (user_id, hash) VALUES (\(account.id)::uuid, \(hash))
            ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash, updated_at = now()
            """)
        guard let keep else {
            try await revokeSessions(of: account.id, in: transaction)
            return
        }
        _ = try await transaction.query("""
            UPDATE refresh_tokens SET revoked_at = now()
            WHERE user_id = \(account.id)::uuid AND revoked_at IS NULL
              AND family IS DISTINCT FROM (SELECT family FROM refresh_tokens
                                           WHERE token_hash = \(keep) AND user_id = \(account.id)::uuid AND revoked_at IS NULL)
            """)
    }

    /// Revokes every refresh token of the account.
    func revokeSessions(of userID: String, in transaction: PostgresTransaction) async throws {
        try await GatewayRevocation.revokeSessions(of: userID, in: transaction)
    }

    /// A new access token and refresh token for `account`: a new family, or the next
    /// token of `family` replacing token `replacing`.
    func issue(
        for account: Account, family: String?, replacing: Int64?, origin: CallOrigin, in transaction: PostgresTransaction
    ) async throws -> Stb_Gateway_V1_LoginResponse {
        let refresh = Crypto.randomToken()
        let lifetime = configuration.refreshLifetime.components.seconds
        let rows = try await transaction.query("""
            INSERT INTO refresh_tokens (token_hash, family, user_id, expires_at, peer, user_agent)
            VALUES (\(Self.refreshHash(refresh)), coalesce(\(family)::uuid, gen_random_uuid()), \(account.id)::uuid,
                    now() + make_interval(secs => \(lifetime)), \(origin.peer), \(origin.userAgent))
            RETURNING id, (extract(epoch FROM expires_at) * 1000)::int8
            """)
        let (id, refreshExpires) = try rows[0].decode(Int64.self, Int64.self)
        if let replacing {
            _ = try await transaction.query("UPDATE refresh_tokens SET replaced_by = \(id) WHERE id = \(replacing) AND replaced_by IS NULL")
        }
        let (token, expires) = accessToken(subject: account.id, name: account.username, role: account.role)
        var response = Stb_Gateway_V1_LoginResponse()
        response.accessToken = token
        response.accessExpiresAtMs = expires
        response.refreshToken = refresh
        response.refreshExpiresAtMs = refreshExpires
        response.user = account.message
        return response
    }

    /// What `refresh_tokens.token_hash` holds for `token`.
    static func refreshHash(_ token: String) -> [UInt8] {
        Crypto.sha256(Array(token.utf8))
    }
}
