import STBEcho
import STBEventLoop
import STBMessages
import Glibc
import Synchronization
import Testing

@testable import STBRPC

/// Answers Echo/Get with what the call carried: the `x-user` metadata and whether the
/// request had a deadline, as `user|deadline` (or `user|none`).
private struct CarriedService: RPCService {
    func register(in router: inout RPCRouter) {
        router.register(Echo.get, unary: { request, context in
            let user = context.metadata.firstString(forKey: "x-user") ?? ""
            return EchoResponse(text: "\(user)|\(context.deadline == nil ? "none" : "deadline")|\(request.text)")
        })
    }
}

/// Refuses Echo/Get with details.
private struct RefusingService: RPCService {
    static let error = RPCError(
        code: .failedPrecondition, message: "the condition does not hold ✓",
        details: [.errorInfo(reason: "RULE", metadata: ["rule": "4k"]), .retry(after: .milliseconds(1500))])

    func register(in router: inout RPCRouter) {
        router.register(Echo.get, unary: { _, _ -> EchoResponse in throw Self.error })
    }
}

private func framed(_ request: EchoRequest) -> FramedMessage {
    FramedMessage(request.serializedBytes())
}

private func decoded(_ bytes: [UInt8]) throws -> EchoResponse {
    try EchoResponse(serializedBytes: bytes)
}

@Suite("Prepared unary calls (the lean path) against our server")
struct PreparedUnaryTests {
    @Test("a prepared call returns the response bytes; hundreds at once share one connection")
    func manyCalls() async throws {
        try await withServer(configure: { $0.maxConcurrentStreams = 50 }) { server, client in
            let get = try await client.prepareUnary(path: Echo.get.path)
            let texts = try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<400 {
                    group.addTask { try decoded(try await get.call(framed(EchoRequest(text: "\(index)")))).text }
                }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(texts == Set((0..<400).map { "\($0)" }))
            #expect(await server.connectionCount() == 1)
        }
    }

    @Test("metadata and the deadline prepared once are sent with every call")
    func headers() async throws {
        try await withServer(services: [CarriedService()]) { _, client in
            let timed = try await client.prepareUnary(path: Echo.get.path, metadata: Metadata(["x-user": "ada"]), timeout: .seconds(20))
            for text in ["a", "b"] {
                #expect(try decoded(try await timed.call(framed(EchoRequest(text: text)))).text == "ada|deadline|\(text)")
            }
            let untimed = try await client.prepareUnary(path: Echo.get.path)
            #expect(try decoded(try await untimed.call(framed(EchoRequest(text: "c")))).text == "|none|c")
        }
    }

    @Test("the callback form completes on the client's loop, started from it or from elsewhere")
    func callbacks() async throws {
        try await withServer { _, client in
            let get = try await client.prepareUnary(path: Echo.get.path)
            let loop = get.loop
            // From another thread: the call hops to the loop.
            let outside = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<(String, Bool), any Error>) in
                get.start(framed(EchoRequest(text: "outside"))) { result in
                    continuation.resume(with: result.flatMap { bytes in
                        Result { (try decoded(bytes).text, loop.inEventLoop) }.mapError { _ in RPCError(code: .internal, message: "decode") }
                    })
                }
            }
            #expect(outside == ("outside", true))
            // From the loop itself.
            let inside = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, any Error>) in
                loop.execute {
                    get.start(framed(EchoRequest(text: "inside"))) { result in
                        continuation.resume(with: result.flatMap { bytes in
                            Result { try decoded(bytes).text }.mapError { _ in RPCError(code: .internal, message: "decode") }
                        })
                    }
                }
            }
            #expect(inside == "inside")
        }
    }

    @Test("a handler's status reaches the caller with code, message and details")
    func status() async throws {
        try await withServer(services: [RefusingService()]) { _, client in
            let get = try await client.prepareUnary(path: Echo.get.path, timeout: .seconds(20))
            let error = await expectRPCError(.failedPrecondition) { _ = try await get.call(framed(EchoRequest(text: ""))) }
            #expect(error?.message == RefusingService.error.message)
            #expect(error?.details == RefusingService.error.details)
        }
        try await withServer { _, client in
            let missing = try await client.prepareUnary(path: "/stb.testing.v1.Echo/Missing")
            await expectRPCError(.unimplemented) { _ = try await missing.call(framed(EchoRequest())) }
            let get = try await client.prepareUnary(path: Echo.get.path)
            let error = await expectRPCError(.aborted) { _ = try await get.call(framed(EchoRequest(text: "no", failWithCode: 10))) }
            #expect(error?.message == "no")
        }
    }

    @Test("against a server that never answers, each call fails at its own deadline")
    func deadlines() async throws {
        // A listening socket that accepts nothing: the connection opens (the kernel's
        // backlog), and no byte ever comes back, so only the client's deadlines end the calls.
        let listener = try Socket.listen(host: "127.0.0.1", port: 0, reusePort: false)
        defer { close(listener) }
        let client = try RPCClient(host: "127.0.0.1", port: Socket.localPort(listener))
        let get = try await client.prepareUnary(path: Echo.get.path, timeout: .milliseconds(300))
        // Started 100 ms apart: one timer serves them in turn.
        let calls = (0..<3).map { index in
            Task {
                try await Task.sleep(for: .milliseconds(100 * index))
                let start = ContinuousClock.now
                await expectRPCError(.deadlineExceeded) { _ = try await get.call(framed(EchoRequest(text: "silent \(index)"))) }
                return ContinuousClock.now - start
            }
        }
        // A call its deadline misses would wait forever: cancelled after 20 s, it fails the test.
        let watchdog = Task {
            try await Task.sleep(for: .seconds(20))
            for call in calls { call.cancel() }
        }
        for call in calls {
            let waited = try await call.value
            #expect(waited >= .milliseconds(250) && waited < .seconds(10), "waited \(waited)")
        }
        watchdog.cancel()
        await client.close()
    }

    @Test("a call past its deadline cancels its handler, and the next call goes through")
    func deadlineCancelsHandler() async throws {
        let probe = HandlerProbe()
        try await withServer(services: [ProbeService(probe: probe)]) { _, client in
            let get = try await client.prepareUnary(path: Echo.get.path, timeout: .milliseconds(300))
            await expectRPCError(.deadlineExceeded) { _ = try await get.call(framed(EchoRequest(text: "slow"))) }
            #expect(await eventually { probe.cancelled == 1 })
            #expect(probe.completed == 0)
            #expect(try decoded(try await get.call(framed(EchoRequest(text: "quick", delayMs: 1)))).text == "quick")
        }
    }

    @Test("cancelling the caller's task resets the stream and cancels the handler")
    func cancellation() async throws {
        let probe = HandlerProbe()
        try await withServer(services: [ProbeService(probe: probe)]) { _, client in
            let get = try await client.prepareUnary(path: Echo.get.path)
            let call = Task { try await get.call(framed(EchoRequest(text: "wait"))) }
            #expect(await eventually { probe.started == 1 })
            call.cancel()
            let result = await call.result
            if case .failure(let error as RPCError) = result { #expect(error.code == .cancelled) } else { Issue.record("got \(result)") }
            #expect(await eventually { probe.cancelled == 1 })
        }
    }

    @Test("a server that is not there gives UNAVAILABLE")
    func unavailable() async throws {
        let port = try await withServer { server, _ in server.port }
        let client = try RPCClient(host: "127.0.0.1", port: port)
        let get = try await client.prepareUnary(path: Echo.get.path, timeout: .seconds(20))
        await expectRPCError(.unavailable) { _ = try await get.call(framed(EchoRequest(text: "nobody"))) }
        await client.close()
    }

    @Test("a response over the client's limit is RESOURCE_EXHAUSTED")
    func oversizedResponse() async throws {
        try await withServer { server, _ in
            var configuration = RPCClient.Configuration()
            configuration.maxReceiveMessageSize = 1000
            let small = try RPCClient(host: "127.0.0.1", port: server.port, configuration: configuration)
            let get = try await small.prepareUnary(path: Echo.get.path)
            await expectRPCError(.resourceExhausted) { _ = try await get.call(framed(EchoRequest(payload: Array(repeating: 3, count: 5000)))) }
            #expect(try decoded(try await get.call(framed(EchoRequest(text: "small")))).text == "small")
            await small.close()
        }
    }
}
