import STBAuth
import STBAuthTestSupport
import STBRPC
import STBService
import Testing

@Suite("The stb_access cookie, for Connect calls only")
struct CookieAuthenticationTests {
    let authenticator = Authenticator(keys: CurrentKeys(TestIdentity.keys))

    private func cookies(_ values: String...) -> Metadata {
        var metadata = Metadata()
        for value in values { metadata.addString(value, forKey: "cookie") }
        return metadata
    }

    @Test("a Connect call may carry the token in the cookie; a gRPC call may not")
    func cookieOnlyWhenAllowed() async throws {
        let token = TestIdentity.token(.operator)
        let metadata = cookies("theme=dark", "stb_access=\(token); other=1")
        let claims = try await authenticator.authenticate(metadata, allowingCookie: true)
        #expect(claims.role == .operator)
        do {
            _ = try await authenticator.authenticate(metadata)
            Issue.record("a call without allowingCookie was authenticated by the cookie")
        } catch {
            #expect(error.code == .unauthenticated)
        }
    }

    @Test("the authorization header wins over the cookie; a bad cookie token is refused")
    func headerWins() async throws {
        var metadata = cookies("stb_access=\(TestIdentity.token(.admin))")
        metadata.addString("Bearer \(TestIdentity.token(.viewer))", forKey: Metadata.authorizationKey)
        #expect(try await authenticator.authenticate(metadata, allowingCookie: true).role == .viewer)
        do {
            _ = try await authenticator.authenticate(cookies("stb_access=not.a.token"), allowingCookie: true)
            Issue.record("a malformed cookie token was accepted")
        } catch {
            #expect(error.code == .unauthenticated && !error.message.contains("not.a.token"))
        }
    }
}
