import STBAuth
import STBRPC

/// Requires a verified access token on every call whose method is not open, and the role
/// the method access table names for it; establishes the caller's identity
/// (`context.identity`: the token's subject, name and role) for handlers and audit rows.
///
/// Connect calls (a browser's page) may carry the token in the `stb_access` cookie when
/// they have no `authorization` header; gRPC calls may not.
///
/// Missing or bad token → UNAUTHENTICATED (an `ErrorInfo` reason such as
/// `TOKEN_EXPIRED`); a role too low, or a method without an entry in the table →
/// PERMISSION_DENIED (reason `ROLE_REQUIRED`, naming the least role). Runs inside the
/// status and metrics interceptors, so refusals are counted and carry details.
public struct AuthenticationInterceptor: ServerInterceptor {
    public let authenticator: Authenticator
    public let access: MethodAccess

    public init(authenticator: Authenticator, access: MethodAccess = .platform) {
        self.authenticator = authenticator
        self.access = access
    }

    public func intercept<Result: Sendable>(
        context: ServerContext, next: @Sendable (ServerContext) async throws -> Result
    ) async throws -> Result {
        try await next(authenticated(context))
    }

    /// The same checks with the token looked up in the authenticator's cache only: a
    /// token not verified before sends the call through `intercept`.
    public func interceptImmediately<Result: Sendable>(
        context: ServerContext, next: (ServerContext) throws -> Result?
    ) throws -> Result? {
        guard let requirement = try requirement(of: context) else { return try next(context) }
        guard let claims = try authenticator.cachedClaims(context.metadata, allowingCookie: context.rpcProtocol == .connect) else {
            return nil
        }
        return try next(identified(context, claims, requirement))
    }

    /// `context` with the caller's identity, once the call is allowed. Apart and never
    /// inlined: in `intercept` its frame would stay with a streaming call for its life.
    @inline(never)
    func authenticated(_ context: ServerContext) async throws -> ServerContext {
        guard let requirement = try requirement(of: context) else { return context }
        let claims = try await authenticator.authenticate(context.metadata, allowingCookie: context.rpcProtocol == .connect)
        return try identified(context, claims, requirement)
    }

    /// The role the call's method requires; nil when it is open to anyone.
    private func requirement(of context: ServerContext) throws(RPCError) -> MethodRequirement? {
        guard let requirement = access[context.path] else {
            throw RPCError(
                code: .permissionDenied, message: "this method has no access rule; nobody may call it",
                details: [.errorInfo(reason: "NO_ACCESS_RULE")])
        }
        return requirement == .open ? nil : requirement
    }

    /// `context` with the identity `claims` name, when their role is enough.
    private func identified(
        _ context: ServerContext, _ claims: AccessClaims, _ requirement: MethodRequirement
    ) throws(RPCError) -> ServerContext {
        guard requirement.permits(claims.role) else {
            throw RPCError(
                code: .permissionDenied, message: "\(context.path.split(separator: "/").last ?? "") requires \(requirement)",
                details: [.errorInfo(reason: "ROLE_REQUIRED", metadata: ["required": "\(requirement)", "role": claims.role.claim])])
        }
        var context = context
        context.identity = CallerIdentity(subject: claims.subject, name: claims.name, role: claims.role.claim)
        return context
    }
}
