import STBAuth
import STBGateway
import STBMessages
import STBPostgres
import STBRPC
import Testing

@Suite("Gateway sessions", .serialized)
struct SessionTests {
    @Test("Login returns a verifiable access token and a refresh token; WhoAmI names the account")
    func login() async throws {
        try await GatewayHarness.with { gateway in
            let reply = try await gateway.login()
            let keys: Stb_Gateway_V1_GetKeysResponse = try await gateway.client.unary(Auth.getKeys, request: Stb_Gateway_V1_GetKeysRequest())
            let claims = try AccessToken.verify(reply.accessToken, keys: KeySet(keys), now: reply.accessExpiresAtMs / 1000 - 600)
            #expect(claims.subject == reply.user?.id && claims.name == "admin" && claims.role == .admin)
            #expect(claims.expiresAt - claims.issuedAt == 600)
            #expect(reply.refreshToken.utf8.count == 43)
            let me = try await gateway.whoAmI(reply.accessToken)
            #expect(me.username == "admin" && me.lastLoginAtMs > 0)
            // The refresh token is stored only as its hash.
            let hashed = try await gateway.pool.query("SELECT count(*) FROM refresh_tokens WHERE token_hash = sha256(convert_to(\(reply.refreshToken), 'UTF8'))")
            #expect(try hashed[0].decode(0, as: Int.self) == 1)
            let lastActivity = try await gateway.activityKinds(of: "admin").suffix(1)
            #expect(lastActivity == ["login"])
        }
    }

    @Test("Each refresh token works once; a used one presented after the overlap revokes its family")
    func reuseRevokesTheFamily() async throws {
        try await GatewayHarness.with { gateway in
            let first = try await gateway.login()
            let second = try await gateway.refresh(first.refreshToken)
            #expect(second.refreshToken != first.refreshToken)
            let third = try await gateway.refresh(second.refreshToken)
            let elsewhere = try await gateway.login()
            try await Task.sleep(for: .milliseconds(1300))
            await expectStatus(.unauthenticated) { _ = try await gateway.refresh(first.refreshToken) }
            // The family is revoked: its newest token no longer works either.
            await expectStatus(.unauthenticated) { _ = try await gateway.refresh(third.refreshToken) }
            // Another session is untouched.
            _ = try await gateway.refresh(elsewhere.refreshToken)
            let reuseRecorded = try await gateway.activityKinds(of: "admin").contains("refresh_reused")
            #expect(reuseRecorded)
        }
    }

    @Test("Inside the overlap a used refresh token gets a fresh pair in the same family")
    func overlapWindow() async throws {
        try await GatewayHarness.with(["GATEWAY_REFRESH_OVERLAP_SECONDS": "5"]) { gateway in
            let first = try await gateway.login()
            async let a = gateway.refresh(first.refreshToken)
            async let b = gateway.refresh(first.refreshToken)
            let (one, two) = try await (a, b)
            #expect(one.refreshToken != two.refreshToken)
            _ = try await gateway.refresh(one.refreshToken)
            _ = try await gateway.refresh(two.refreshToken)
            let families = try await gateway.count("SELECT count(DISTINCT family) FROM refresh_tokens")
            #expect(families == 1)
            let revoked = try await gateway.count("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL")
            #expect(revoked == 0)
        }
    }

    @Test("Logout revokes the family")
    func logout() async throws {
        try await GatewayHarness.with { gateway in
            let first = try await gateway.login()
            let second = try await gateway.refresh(first.refreshToken)
            var request = Stb_Gateway_V1_LogoutRequest()
            request.refreshToken = first.refreshToken
            _ = try await gateway.client.unary(Auth.logout, request: request)
            await expectStatus(.unauthenticated) { _ = try await gateway.refresh(second.refreshToken) }
            let lastKind = try await gateway.activityKinds(of: "admin").last
            #expect(lastKind == "logout")
        }
    }

    @Test("A disabled user can neither log in nor refresh, and is told what an unknown user is")
    func disabledUser() async throws {
        try await GatewayHarness.with { gateway in
            let admin = try await gateway.login()
            try await gateway.createUser("olive", role: .operator, password: "olive password 1", as: admin.accessToken)
            let olive = try await gateway.login("olive", "olive password 1")
            var disable = Stb_Gateway_V1_DisableUserRequest()
            disable.user = "olive"
            let disabled: Stb_Gateway_V1_User = try await gateway.client.unary(Auth.disableUser, request: disable, metadata: Metadata.bearer(admin.accessToken))
            #expect(!disabled.enabled)
            let wrong = await expectStatus(.unauthenticated) { _ = try await gateway.login("olive", "olive password 1") }
            let unknown = await expectStatus(.unauthenticated) { _ = try await gateway.login("nobody", "olive password 1") }
            #expect(wrong?.message == unknown?.message)
            // A name longer than any username is not the account its first 64 characters name.
            let long = String(repeating: "l", count: 64)
            try await gateway.createUser(long, role: .viewer, password: "long password 1", as: admin.accessToken)
            _ = try await gateway.login(long, "long password 1")
            await expectStatus(.unauthenticated) { _ = try await gateway.login(long + "x", "long password 1") }
            await expectStatus(.unauthenticated) { _ = try await gateway.refresh(olive.refreshToken) }
            // Not an admin: user administration is refused.
            let viewer = try await gateway.createUser("vic", role: .viewer, password: "vic password 123", as: admin.accessToken)
            #expect(viewer.role == .viewer)
            let vic = try await gateway.login("vic", "vic password 123")
            await expectStatus(.permissionDenied) {
                let _: Stb_Gateway_V1_User = try await gateway.client.unary(Auth.disableUser, request: disable, metadata: Metadata.bearer(vic.accessToken))
            }
        }
    }

    @Test("Changing the password needs the current one and ends the other sessions, keeping the caller's")
    func changePassword() async throws {
        try await GatewayHarness.with { gateway in
            let admin = try await gateway.login()
            try await gateway.createUser("erin", role: .engineer, password: "erin password 1", as: admin.accessToken)
            let session = try await gateway.login("erin", "erin password 1")
            let other = try await gateway.login("erin", "erin password 1")
            var request = Stb_Gateway_V1_ChangePasswordRequest()
            request.currentPassword = "not the password"
            request.newPassword = "erin password 2"
            await expectStatus(.unauthenticated) {
                let _: Stb_Gateway_V1_ChangePasswordResponse = try await gateway.client.unary(Auth.changePassword, request: request, metadata: Metadata.bearer(session.accessToken))
            }
            request.currentPassword = "erin password 1"
            request.newPassword = "short"
            await expectStatus(.invalidArgument) {
                let _: Stb_Gateway_V1_ChangePasswordResponse = try await gateway.client.unary(Auth.changePassword, request: request, metadata: Metadata.bearer(session.accessToken))
            }
            request.newPassword = "erin password 2"
            request.refreshToken = session.refreshToken
            let _: Stb_Gateway_V1_ChangePasswordResponse = try await gateway.client.unary(Auth.changePassword, request: request, metadata: Metadata.bearer(session.accessToken))
            // The other session ended; the caller's own goes on.
            await expectStatus(.unauthenticated) { _ = try await gateway.refresh(other.refreshToken) }
            _ = try await gateway.refresh(session.refreshToken)
            await expectStatus(.unauthenticated) { _ = try await gateway.login("erin", "erin password 1") }
            _ = try await gateway.login("erin", "erin password 2")
            let changeRecorded = try await gateway.activityKinds(of: "erin").contains("password_changed")
            #expect(changeRecorded)
        }
    }

    @Test("A service account signs in with its secret and gets a service token")
    func serviceLogin() async throws {
        try await GatewayHarness.with { gateway in
            var request = Stb_Gateway_V1_ServiceLoginRequest()
            request.service = "rules"
            request.secret = "rules-secret-0123456789"
            let reply: Stb_Gateway_V1_LoginResponse = try await gateway.client.unary(Auth.serviceLogin, request: request)
            let me = try await gateway.whoAmI(reply.accessToken)
            #expect(me.id == "service:rules" && me.role == .service)
            request.secret = "rules-secret-012345678"
            await expectStatus(.unauthenticated) { let _: Stb_Gateway_V1_LoginResponse = try await gateway.client.unary(Auth.serviceLogin, request: request) }
        }
    }

    @Test("LookupUser gives a user's id by username to service accounts and admins, and to nobody else")
    func lookupUser() async throws {
        try await GatewayHarness.with { gateway in
            let admin = try await gateway.login()
            let created = try await gateway.createUser("lena", role: .engineer, password: "lena password 0123", as: admin.accessToken)
            var login = Stb_Gateway_V1_ServiceLoginRequest()
            login.service = "rules"
            login.secret = "rules-secret-0123456789"
            let service: Stb_Gateway_V1_LoginResponse = try await gateway.client.unary(Auth.serviceLogin, request: login)
            for token in [service.accessToken, admin.accessToken] {
                let found = try await gateway.client.unary(Auth.lookupUser, request: .init(username: "lena"), metadata: Metadata.bearer(token))
                #expect(found.id == created.id && found.username == "lena" && found.enabled)
            }
            await expectStatus(.notFound) {
                _ = try await gateway.client.unary(Auth.lookupUser, request: .init(username: "nobody"), metadata: Metadata.bearer(service.accessToken))
            }
            // An id is not a username.
            await expectStatus(.notFound) {
                _ = try await gateway.client.unary(Auth.lookupUser, request: .init(username: created.id), metadata: Metadata.bearer(service.accessToken))
            }
            let engineer = try await gateway.login("lena", "lena password 0123")
            await expectStatus(.permissionDenied) {
                _ = try await gateway.client.unary(Auth.lookupUser, request: .init(username: "lena"), metadata: Metadata.bearer(engineer.accessToken))
            }
        }
    }
}
