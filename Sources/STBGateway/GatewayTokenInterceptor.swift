import STBAuth
import STBRPC

/// Establishes the caller's identity from an `authorization: Bearer <JWT>` verified with
/// the gateway's own keys (no fetch: the gateway holds them). Without a token the call
/// goes on with no identity, so the open methods (Login, Refresh, GetKeys, …) work and
/// the others refuse it; a token that does not verify is UNAUTHENTICATED. Whatever an
/// earlier interceptor claimed (`stb-actor`) is dropped.
public struct GatewayTokenInterceptor: ServerInterceptor {
    let keys: KeyRing

    public init(keys: KeyRing) {
        self.keys = keys
    }

    public func intercept<Result: Sendable>(
        context: ServerContext, next: @Sendable (ServerContext) async throws -> Result
    ) async throws -> Result {
        var context = context
        context.identity = nil
        if let header = context.metadata.firstString(forKey: "authorization") {
            guard header.hasPrefix("Bearer ") || header.hasPrefix("bearer ") else {
                throw RPCError(code: .unauthenticated, message: "the authorization header must be `Bearer <token>`")
            }
            let token = String(header.dropFirst("Bearer ".count))
            do {
                let claims = try AccessToken.verify(token, keys: keys.published, now: GatewayService.nowSeconds())
                context.identity = CallerIdentity(subject: claims.subject, name: claims.name, role: claims.role.claim)
            } catch {
                throw RPCError(code: .unauthenticated, message: error.description)
            }
        }
        return try await next(context)
    }
}
