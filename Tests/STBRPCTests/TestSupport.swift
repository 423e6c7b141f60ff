import STBEcho
import STBMessages
import Synchronization
import Testing

@testable import STBRPC

typealias EchoRequest = Stb_Testing_V1_EchoRequest
typealias EchoResponse = Stb_Testing_V1_EchoResponse
typealias Echo = Stb_Testing_V1_Echo

/// Starts a server on a free port with `services`, a client to it, runs `body`, then
/// closes both.
func withServer<Result>(
    services: [any RPCService] = [EchoService()],
    interceptors: [any ServerInterceptor] = [],
    configure: (inout RPCServer.Configuration) -> Void = { _ in },
    _ body: (RPCServer, RPCClient) async throws -> Result
) async throws -> Result {
    var configuration = RPCServer.Configuration()
    configuration.workers = 2
    configure(&configuration)
    let server = try RPCServer(configuration: configuration, services: services, interceptors: interceptors)
    let port = try await server.start()
    let client = try RPCClient(host: "127.0.0.1", port: port)
    do {
        let result = try await body(server, client)
        await client.close()
        await server.shutdown(gracePeriod: .seconds(1))
        return result
    } catch {
        await client.close()
        await server.shutdown(gracePeriod: .seconds(1))
        throw error
    }
}

/// Expects `body` to throw an `RPCError` with `code`; returns it.
@discardableResult
func expectRPCError(
    _ code: RPCError.Code, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async -> RPCError? {
    do {
        try await body()
        Issue.record("expected \(code), but the call succeeded", sourceLocation: sourceLocation)
    } catch let error as RPCError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected RPCError \(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(20), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

/// Counts handler starts, cancellations and completions, to observe the server side.
final class HandlerProbe: Sendable {
    struct Counts { var started = 0, cancelled = 0, completed = 0 }
    let counts = Mutex(Counts())

    var started: Int { counts.withLock { $0.started } }
    var cancelled: Int { counts.withLock { $0.cancelled } }
    var completed: Int { counts.withLock { $0.completed } }
}

/// Echo methods whose handlers wait until cancelled (or `delay_ms`), recording what happened.
struct ProbeService: RPCService {
    let probe: HandlerProbe

    func register(in router: inout RPCRouter) {
        router.register(Echo.get, unary: { [probe] request, _ in
            probe.counts.withLock { $0.started += 1 }
            do {
                try await Task.sleep(for: .milliseconds(Int(request.delayMs == 0 ? 30_000 : request.delayMs)))
            } catch {
                probe.counts.withLock { $0.cancelled += 1 }
                throw error
            }
            probe.counts.withLock { $0.completed += 1 }
            return EchoResponse(text: request.text)
        })
        router.register(Echo.collect, clientStreaming: { _, _ in
            struct Failure: Error {}
            throw Failure()  // not an RPCError: must reach the client as UNKNOWN without details
        })
    }
}
