import STBEcho
import STBMessages
import Synchronization
import Testing

@testable import STBRPC

@Suite("Our client against our server, over real sockets")
struct ClientServerTests {
    @Test("unary call echoes the message and text and binary metadata")
    func unary() async throws {
        try await withServer { _, client in
            var metadata = Metadata(["x-echo-user": "ada"])
            metadata.addBinary([0, 255, 10], forKey: "x-echo-trace-bin")
            let response = try await client.unaryCall(
                Echo.get, request: EchoRequest(text: "hello", payload: [1, 2, 3]), metadata: metadata)
            #expect(response.message == EchoResponse(text: "hello", payload: [1, 2, 3]))
            #expect(response.initialMetadata.strings(forKey: "x-echo-user") == ["ada"])
            #expect(response.initialMetadata.binaries(forKey: "x-echo-trace-bin") == [[0, 255, 10]])
            #expect(response.trailingMetadata.strings(forKey: "x-echo-user") == ["ada"])
        }
    }

    @Test("server streaming delivers every message in order")
    func serverStreaming() async throws {
        try await withServer { _, client in
            let indices = try await client.serverStreaming(Echo.expand, request: EchoRequest(text: "s", count: 1000)) { responses in
                var indices: [UInt32] = []
                for try await response in responses { indices.append(response.index) }
                return indices
            }
            #expect(indices == Array(0..<1000))
        }
    }

    @Test("client streaming sees every request, then answers once")
    func clientStreaming() async throws {
        try await withServer { _, client in
            let response = try await client.clientStreaming(Echo.collect) { writer in
                for word in ["a", "b", "c", "d"] { try await writer.write(EchoRequest(text: word)) }
            }
            #expect(response.message == EchoResponse(text: "a b c d", index: 4))
        }
    }

    @Test("bidirectional streaming interleaves requests and replies")
    func bidirectional() async throws {
        try await withServer { _, client in
            let texts = try await client.bidirectionalStreaming(Echo.update) { writer, responses in
                var iterator = responses.makeAsyncIterator()
                var texts: [String] = []
                for index in 0..<50 {
                    try await writer.write(EchoRequest(text: "m\(index)"))
                    // The reply arrives before the next request is sent: true interleaving.
                    let reply = try #require(try await iterator.next())
                    #expect(reply.index == UInt32(index))
                    texts.append(reply.text)
                }
                writer.finish()
                #expect(try await iterator.next() == nil)
                return texts
            }
            #expect(texts == (0..<50).map { "m\($0)" })
        }
    }

    @Test("a handler's RPCError reaches the client with code and message")
    func errorStatus() async throws {
        try await withServer { _, client in
            let error = await expectRPCError(.failedPrecondition) {
                _ = try await client.unary(Echo.get, request: EchoRequest(text: "rule 4k_output: 100% needed ✓", failWithCode: 9))
            }
            #expect(error?.message == "rule 4k_output: 100% needed ✓")
        }
    }

    @Test("a streaming call's error arrives after the messages sent before it")
    func streamingError() async throws {
        try await withServer { _, client in
            let received = Mutex(0)
            await expectRPCError(.aborted) {
                try await client.serverStreaming(Echo.expand, request: EchoRequest(text: "x", count: 3, failWithCode: 10)) { responses in
                    for try await _ in responses { received.withLock { $0 += 1 } }
                }
            }
            #expect(received.withLock { $0 } == 3)
        }
    }

    @Test("a non-RPC error from a handler is UNKNOWN and leaks nothing")
    func handlerCrashIsUnknown() async throws {
        try await withServer(services: [ProbeService(probe: HandlerProbe())]) { _, client in
            let error = await expectRPCError(.unknown) {
                _ = try await client.clientStreaming(Echo.collect) { try await $0.write(EchoRequest()) }
            }
            #expect(error?.message.contains("Failure") == false)
        }
    }

    @Test("an expired deadline gives DEADLINE_EXCEEDED and cancels the handler")
    func deadline() async throws {
        let probe = HandlerProbe()
        try await withServer(services: [ProbeService(probe: probe)]) { _, client in
            let start = ContinuousClock.now
            await expectRPCError(.deadlineExceeded) {
                _ = try await client.unary(Echo.get, request: EchoRequest(text: "slow"), timeout: .milliseconds(200))
            }
            // Half the handler's 30 s: the deadline ended the call, not the handler.
            #expect(ContinuousClock.now - start < .seconds(15))
            #expect(await eventually { probe.cancelled == 1 })
            #expect(probe.completed == 0)
        }
    }

    @Test("cancelling the caller's task resets the stream and cancels the handler")
    func cancellation() async throws {
        let probe = HandlerProbe()
        try await withServer(services: [ProbeService(probe: probe)]) { _, client in
            let call = Task { try await client.unary(Echo.get, request: EchoRequest(text: "wait")) }
            #expect(await eventually { probe.started == 1 })
            call.cancel()
            let result = await call.result
            #expect(throws: RPCError.self) { try result.get() }
            if case .failure(let error as RPCError) = result { #expect(error.code == .cancelled) }
            #expect(await eventually { probe.cancelled == 1 })
        }
    }

    @Test("an unknown method is UNIMPLEMENTED")
    func unknownMethod() async throws {
        try await withServer { _, client in
            let missing = ProtoMethod<EchoRequest, EchoResponse>(path: "/stb.testing.v1.Echo/Missing", kind: .unary)
            let error = await expectRPCError(.unimplemented) { _ = try await client.unary(missing, request: EchoRequest()) }
            #expect(error?.message.contains("/stb.testing.v1.Echo/Missing") == true)
        }
    }

    @Test("a request over the receive limit is RESOURCE_EXHAUSTED; the connection stays usable")
    func oversizedRequest() async throws {
        try await withServer(configure: { $0.maxReceiveMessageSize = 64 * 1024 }) { _, client in
            await expectRPCError(.resourceExhausted) {
                _ = try await client.unary(Echo.get, request: EchoRequest(payload: Array(repeating: 1, count: 100_000)))
            }
            let ok = try await client.unary(Echo.get, request: EchoRequest(payload: Array(repeating: 2, count: 60_000)))
            #expect(ok.payload.count == 60_000)
        }
    }

    @Test("a response over the client's limit is RESOURCE_EXHAUSTED")
    func oversizedResponse() async throws {
        try await withServer { server, _ in
            var configuration = RPCClient.Configuration()
            configuration.maxReceiveMessageSize = 1000
            let small = try RPCClient(host: "127.0.0.1", port: server.port, configuration: configuration)
            await expectRPCError(.resourceExhausted) {
                _ = try await small.unary(Echo.get, request: EchoRequest(payload: Array(repeating: 3, count: 5000)))
            }
            await small.close()
        }
    }

    @Test("hundreds of concurrent calls share one connection beyond MAX_CONCURRENT_STREAMS")
    func concurrentCalls() async throws {
        try await withServer(configure: { $0.maxConcurrentStreams = 50 }) { server, client in
            let texts = try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<400 {
                    group.addTask { try await client.unary(Echo.get, request: EchoRequest(text: "\(index)")).text }
                }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(texts.count == 400)
            #expect(await server.connectionCount() == 1)
        }
    }

    @Test("handlers over the per-connection cap are refused as UNAVAILABLE")
    func runningHandlerCap() async throws {
        let probe = HandlerProbe()
        try await withServer(services: [ProbeService(probe: probe)], configure: { $0.maxRunningHandlersPerConnection = 2 }) { _, client in
            let slow = (0..<2).map { _ in Task { try await client.unary(Echo.get, request: EchoRequest(delayMs: 1500)) } }
            #expect(await eventually { probe.started == 2 })
            await expectRPCError(.unavailable) { _ = try await client.unary(Echo.get, request: EchoRequest(delayMs: 10)) }
            for task in slow { _ = try await task.value }
        }
    }

    @Test("the client reconnects after the server restarts")
    func reconnect() async throws {
        var configuration = RPCServer.Configuration()
        let first = try RPCServer(configuration: configuration, services: [EchoService()])
        let port = try await first.start()
        let client = try RPCClient(host: "127.0.0.1", port: port)
        #expect(try await client.unary(Echo.get, request: EchoRequest(text: "one")).text == "one")
        await first.shutdown(gracePeriod: .milliseconds(100))
        await expectRPCError(.unavailable) { _ = try await client.unary(Echo.get, request: EchoRequest(text: "gone")) }
        configuration.port = port
        let second = try RPCServer(configuration: configuration, services: [EchoService()])
        try await second.start()
        #expect(try await client.unary(Echo.get, request: EchoRequest(text: "two")).text == "two")
        await client.close()
        await second.shutdown()
    }

    @Test("graceful shutdown lets in-flight calls finish and refuses new ones")
    func gracefulShutdown() async throws {
        let probe = HandlerProbe()
        let server = try RPCServer(configuration: RPCServer.Configuration(), services: [ProbeService(probe: probe)])
        let port = try await server.start()
        let client = try RPCClient(host: "127.0.0.1", port: port)
        let watcher = try RPCClient(host: "127.0.0.1", port: port)
        let statuses = Mutex<[HealthService.Status]>([])
        let watch = Task {
            try await watcher.serverStreaming(Grpc_Health_V1_Health.watch, request: Grpc_Health_V1_HealthCheckRequest()) { responses in
                for try await response in responses { statuses.withLock { $0.append(response.status) } }
            }
        }
        #expect(await eventually { statuses.withLock { $0 } == [.serving] })
        let inFlight = Task { try await client.unary(Echo.get, request: EchoRequest(text: "late", delayMs: 2000)) }
        #expect(await eventually { probe.started == 1 })
        let started = ContinuousClock.now
        await server.shutdown(gracePeriod: .seconds(30))
        #expect(try await inFlight.value.text == "late")
        // Half the grace period: the shutdown ended with the call, it did not wait the grace out.
        #expect(ContinuousClock.now - started < .seconds(15))
        #expect(statuses.withLock { $0 } == [.serving, .notServing])
        _ = await watch.result
        await expectRPCError(.unavailable) { _ = try await client.unary(Echo.get, request: EchoRequest()) }
        await client.close()
        await watcher.close()
    }

    @Test("health Check and Watch follow status changes")
    func health() async throws {
        try await withServer { server, client in
            let check = try await client.unary(Grpc_Health_V1_Health.check, request: Grpc_Health_V1_HealthCheckRequest())
            #expect(check.status == .serving)
            await expectRPCError(.notFound) {
                _ = try await client.unary(Grpc_Health_V1_Health.check, request: Grpc_Health_V1_HealthCheckRequest(service: "stb.catalog.v1.Catalog"))
            }
            server.health.setStatus(.serving, forService: "stb.testing.v1.Echo")
            let seen = try await client.serverStreaming(
                Grpc_Health_V1_Health.watch, request: Grpc_Health_V1_HealthCheckRequest(service: "stb.testing.v1.Echo")
            ) { responses in
                var seen: [HealthService.Status] = []
                for try await response in responses {
                    seen.append(response.status)
                    if seen.count == 1 { server.health.setStatus(.notServing, forService: "stb.testing.v1.Echo") }
                    if seen.count == 2 { break }
                }
                return seen
            }
            #expect(seen == [.serving, .notServing])
        }
    }
}
