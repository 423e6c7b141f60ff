import Logging
import STBMessages
import STBPostgres
import STBRPC
import STBService
import Synchronization
import Testing

/// A handler that fails as the request's text says, and answers with its caller's name.
private final class ProbeService: RPCService, Sendable {
    let ran = Mutex(0)

    func register(in router: inout RPCRouter) {
        router.register(Stb_Testing_V1_Echo.get, unary: { request, context in
            self.ran.withLock { $0 += 1 }
            switch request.text {
            case "unique": throw PostgresError(code: .uniqueViolation, message: "duplicate key value violates unique constraint \"options_key\"")
            case "lost": throw PostgresError(code: .connectionLost, message: "server closed the connection unexpectedly at 10.0.0.7")
            case "server": throw PostgresError(code: .server, message: "relation \"secret_table\" does not exist")
            case "other": throw ProbeFailure(detail: "stack trace with /srv/secret path")
            case "cancelled": throw CancellationError()
            case "status": throw RPCError(code: .notFound, message: "option \"x\" not found")
            default: return Stb_Testing_V1_EchoResponse(text: context.actor)
            }
        })
        router.register(Stb_Testing_V1_Echo.expand, serverStreaming: { request, writer, context in
            self.ran.withLock { $0 += 1 }
            try await writer.write(Stb_Testing_V1_EchoResponse(text: context.actor))
            if request.text == "lost" { throw PostgresError(code: .connectionLost, message: "gone") }
        })
    }
}

private struct ProbeFailure: Error { let detail: String }

/// Records the order interceptors run in; refuses calls whose `x-refuse` metadata is set.
private final class CallLog: Sendable {
    private let entries = Mutex<[String]>([])
    func append(_ entry: String) { entries.withLock { $0.append(entry) } }
    func take() -> [String] { entries.withLock { entries in defer { entries = [] }; return entries } }
}

private struct RecordingInterceptor: ServerInterceptor {
    let name: String
    let log: CallLog

    func intercept<Result: Sendable>(context: ServerContext, next: @Sendable (ServerContext) async throws -> Result) async throws -> Result {
        log.append("\(name) in")
        defer { log.append("\(name) out") }
        if context.metadata.firstString(forKey: "x-refuse") == name {
            throw RPCError(code: .permissionDenied, message: "refused by \(name)")
        }
        return try await next(context)
    }
}

@Suite("Server interceptors")
struct InterceptorTests {
    private static func withServer(
        interceptors: [any ServerInterceptor], _ body: (RPCClient, ProbeService) async throws -> Void
    ) async throws {
        let probe = ProbeService()
        var configuration = RPCServer.Configuration()
        configuration.port = 0
        let server = try RPCServer(configuration: configuration, services: [probe], interceptors: interceptors)
        let port = try await server.start()
        let client = try RPCClient(host: "127.0.0.1", port: port)
        do {
            try await body(client, probe)
        } catch {
            await client.close()
            await server.shutdown(gracePeriod: .zero)
            throw error
        }
        await client.close()
        await server.shutdown(gracePeriod: .zero)
    }

    private static func status(_ body: () async throws -> Void) async -> RPCError? {
        do {
            try await body()
            return nil
        } catch {
            return error as? RPCError
        }
    }

    @Test("interceptors run in order, the first outermost, around unary and streaming calls; a refusal stops the handler")
    func orderAndRefusal() async throws {
        let log = CallLog()
        let chain: [any ServerInterceptor] = [RecordingInterceptor(name: "a", log: log), RecordingInterceptor(name: "b", log: log)]
        try await Self.withServer(interceptors: chain) { client, probe in
            _ = try await client.unary(Stb_Testing_V1_Echo.get, request: .init(text: "hi"))
            #expect(log.take() == ["a in", "b in", "b out", "a out"])
            let streamed = try await client.serverStreaming(Stb_Testing_V1_Echo.expand, request: .init(text: "hi")) { stream in
                var count = 0
                for try await _ in stream { count += 1 }
                return count
            }
            #expect(streamed == 1 && log.take() == ["a in", "b in", "b out", "a out"])

            let before = probe.ran.withLock { $0 }
            let refused = await Self.status {
                _ = try await client.unary(Stb_Testing_V1_Echo.get, request: .init(text: "hi"), metadata: Metadata(["x-refuse": "b"]))
            }
            #expect(refused?.code == .permissionDenied && refused?.message == "refused by b")
            #expect(probe.ran.withLock { $0 } == before, "the handler ran although an interceptor refused the call")
        }
    }

    @Test(
        "errors become statuses that reveal nothing internal",
        arguments: [
            ("unique", RPCError.Code.alreadyExists, "already exists"),
            ("lost", .unavailable, "the probe database is unavailable; retry"),
            ("server", .internal, "internal database error"),
            ("other", .internal, "internal error"),
            ("cancelled", .cancelled, "the call was cancelled"),
            ("status", .notFound, "option \"x\" not found"),
        ]
    )
    func statuses(text: String, code: RPCError.Code, message: String) async throws {
        let interceptors: [any ServerInterceptor] = [StatusInterceptor(service: "probe", logger: Logger(label: "probe"))]
        try await Self.withServer(interceptors: interceptors) { client, _ in
            let error = await Self.status { _ = try await client.unary(Stb_Testing_V1_Echo.get, request: .init(text: text)) }
            #expect(error?.code == code)
            #expect(error?.message == message)
            for secret in ["secret", "10.0.0.7", "options_key", "/srv"] {
                #expect(error?.message.contains(secret) == false, "\(secret) leaked in \(error?.message ?? "")")
                #expect(error.map { "\($0.details)" }?.contains(secret) == false, "\(secret) leaked in the details")
            }
            // Every status has an ErrorInfo in the stb domain; the retryable ones a RetryInfo.
            #expect(error?.errorInfo == Google_Rpc_ErrorInfo(reason: "\(code)", domain: "stb", metadata: ["service": "probe"]))
            #expect((error?.retryInfo != nil) == (code == .unavailable))
            let streamed = await Self.status {
                _ = try await client.serverStreaming(Stb_Testing_V1_Echo.expand, request: .init(text: "lost")) { stream in
                    for try await _ in stream {}
                }
            }
            #expect(streamed?.code == .unavailable)
            #expect(streamed?.retryInfo?.retryDelay == Google_Protobuf_Duration(seconds: 1))
        }
    }
}
