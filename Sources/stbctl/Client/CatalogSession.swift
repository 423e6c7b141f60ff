import ArgumentParser
import STBMessages
import STBRPC

/// The catalog as one command sees it: a client, the caller's metadata and deadline.
struct CatalogSession: Sendable {
    let client: RPCClient
    let metadata: Metadata
    let timeout: Duration

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
                throw CommandFailure("the catalog returned the same page token twice; stopping after \(items.count) items")
            }
        } while !token.isEmpty
        return items
    }
}

extension GlobalOptions {
    /// Connects to the catalog, runs `body`, and closes the connection. Errors come out
    /// as `CommandFailure`s worded for the person at the terminal.
    func withCatalog<Value: Sendable>(_ body: (CatalogSession) async throws -> Value) async throws -> Value {
        let (host, port) = try endpoint()
        let client: RPCClient
        do {
            client = try RPCClient(host: host, port: port)
        } catch {
            throw CommandFailure("cannot start the RPC client: \(error)")
        }
        var metadata = Metadata()
        metadata.addString(resolvedActor, forKey: "stb-actor")
        let session = CatalogSession(client: client, metadata: metadata, timeout: callTimeout)
        do {
            let result = try await body(session)
            await client.close()
            return result
        } catch {
            await client.close()
            throw failure(for: error)
        }
    }

    /// How an error reads on stderr.
    func failure(for error: any Error) -> any Error {
        switch error {
        case let error as RPCError:
            let status = error.message.isEmpty ? "\(error.code)" : "\(error.code): \(error.message)"
            switch error.code {
            case .unavailable:
                return CommandFailure("cannot reach the catalog at \(resolvedAddress) (\(status))")
            case .deadlineExceeded:
                return CommandFailure("\(status) (no reply from \(resolvedAddress) within \(timeout)s; see --timeout)")
            default:
                return CommandFailure(status)
            }
        case is CommandFailure, is ValidationError:
            return error
        default:
            return CommandFailure("\(error)")
        }
    }
}
