import STBAuth
import STBJSON
import STBMessages
import STBRPC
import STBService

/// Sign-in for the browser: `/auth/login`, `/auth/refresh`, `/auth/logout` and
/// `/auth/session`, with the tokens in cookies the page's scripts cannot read
/// (`HttpOnly`, `SameSite=Strict`): `stb_access` (path `/`, sent with every call) and
/// `stb_refresh` (path `/auth`, sent only here). They run the `Auth` service's own Login,
/// Refresh and Logout (same throttle, same activity rows); the tokens never appear in a
/// URL, a response body or a log.
///
/// `Secure` is added when the request came over TLS, as the edge says with
/// `x-forwarded-proto: https` (nghttpx removes a client's own `x-forwarded-proto` and sets
/// its own). The gateway's port is reached only through the edge in a deployment; a
/// client that reaches it directly and sends the header only makes its cookies stricter.
public struct WebSessions: Sendable {
    public static let accessCookie = Authenticator.accessCookie
    public static let refreshCookie = "stb_refresh"

    let gateway: GatewayService
    let authenticator: Authenticator

    public init(gateway: GatewayService, authenticator: Authenticator) {
        self.gateway = gateway
        self.authenticator = authenticator
    }

    /// Registers the `/auth/*` routes.
    public func register(in routes: inout HTTPRoutes) {
        routes.add("/auth/login") { try await login($0) }
        routes.add("/auth/refresh") { try await refresh($0) }
        routes.add("/auth/logout") { try await logout($0) }
        routes.add("/auth/session") { try await session($0) }
        routes.add(prefix: "/auth/") { _ in WebResponses.notFound() }
    }

    func login(_ request: HTTPRequest) async throws -> HTTPResponse {
        if let refusal = Self.refusePost(request) { return refusal }
        guard let document = try? JSONValue.parse(String(decoding: request.body, as: UTF8.self)),
            let username = document["username"]?.stringValue, let password = document["password"]?.stringValue
        else {
            return WebResponses.error(400, code: "invalid_argument", "the body must be {\"username\": string, \"password\": string}")
        }
        var message = Stb_Gateway_V1_LoginRequest()
        message.username = username
        message.password = password
        do {
            let reply = try await gateway.login(message, context: context(request, method: "Login"))
            return signedIn(reply, request)
        } catch let error as RPCError {
            return WebResponses.error(error)
        }
    }

    func refresh(_ request: HTTPRequest) async throws -> HTTPResponse {
        if let refusal = Self.refusePost(request) { return refusal }
        let cleared = Self.clearingCookies(request)
        guard let token = request.cookie(Self.refreshCookie), !token.isEmpty else {
            return WebResponses.error(401, code: "unauthenticated", "no session; log in", headers: cleared)
        }
        var message = Stb_Gateway_V1_RefreshRequest()
        message.refreshToken = token
        do {
            let reply = try await gateway.refresh(message, context: context(request, method: "Refresh"))
            return signedIn(reply, request)
        } catch let error as RPCError where error.code == .unauthenticated {
            return WebResponses.error(error, headers: cleared)
        } catch let error as RPCError {
            return WebResponses.error(error)
        }
    }

    func logout(_ request: HTTPRequest) async throws -> HTTPResponse {
        guard request.method == "POST" else { return WebResponses.methodNotAllowed("POST") }
        if let token = request.cookie(Self.refreshCookie), !token.isEmpty {
            var message = Stb_Gateway_V1_LogoutRequest()
            message.refreshToken = token
            do {
                _ = try await gateway.logout(message, context: context(request, method: "Logout"))
            } catch let error as RPCError {
                return WebResponses.error(error)
            }
        }
        return HTTPResponse(status: 204, headers: [HTTPField("cache-control", "no-store")] + WebResponses.securityHeaders + Self.clearingCookies(request))
    }

    func session(_ request: HTTPRequest) async throws -> HTTPResponse {
        guard request.method == "GET" || request.method == "HEAD" else { return WebResponses.methodNotAllowed("GET, HEAD") }
        guard let token = request.cookie(Self.accessCookie), !token.isEmpty else {
            return WebResponses.error(401, code: "unauthenticated", "no session; log in")
        }
        do {
            let claims = try await authenticator.verify(token)
            let user: JSONValue = ["id": .string(claims.subject), "username": .string(claims.name), "role": .string(claims.role.claim)]
            return WebResponses.json(200, ["user": user, "accessExpiresAtMs": .integer(claims.expiresAt * 1000)])
        } catch {
            return WebResponses.error(401, code: "unauthenticated", "the session has expired; refresh it or log in")
        }
    }

    // MARK: - Shared

    /// 405 for a method other than POST, 415 for a body that is not JSON.
    static func refusePost(_ request: HTTPRequest) -> HTTPResponse? {
        guard request.method == "POST" else { return WebResponses.methodNotAllowed("POST") }
        guard WebResponses.isJSON(request) else {
            return WebResponses.error(415, code: "invalid_argument", "the body must be application/json", headers: [HTTPField("accept-post", "application/json")])
        }
        return nil
    }

    /// The 200 of a login or refresh: the user and when the access token expires, and
    /// both tokens as cookies.
    func signedIn(_ reply: Stb_Gateway_V1_LoginResponse, _ request: HTTPRequest) -> HTTPResponse {
        let now = GatewayService.nowSeconds() * 1000
        let secure = Self.isSecure(request)
        let cookies = [
            HTTPField("set-cookie", Self.cookie(Self.accessCookie, reply.accessToken, path: "/", maxAge: (reply.accessExpiresAtMs - now) / 1000, secure: secure)),
            HTTPField("set-cookie", Self.cookie(Self.refreshCookie, reply.refreshToken, path: "/auth", maxAge: (reply.refreshExpiresAtMs - now) / 1000, secure: secure)),
        ]
        let role = reply.user?.role ?? .unspecified
        let user: JSONValue = [
            "id": .string(reply.user?.id ?? ""), "username": .string(reply.user?.username ?? ""),
            "displayName": .string(reply.user?.displayName ?? ""), "role": .string(Self.roleName(role)),
        ]
        return WebResponses.json(200, ["user": user, "accessExpiresAtMs": .integer(reply.accessExpiresAtMs)], headers: cookies)
    }

    /// Both cookies, expired.
    static func clearingCookies(_ request: HTTPRequest) -> [HTTPField] {
        let secure = isSecure(request)
        return [
            HTTPField("set-cookie", cookie(accessCookie, "", path: "/", maxAge: 0, secure: secure)),
            HTTPField("set-cookie", cookie(refreshCookie, "", path: "/auth", maxAge: 0, secure: secure)),
        ]
    }

    static func cookie(_ name: String, _ value: String, path: String, maxAge: Int64, secure: Bool) -> String {
        "\(name)=\(value); Path=\(path); HttpOnly; SameSite=Strict; Max-Age=\(max(0, maxAge))" + (secure ? "; Secure" : "")
    }

    /// Whether the edge received the request over TLS.
    static func isSecure(_ request: HTTPRequest) -> Bool {
        request.headers("x-forwarded-proto").last?.lowercased() == "https"
    }

    /// The role's claim name (`admin`), as tokens carry it.
    static func roleName(_ role: Stb_Gateway_V1_Role) -> String {
        switch role {
        case .viewer: Role.viewer.claim
        case .`operator`: Role.`operator`.claim
        case .engineer: Role.engineer.claim
        case .admin: Role.admin.claim
        case .service: Role.service.claim
        default: ""
        }
    }

    /// The context the `Auth` method runs with: the caller's peer, and its user agent as
    /// the activity rows record it.
    func context(_ request: HTTPRequest, method: String) -> ServerContext {
        var metadata = Metadata()
        if let agent = request.header("stb-user-agent") ?? request.header("user-agent") {
            metadata.addString(String(agent.prefix(256)), forKey: "stb-user-agent")
        }
        // The edge's client address, believed only when the peer is a trusted proxy.
        for forwarded in request.headers("x-forwarded-for") {
            metadata.addString(String(forwarded.prefix(1024)), forKey: "x-forwarded-for")
        }
        return ServerContext(path: "/stb.gateway.v1.Auth/\(method)", metadata: metadata, peer: request.peer)
    }
}
