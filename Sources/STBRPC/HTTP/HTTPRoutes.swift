/// The plain HTTP requests a server answers besides its RPCs: handlers by exact path or by
/// path prefix (the longest matching prefix wins).
///
/// A request goes to a route when its content type is not an RPC protocol's, or when it
/// is a Connect unary one (`application/json`, `application/proto`) and no RPC method
/// serves its path; gRPC and Connect streaming requests always go to the RPC side. With
/// no routes (the default) a server answers other requests 415, as before.
public struct HTTPRoutes: Sendable {
    /// Serves one request. A thrown error answers 500 (logged, never shown).
    public typealias Handler = @Sendable (HTTPRequest) async throws -> HTTPResponse

    private var exact: [String: Handler] = [:]
    private var prefixes: [(prefix: String, handler: Handler)] = []
    /// Largest request body a route accepts; a longer one is answered 413.
    public var maxBodySize = 64 * 1024

    public init() {}

    /// Whether no route is registered.
    public var isEmpty: Bool { exact.isEmpty && prefixes.isEmpty }

    /// Serves exactly `path` (no query) with `handler`.
    public mutating func add(_ path: String, _ handler: @escaping Handler) {
        exact[path] = handler
    }

    /// Serves every path starting with `prefix` (`/` for all) that no exact route or
    /// longer prefix serves.
    public mutating func add(prefix: String, _ handler: @escaping Handler) {
        prefixes.append((prefix, handler))
        prefixes.sort { $0.prefix.utf8.count > $1.prefix.utf8.count }
    }

    /// The handler for `path` (without a query), or nil.
    public func handler(for path: String) -> Handler? {
        if let handler = exact[path] { return handler }
        return prefixes.first { path.hasPrefix($0.prefix) }?.handler
    }

    /// The handler for a request target (the query, if any, ignored).
    func handler(forTarget target: String) -> Handler? {
        guard let mark = target.firstIndex(of: "?") else { return handler(for: target) }
        return handler(for: String(target[..<mark]))
    }
}
