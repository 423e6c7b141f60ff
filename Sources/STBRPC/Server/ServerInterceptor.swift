/// Cross-cutting behaviour around every call of a server (identity, authorization,
/// metrics, logging, error mapping), written once instead of in each handler.
///
/// Interceptors run in the order given to the server, the first outermost. Each sees the
/// call's path, metadata, deadline and peer in its context, and either refuses the call by
/// throwing (an `RPCError` becomes the status), or calls `next` — the rest of the chain and
/// the handler — possibly with a changed context (an established `identity`), and may time
/// it or turn its errors into other statuses.
public protocol ServerInterceptor: Sendable {
    func intercept<Result: Sendable>(
        context: ServerContext,
        next: @Sendable (ServerContext) async throws -> Result
    ) async throws -> Result

    /// `intercept` for a call answered at once (`RPCRouter.register(_:immediate:)`): the
    /// same checks without suspending. `next` returns nil when the call cannot be answered
    /// at once; then return nil too, having recorded nothing, for the call goes through
    /// `intercept` next. The default returns nil without calling `next`: an interceptor
    /// that must wait sends every call through `intercept`.
    func interceptImmediately<Result: Sendable>(
        context: ServerContext,
        next: (ServerContext) throws -> Result?
    ) throws -> Result?
}

extension ServerInterceptor {
    public func interceptImmediately<Result: Sendable>(
        context: ServerContext,
        next: (ServerContext) throws -> Result?
    ) throws -> Result? {
        nil
    }
}

/// Who is calling, as an interceptor established it.
public struct CallerIdentity: Sendable, Hashable {
    /// A stable id (a user id, a service account).
    public var subject: String
    /// The name audit rows and events record.
    public var name: String
    /// The caller's role, empty when unknown.
    public var role: String

    public init(subject: String, name: String, role: String = "") {
        self.subject = subject
        self.name = name
        self.role = role
    }
}

extension RPCRouter {
    /// The same methods, each running inside `interceptors` (the first outermost).
    func intercepted(by interceptors: [any ServerInterceptor]) -> RPCRouter {
        guard !interceptors.isEmpty else { return self }
        var router = self
        for (path, body) in immediateHandlers {
            router.immediateHandlers[path] = { bytes, codec, context in
                try interceptors.runImmediately(context) { try body(bytes, codec, $0) }
            }
        }
        for (path, handler) in handlers {
            router.handlers[path] = switch handler {
            case .unary(let body):
                .unary { bytes, codec, context in try await interceptors.run(context) { try await body(bytes, codec, $0) } }
            case .serverStreaming(let body):
                .serverStreaming { bytes, codec, sink, context in
                    try await interceptors.run(context) { try await body(bytes, codec, sink, $0) }
                }
            case .clientStreaming(let body):
                .clientStreaming { queue, codec, context in try await interceptors.run(context) { try await body(queue, codec, $0) } }
            case .bidirectionalStreaming(let body):
                .bidirectionalStreaming { queue, codec, sink, context in
                    try await interceptors.run(context) { try await body(queue, codec, sink, $0) }
                }
            }
        }
        return router
    }
}

extension Array where Element == any ServerInterceptor {
    /// Runs `body` inside these interceptors, from the first.
    func run<Result: Sendable>(_ context: ServerContext, _ body: @Sendable (ServerContext) async throws -> Result) async throws -> Result {
        try await self[...].run(context, body)
    }
}

extension Array where Element == any ServerInterceptor {
    /// Runs `body` inside these interceptors' `interceptImmediately`, from the first; nil
    /// when one of them or `body` cannot answer at once.
    func runImmediately<Result: Sendable>(_ context: ServerContext, _ body: (ServerContext) throws -> Result?) throws -> Result? {
        try self[...].runImmediately(context, body)
    }
}

extension ArraySlice where Element == any ServerInterceptor {
    func runImmediately<Result: Sendable>(_ context: ServerContext, _ body: (ServerContext) throws -> Result?) throws -> Result? {
        guard let first else { return try body(context) }
        let rest = dropFirst()
        return try first.interceptImmediately(context: context) { try rest.runImmediately($0, body) }
    }

    func run<Result: Sendable>(_ context: ServerContext, _ body: @Sendable (ServerContext) async throws -> Result) async throws -> Result {
        guard let first else { return try await body(context) }
        let rest = dropFirst()
        return try await first.intercept(context: context) { try await rest.run($0, body) }
    }
}
