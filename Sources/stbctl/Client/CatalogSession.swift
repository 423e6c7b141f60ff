import ArgumentParser
import STBMessages
import STBRPC

/// A service (the catalog, or the rules service) as one command sees it: a client, the
/// caller's metadata and deadline.
struct CatalogSession: Sendable {
    let client: RPCClient
    let metadata: Metadata
    let timeout: Duration
    /// How messages name the service: "the catalog", "the rules service".
    var serviceName = "the catalog"

    /// One unary call with the command's metadata and deadline.
    func call<Request, Response>(_ method: ProtoMethod<Request, Response>, _ request: Request) async throws -> Response {
        try await client.unary(method, request: request, metadata: metadata, timeout: timeout)
    }

    /// Every page of a paged list: `fetch` gets the page request and returns the items and
    /// the page info of one reply.
    func allPages<Item>(
        _ fetch: (Stb_Common_V1_PageRequest) async throws -> (items: [Item], page: Stb_Common_V1_PageInfo?)
    ) async throws -> [Item] {
        var items: [Item] = []
        var token = ""
        var seen: Set<String> = []
        repeat {
            let reply = try await fetch(Stb_Common_V1_PageRequest(pageSize: 500, pageToken: token))
            items += reply.items
            token = reply.page?.nextPageToken ?? ""
            // A server that hands back a token twice would keep us here forever.
            guard seen.insert(token).inserted else {
                throw CommandFailure("\(serviceName) returned the same page token twice; stopping after \(items.count) items")
            }
        } while !token.isEmpty
        return items
    }
}

/// The rules service as one command sees it.
typealias RulesSession = CatalogSession

/// The project service as one command sees it.
typealias ProjectSession = CatalogSession

extension GlobalOptions {
    /// Connects to the catalog, runs `body`, and closes the connection. Errors come out
    /// as `CommandFailure`s worded for the person at the terminal.
    func withCatalog<Value: Sendable>(_ body: (CatalogSession) async throws -> Value) async throws -> Value {
        try await withService(try endpoint(), address: resolvedAddress, name: "the catalog", body)
    }

    /// Connects to the rules service (--rules-addr), runs `body`, and closes the connection.
    func withRules<Value: Sendable>(_ body: (RulesSession) async throws -> Value) async throws -> Value {
        try await withService(try rulesEndpoint(), address: resolvedRulesAddress, name: "the rules service", body)
    }

    /// Connects to the project service (--project-addr), runs `body`, and closes the connection.
    func withProject<Value: Sendable>(_ body: (ProjectSession) async throws -> Value) async throws -> Value {
        try await withService(try projectEndpoint(), address: resolvedProjectAddress, name: "the project service", body)
    }

    func withService<Value: Sendable>(
        _ endpoint: (host: String, port: Int), address: String, name: String,
        _ body: (CatalogSession) async throws -> Value
    ) async throws -> Value {
        let (host, port) = endpoint
        let client: RPCClient
        do {
            client = try RPCClient(host: host, port: port)
        } catch {
            throw CommandFailure("cannot start the RPC client: \(error)")
        }
        let metadata = try await sessionMetadata(timeout: callTimeout)
        let session = CatalogSession(client: client, metadata: metadata, timeout: callTimeout, serviceName: name)
        do {
            let result = try await body(session)
            await client.close()
            return result
        } catch {
            await client.close()
            throw failure(for: error, service: name, address: address)
        }
    }

    /// The status's structured details, one indented line each: the invalid fields, the
    /// preconditions that failed, the reason, when to retry.
    static func detailLines(_ error: RPCError) -> [String] {
        var lines = error.fieldViolations.map { "  field \($0.field.isEmpty ? "(request)" : $0.field): \($0.description_p)" }
        lines += error.preconditionViolations.map { violation in
            let line = "  precondition \(violation.type) \(violation.subject)"
            return violation.description_p.isEmpty ? line : "\(line): \(violation.description_p)"
        }
        if let info = error.errorInfo {
            let facts = info.metadata.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
            lines.append("  reason \(info.reason) (\(info.domain))\(facts)")
        }
        if let delay = error.retryInfo?.retryDelay {
            lines.append("  retry after \(Duration.seconds(delay.seconds) + .nanoseconds(Int64(delay.nanos)))")
        }
        return lines
    }

    /// How an error reads on stderr.
    func failure(for error: any Error) -> any Error {
        failure(for: error, service: "the catalog", address: resolvedAddress)
    }

    /// How an error from `service` at `address` reads on stderr.
    func failure(for error: any Error, service: String, address: String) -> any Error {
        switch error {
        case let error as RPCError:
            let status = error.message.isEmpty ? "\(error.code)" : "\(error.code): \(error.message)"
            switch error.code {
            case .unavailable:
                return CommandFailure("cannot reach \(service) at \(address) (\(status))")
            case .deadlineExceeded:
                return CommandFailure("\(status) (no reply from \(address) within \(timeout)s; see --timeout)")
            default:
                return CommandFailure(([status] + Self.detailLines(error)).joined(separator: "\n"))
            }
        case is CommandFailure, is ValidationError:
            return error
        default:
            return CommandFailure("\(error)")
        }
    }
}
