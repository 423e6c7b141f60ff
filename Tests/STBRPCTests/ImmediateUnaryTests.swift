import STBMessages
import Synchronization
import Testing

@testable import STBRPC

/// Echo/Get with both handlers, counting which answered: the immediate one answers texts
/// not starting with "wait" and fails "fail"; the async one answers the rest.
private final class TwoWayService: RPCService, Sendable {
    let immediateAnswers = Atomic<Int>(0)
    let taskAnswers = Atomic<Int>(0)

    func register(in router: inout RPCRouter) {
        router.register(Echo.get, unary: { [self] request, context in
            taskAnswers.add(1, ordering: .relaxed)
            return EchoResponse(text: "task:\(request.text)|\(context.identity?.name ?? "")")
        })
        router.register(Echo.get, immediate: { [self] request, context in
            if request.text.hasPrefix("wait") { return nil }
            if request.text == "fail" { throw RPCError(code: .failedPrecondition, message: "refused at once") }
            immediateAnswers.add(1, ordering: .relaxed)
            context.addTrailingMetadata(Metadata(["x-answered": "immediately"]))
            return EchoResponse(text: "immediate:\(request.text)|\(context.identity?.name ?? "")")
        })
    }
}

/// Sets the caller's identity, in both forms when `immediate`, else only in `intercept`.
private final class NamingInterceptor: ServerInterceptor, Sendable {
    let immediate: Bool
    let immediateCalls = Atomic<Int>(0)

    init(immediate: Bool) {
        self.immediate = immediate
    }

    func intercept<Result: Sendable>(
        context: ServerContext, next: @Sendable (ServerContext) async throws -> Result
    ) async throws -> Result {
        try await next(named(context))
    }

    func interceptImmediately<Result: Sendable>(
        context: ServerContext, next: (ServerContext) throws -> Result?
    ) throws -> Result? {
        guard immediate else { return nil }
        immediateCalls.add(1, ordering: .relaxed)
        return try next(named(context))
    }

    private func named(_ context: ServerContext) -> ServerContext {
        var context = context
        context.identity = CallerIdentity(subject: "1", name: "ada")
        return context
    }
}

private func withTwoWayServer(
    interceptors: [any ServerInterceptor] = [], _ body: (TwoWayService, RPCClient) async throws -> Void
) async throws {
    let service = TwoWayService()
    try await withServer(services: [service], interceptors: interceptors, configure: { $0.workers = 1 }) { _, client in
        try await body(service, client)
    }
}

@Suite("Unary methods answered at once, without a task")
struct ImmediateUnaryTests {
    @Test("the immediate handler answers, with its trailing metadata; the async one is not run")
    func answersImmediately() async throws {
        try await withTwoWayServer { service, client in
            for index in 0..<20 {
                let response = try await client.unaryCall(Echo.get, request: EchoRequest(text: "\(index)"))
                #expect(response.message.text == "immediate:\(index)|")
                #expect(response.trailingMetadata.firstString(forKey: "x-answered") == "immediately")
            }
            #expect(service.immediateAnswers.load(ordering: .relaxed) == 20)
            #expect(service.taskAnswers.load(ordering: .relaxed) == 0)
        }
    }

    @Test("an immediate handler returning nil hands the call to the async handler")
    func fallsBack() async throws {
        try await withTwoWayServer { service, client in
            let response = try await client.unary(Echo.get, request: EchoRequest(text: "wait"))
            #expect(response.text == "task:wait|")
            #expect(service.taskAnswers.load(ordering: .relaxed) == 1)
            #expect(service.immediateAnswers.load(ordering: .relaxed) == 0)
        }
    }

    @Test("what an immediate handler throws is the call's status")
    func throwsStatus() async throws {
        try await withTwoWayServer { _, client in
            let error = await expectRPCError(.failedPrecondition) {
                _ = try await client.unary(Echo.get, request: EchoRequest(text: "fail"))
            }
            #expect(error?.message == "refused at once")
        }
    }

    @Test("interceptors that can run at once wrap the immediate handler")
    func interceptedImmediately() async throws {
        let naming = NamingInterceptor(immediate: true)
        try await withTwoWayServer(interceptors: [naming]) { service, client in
            let answered = try await client.unary(Echo.get, request: EchoRequest(text: "a"))
            let handedOn = try await client.unary(Echo.get, request: EchoRequest(text: "wait"))
            #expect(answered.text == "immediate:a|ada")
            #expect(handedOn.text == "task:wait|ada")
            #expect(service.immediateAnswers.load(ordering: .relaxed) == 1)
            #expect(naming.immediateCalls.load(ordering: .relaxed) == 2)
        }
    }

    @Test("an interceptor that cannot run at once sends every call to the async handler")
    func interceptorWithoutImmediateForm() async throws {
        try await withTwoWayServer(interceptors: [NamingInterceptor(immediate: false)]) { service, client in
            let response = try await client.unary(Echo.get, request: EchoRequest(text: "a"))
            #expect(response.text == "task:a|ada")
            #expect(service.immediateAnswers.load(ordering: .relaxed) == 0)
            #expect(service.taskAnswers.load(ordering: .relaxed) == 1)
        }
    }
}

/// Counts the calls answered inside `interceptImmediately` and those that went through
/// `intercept`.
private final class AnswerCounter: ServerInterceptor, Sendable {
    let immediateAnswers = Atomic<Int>(0)
    let taskCalls = Atomic<Int>(0)

    func intercept<Result: Sendable>(
        context: ServerContext, next: @Sendable (ServerContext) async throws -> Result
    ) async throws -> Result {
        taskCalls.add(1, ordering: .relaxed)
        return try await next(context)
    }

    func interceptImmediately<Result: Sendable>(
        context: ServerContext, next: (ServerContext) throws -> Result?
    ) throws -> Result? {
        do {
            guard let result = try next(context) else { return nil }
            immediateAnswers.add(1, ordering: .relaxed)
            return result
        } catch {
            immediateAnswers.add(1, ordering: .relaxed)
            throw error
        }
    }
}

@Suite("Health/Check answered at once")
struct ImmediateHealthTests {
    @Test("Health/Check answers at once, without a task: the server's status, NOT_FOUND for an unknown service")
    func healthCheck() async throws {
        let counter = AnswerCounter()
        try await withServer(interceptors: [counter]) { server, client in
            let serving = try await client.unary(Grpc_Health_V1_Health.check, request: Grpc_Health_V1_HealthCheckRequest())
            #expect(serving.status == .serving)
            server.health.setStatus(.notServing, forService: "stb.test.Probe")
            let probe = try await client.unary(
                Grpc_Health_V1_Health.check, request: Grpc_Health_V1_HealthCheckRequest(service: "stb.test.Probe"))
            #expect(probe.status == .notServing)
            let error = await expectRPCError(.notFound) {
                _ = try await client.unary(Grpc_Health_V1_Health.check, request: Grpc_Health_V1_HealthCheckRequest(service: "nope"))
            }
            #expect(error?.message == "unknown service \"nope\"")
            #expect(counter.immediateAnswers.load(ordering: .relaxed) == 3)
            #expect(counter.taskCalls.load(ordering: .relaxed) == 0)
        }
    }
}
