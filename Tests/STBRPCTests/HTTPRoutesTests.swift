import STBEcho
import STBMessages
import Synchronization
import Testing

@testable import STBRPC

@Suite("Plain HTTP routes")
struct HTTPRoutesTests {
    typealias Machine = ServerStreamStateMachine

    // MARK: - Matching and parsing

    @Test("an exact path wins, then the longest prefix; the query is ignored")
    func matching() async throws {
        var routes = HTTPRoutes()
        routes.add(prefix: "/") { _ in .text(200, "root") }
        routes.add(prefix: "/auth/") { _ in .text(200, "auth prefix") }
        routes.add("/auth/login") { _ in .text(200, "login") }
        func answer(_ target: String) async throws -> String? {
            guard let handler = routes.handler(forTarget: target) else { return nil }
            guard case .bytes(let body) = try await handler(HTTPRequest(method: "GET", target: target)).body else { return nil }
            return String(decoding: body, as: UTF8.self)
        }
        #expect(try await answer("/auth/login") == "login")
        #expect(try await answer("/auth/login?next=1") == "login")
        #expect(try await answer("/auth/other") == "auth prefix")
        #expect(try await answer("/index.html") == "root")
        #expect(HTTPRoutes().handler(for: "/") == nil)
        var exactOnly = HTTPRoutes()
        exactOnly.add("/events") { _ in .text(200, "") }
        #expect(exactOnly.handler(for: "/events/more") == nil)
    }

    @Test("the target splits into path and query; query items and cookies decode")
    func requestParsing() {
        let request = HTTPRequest(
            method: "GET", target: "/events?topics=catalog%2Cproject%3Ademo&x=a+b&bad=%zz",
            headers: [HTTPField("cookie", "a=1; stb_access=tok.en"), HTTPField("cookie", "b=\"2\"")])
        #expect(request.path == "/events")
        #expect(request.queryItem("topics") == "catalog,project:demo")
        #expect(request.queryItem("x") == "a b")
        #expect(request.queryItem("bad") == nil)
        #expect(request.cookie("stb_access") == "tok.en")
        #expect(request.cookie("b") == "2")
        #expect(request.cookie("stb") == nil)
        #expect(HTTPRequest(method: "GET", target: "/plain").query == "")
        #expect(PercentDecoding.decode("%ff%fe") == nil)
    }

    // MARK: - State machine

    private static func head(
        contentType: String? = nil, method: String = "GET", path: String = "/index.html", known: Bool = false,
        hasRoute: Bool = true, servesMetrics: Bool = false
    ) -> Machine.RequestHead {
        Machine.RequestHead(
            contentType: contentType, method: method, path: path, encoding: nil, takesSingleRequest: known ? true : nil,
            servesMetrics: servesMetrics, handlerIsUnary: known, hasHTTPRoute: hasRoute)
    }

    @Test("a request a route serves takes a handler slot, and its handler starts at END_STREAM")
    func acceptsPlainRequest() {
        var machine = Machine()
        #expect(machine.receivedRequestHeaders(Self.head(), hasHandlerRoom: true) == .acceptHTTP)
        #expect(machine.servesHTTP && machine.handlerSlot == .reserved && machine.wire == nil)
        #expect(machine.receivedData() == .deliver)
        #expect(machine.receivedEndStream(bufferedRequests: 1) == .startHandler)
        #expect(machine.handlerSlot == .running)
        #expect(machine.sendMessage() == .startResponse)
        #expect(machine.sendMessage() == .resumeBody)
        #expect(machine.decideStatus(pendingOutbound: 10) == .sendTrailers(startResponse: false, releaseSlot: false))
        #expect(machine.isFinished)
        #expect(machine.handlerFinished() == false)
    }

    @Test("with no handler room the request is refused")
    func refusedWithoutRoom() {
        var machine = Machine()
        #expect(machine.receivedRequestHeaders(Self.head(), hasHandlerRoom: false) == .refuse)
    }

    @Test("RPCs stay RPCs: gRPC and Connect streaming always, Connect unary when a method serves the path")
    func rpcsStayRPCs() {
        var grpc = Machine()
        #expect(grpc.receivedRequestHeaders(Self.head(contentType: "application/grpc", method: "POST"), hasHandlerRoom: true)
            == .fail(RPCError(code: .unimplemented, message: "method not found: /index.html"), advertiseEncodings: false))
        var known = Machine()
        #expect(known.receivedRequestHeaders(
            Self.head(contentType: "application/json", method: "POST", path: "/echo.Echo/Get", known: true), hasHandlerRoom: true)
            == .accept(startHandler: false))
        #expect(!known.servesHTTP)
        var streaming = Machine()
        #expect(streaming.receivedRequestHeaders(Self.head(contentType: "application/connect+json", method: "POST"), hasHandlerRoom: true)
            != .acceptHTTP)
        var login = Machine()
        #expect(login.receivedRequestHeaders(Self.head(contentType: "application/json", method: "POST", path: "/auth/login"), hasHandlerRoom: true)
            == .acceptHTTP)
    }

    @Test("GET /metrics is still the scrape, and without a route other requests still get 415")
    func metricsAndNoRoute() {
        var scrape = Machine()
        #expect(scrape.receivedRequestHeaders(Self.head(path: "/metrics", servesMetrics: true), hasHandlerRoom: true) == .respondMetrics)
        var none = Machine()
        #expect(none.receivedRequestHeaders(Self.head(hasRoute: false), hasHandlerRoom: true) == .respondUnsupportedMediaType)
    }

    // MARK: - Over a socket (curl, HTTP/2 with prior knowledge)

    private static func routes() -> HTTPRoutes {
        var routes = HTTPRoutes()
        routes.maxBodySize = 1024
        routes.add("/hello") { request in
            .text(200, "hello \(request.queryItem("name") ?? "")\n", headers: [HTTPField("x-route", "hello"), HTTPField("connection", "close")])
        }
        routes.add("/echo") { request in
            HTTPResponse(
                status: 201, headers: [HTTPField("content-type", request.header("content-type") ?? "none")],
                body: .bytes(request.body))
        }
        routes.add("/stream") { _ in
            HTTPResponse(status: 200, headers: [HTTPField("content-type", "text/event-stream")], body: .stream { body in
                for index in 0..<3 {
                    try await body.write("data: \(index)\n\n")
                    try await Task.sleep(for: .milliseconds(50))
                }
            })
        }
        routes.add("/fails") { _ in throw RPCError(code: .internal, message: "secret detail") }
        return routes
    }

    private func curl(_ port: Int, _ arguments: String...) async throws -> String {
        let process = try ChildProcess(["curl", "-s", "-i", "--http2-prior-knowledge", "--max-time", "20"] + arguments.map {
            $0.replacingPort(port)
        })
        defer { Task { await process.stop() } }
        return try await process.allOutput(timeout: .seconds(30)).replacingCarriageReturns()
    }

    @Test("routes answer over HTTP/2 beside RPCs: whole bodies, request bodies, streamed bodies, limits")
    func overASocket() async throws {
        try await withServer(configure: { $0.httpRoutes = Self.routes() }) { server, client in
            let port = server.port
            let hello = try await curl(port, "http://127.0.0.1:PORT/hello?name=ada")
            #expect(status(hello) == 200)
            #expect(hello.contains("x-route: hello\n") && hello.contains("content-length: 10\n"))
            #expect(!hello.contains("connection:"))
            #expect(hello.hasSuffix("\n\nhello ada\n"))

            let echo = try await curl(port, "-H", "content-type: text/plain", "--data-binary", "some body", "http://127.0.0.1:PORT/echo")
            #expect(status(echo) == 201 && echo.contains("content-type: text/plain\n") && echo.hasSuffix("\n\nsome body"))

            let stream = try await curl(port, "-N", "http://127.0.0.1:PORT/stream")
            #expect(status(stream) == 200 && !stream.contains("content-length"))
            #expect(stream.hasSuffix("\n\ndata: 0\n\ndata: 1\n\ndata: 2\n\n"))

            let tooLarge = try await curl(port, "--data-binary", String(repeating: "x", count: 2000), "http://127.0.0.1:PORT/echo")
            #expect(status(tooLarge) == 413)

            let failed = try await curl(port, "http://127.0.0.1:PORT/fails")
            #expect(status(failed) == 500 && !failed.contains("secret detail"))

            let head = try await curl(port, "-I", "http://127.0.0.1:PORT/hello")
            #expect(status(head) == 200 && head.contains("content-length: 7\n"))

            let unrouted = try await curl(port, "http://127.0.0.1:PORT/nothing")
            #expect(status(unrouted) == 415)

            // The RPC side is unchanged on the same server.
            let reply = try await client.unary(Echo.get, request: EchoRequest(text: "still rpc"))
            #expect(reply.text == "still rpc")
            #expect(await eventually { server.health.status(forService: "") == .serving })
        }
    }

    @Test("a client that goes away cancels the streaming handler and frees its slot")
    func streamCancelled() async throws {
        let cancelled = Atomic<Bool>(false)
        var routes = HTTPRoutes()
        routes.add("/forever") { _ in
            HTTPResponse(status: 200, body: .stream { body in
                do {
                    while true {
                        try await body.write("tick\n")
                        try await Task.sleep(for: .milliseconds(20))
                    }
                } catch {
                    cancelled.store(true, ordering: .relaxed)
                    throw error
                }
            })
        }
        try await withServer(configure: { $0.httpRoutes = routes; $0.maxRunningHandlersPerConnection = 1 }) { server, _ in
            let output = try await curl(server.port, "-N", "--max-time", "1", "http://127.0.0.1:PORT/forever")
            #expect(output.contains("tick\ntick\n"))
            #expect(await eventually { cancelled.load(ordering: .relaxed) })
        }
    }
}

/// The status code on the first line of curl's `-i` output (`HTTP/2 200 `).
private func status(_ output: String) -> Int? {
    output.split(separator: "\n").first?.split(separator: " ").dropFirst().first.flatMap { Int($0) }
}

extension String {
    fileprivate func replacingPort(_ port: Int) -> String {
        split(separator: "PORT", omittingEmptySubsequences: false).joined(separator: String(port))
    }

    fileprivate func replacingCarriageReturns() -> String {
        String(unicodeScalars.filter { $0 != "\r" })
    }
}
