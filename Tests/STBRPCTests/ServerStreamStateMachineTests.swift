import Testing

@testable import STBRPC

@Suite("Server stream state machine")
struct ServerStreamStateMachineTests {
    typealias Machine = ServerStreamStateMachine
    typealias State = ServerStreamStateMachine.State

    private static func head(
        contentType: String? = "application/grpc", method: String? = "POST", encoding: String? = nil,
        singleRequest: Bool? = true
    ) -> Machine.RequestHead {
        Machine.RequestHead(
            contentType: contentType, method: method, path: "/echo.Echo/Get", encoding: encoding,
            takesSingleRequest: singleRequest)
    }

    /// A machine driven through the connection's transitions into `state`.
    private static func machine(in state: State) -> Machine {
        var machine = Machine()
        switch state {
        case .receivingHeaders:
            break
        case .clientOpenServerIdle:
            _ = machine.receivedRequestHeaders(head(), hasHandlerRoom: true)
        case .clientOpenServerOpen:
            _ = machine.receivedRequestHeaders(head(singleRequest: false), hasHandlerRoom: true)
            _ = machine.sendMessage()
        case .clientClosedServerIdle:
            _ = machine.receivedRequestHeaders(head(), hasHandlerRoom: true)
            _ = machine.receivedEndStream(bufferedRequests: 1)
        case .clientClosedServerOpen:
            _ = machine.receivedRequestHeaders(head(singleRequest: false), hasHandlerRoom: true)
            _ = machine.sendMessage()
            _ = machine.receivedEndStream(bufferedRequests: 0)
        case .clientOpenServerClosed:
            _ = machine.receivedRequestHeaders(head(), hasHandlerRoom: true)
            _ = machine.decideStatus(pendingOutbound: 0)
        case .clientClosedServerClosed:
            _ = machine.receivedRequestHeaders(head(), hasHandlerRoom: true)
            _ = machine.receivedEndStream(bufferedRequests: 1)
            _ = machine.decideStatus(pendingOutbound: 0)
        case .resetByServer:
            _ = machine.receivedRequestHeaders(head(), hasHandlerRoom: true)
            machine.resetByServer()
        case .resetByClient:
            _ = machine.receivedRequestHeaders(head(), hasHandlerRoom: true)
            machine.receivedReset()
        case .abandoned:
            _ = machine.receivedRequestHeaders(head(), hasHandlerRoom: true)
            _ = machine.abandon()
        case .closed:
            _ = machine.receivedRequestHeaders(head(), hasHandlerRoom: true)
            _ = machine.closed(errorCode: H2Error.noError)
        }
        #expect(machine.state == state)
        return machine
    }

    static let allStates: [State] = [
        .receivingHeaders, .clientOpenServerIdle, .clientOpenServerOpen, .clientClosedServerIdle, .clientClosedServerOpen,
        .clientOpenServerClosed, .clientClosedServerClosed, .resetByServer, .resetByClient(callWasOpen: true), .abandoned,
        .closed,
    ]

    // MARK: - Whole calls

    @Test("a unary call: headers, one message, END_STREAM, handler, status after the response")
    func unaryCall() {
        var machine = Machine()
        #expect(machine.receivedRequestHeaders(Self.head(), hasHandlerRoom: true) == .accept(startHandler: false))
        #expect(machine.handlerSlot == .reserved)
        #expect(machine.receivedData() == .deliver)
        #expect(machine.receivedEndStream(bufferedRequests: 1) == .startHandler)
        #expect(machine.handlerSlot == .running)
        #expect(machine.state == .clientClosedServerIdle)
        #expect(machine.handlerFinished() == true)
        #expect(machine.handlerSlot == .released)
        #expect(machine.decideStatus(pendingOutbound: 12) == .sendTrailers(startResponse: true, releaseSlot: false))
        #expect(machine.state == .clientClosedServerClosed)
        #expect(machine.sentFinalHeaders() == .none)
        #expect(machine.closed(errorCode: H2Error.noError) == .init())
        #expect(machine.state == .closed)
    }

    @Test("a bidirectional call starts its handler at the headers and streams both ways")
    func streamingCall() {
        var machine = Machine()
        #expect(machine.receivedRequestHeaders(Self.head(singleRequest: false), hasHandlerRoom: true) == .accept(startHandler: true))
        #expect(machine.handlerSlot == .running)
        #expect(machine.sendMessage() == .startResponse)
        #expect(machine.sendMessage() == .resumeBody)
        #expect(machine.receivedData() == .deliver)
        #expect(machine.receivedEndStream(bufferedRequests: 0) == .finishRequests)
        #expect(machine.state == .clientClosedServerOpen)
        #expect(machine.sendMessage() == .resumeBody)
        #expect(machine.handlerFinished() == true)
        #expect(machine.decideStatus(pendingOutbound: 0) == .sendTrailers(startResponse: false, releaseSlot: false))
        #expect(machine.sendMessage() == .fail)
        #expect(machine.closed(errorCode: H2Error.noError) == .init())
    }

    @Test("a status with nothing sent before it goes as Trailers-Only, and frees an unused slot")
    func trailersOnly() {
        var machine = Self.machine(in: .clientOpenServerIdle)
        #expect(machine.decideStatus(pendingOutbound: 0) == .sendTrailersOnly(releaseSlot: true))
        #expect(machine.handlerSlot == .released)
        #expect(machine.decideStatus(pendingOutbound: 0) == .none)
        #expect(machine.closed(errorCode: H2Error.noError).releaseSlot == false)
    }

    @Test("a status sent while the client still sends is followed by RST_STREAM NO_ERROR, once")
    func statusBeforeRequestEnd() {
        var machine = Self.machine(in: .clientOpenServerClosed)
        #expect(machine.sentFinalHeaders() == .resetNoError)
        #expect(machine.state == .resetByServer)
        #expect(machine.sentFinalHeaders() == .none)
        #expect(machine.receivedData() == .discard)
        // Our own reset is not the peer's fault.
        #expect(machine.closed(errorCode: H2Error.noError).countsAsGlitch == false)
    }

    // MARK: - Request headers

    struct HeadersCase: Sendable, CustomTestStringConvertible {
        var name: String
        var head: Machine.RequestHead
        var hasHandlerRoom = true
        var expected: Machine.OnRequestHeaders
        var state: State
        var testDescription: String { name }
    }

    static let headersCases: [HeadersCase] = [
        .init(name: "not gRPC", head: head(contentType: "text/html"), expected: .respondUnsupportedMediaType, state: .clientOpenServerClosed),
        .init(name: "no content-type", head: head(contentType: nil), expected: .respondUnsupportedMediaType, state: .clientOpenServerClosed),
        .init(
            name: "GET", head: head(method: "GET"),
            expected: .fail(RPCError(code: .invalidArgument, message: "gRPC requires the POST method"), advertiseEncodings: false),
            state: .clientOpenServerIdle),
        .init(
            name: "unknown method", head: head(singleRequest: nil),
            expected: .fail(RPCError(code: .unimplemented, message: "method not found: /echo.Echo/Get"), advertiseEncodings: false),
            state: .clientOpenServerIdle),
        .init(
            name: "compressed", head: head(encoding: "gzip"),
            expected: .fail(RPCError(code: .unimplemented, message: "message compression \"gzip\" is not supported (identity is)"), advertiseEncodings: true),
            state: .clientOpenServerIdle),
        .init(name: "identity encoding", head: head(encoding: "identity"), expected: .accept(startHandler: false), state: .clientOpenServerIdle),
        .init(name: "no handler room", head: head(), hasHandlerRoom: false, expected: .refuse, state: .clientOpenServerIdle),
        .init(name: "client streaming", head: head(singleRequest: false), expected: .accept(startHandler: true), state: .clientOpenServerIdle),
    ]

    @Test("request headers are checked in order", arguments: headersCases)
    func requestHeaders(_ test: HeadersCase) {
        var machine = Machine()
        #expect(machine.receivedRequestHeaders(test.head, hasHandlerRoom: test.hasHandlerRoom) == test.expected)
        #expect(machine.state == test.state)
        if case .accept = test.expected {
            #expect(machine.handlerSlot != .none)
        } else {
            #expect(machine.handlerSlot == .none)
        }
    }

    @Test("request headers twice reset the stream; after a reset they are ignored", arguments: allStates.filter { $0 != .receivingHeaders })
    func headersTwice(_ state: State) {
        var machine = Self.machine(in: state)
        let expected: Machine.OnRequestHeaders =
            switch state {
            case .resetByServer, .resetByClient, .abandoned, .closed: .none
            default: .reset(code: H2Error.protocolError)
            }
        #expect(machine.receivedRequestHeaders(Self.head(), hasHandlerRoom: true) == expected)
    }

    @Test("a header list over the budget resets the stream")
    func headerBudget() {
        var machine = Machine()
        #expect(machine.receivedHeaderField(size: 60, maxListSize: 100, maxFields: 3) == .accept)
        #expect(machine.receivedHeaderField(size: 40, maxListSize: 100, maxFields: 3) == .accept)
        #expect(machine.receivedHeaderField(size: 1, maxListSize: 100, maxFields: 3) == .resetOverBudget)
        var many = Machine()
        for _ in 0..<3 { #expect(many.receivedHeaderField(size: 1, maxListSize: 100, maxFields: 3) == .accept) }
        #expect(many.receivedHeaderField(size: 1, maxListSize: 100, maxFields: 3) == .resetOverBudget)
    }

    // MARK: - Request body

    @Test("DATA in every state", arguments: allStates)
    func data(_ state: State) {
        let expected: Machine.OnData =
            switch state {
            case .clientOpenServerIdle, .clientOpenServerOpen: .deliver
            case .receivingHeaders: .reset(code: H2Error.protocolError)
            // DATA after END_STREAM.
            case .clientClosedServerIdle, .clientClosedServerOpen, .clientClosedServerClosed: .reset(code: H2Error.streamClosed)
            default: .discard
            }
        #expect(Self.machine(in: state).receivedData() == expected)
    }

    @Test("END_STREAM in every state", arguments: allStates)
    func endStream(_ state: State) {
        var machine = Self.machine(in: state)
        let expected: Machine.OnEndStream =
            switch state {
            case .clientOpenServerIdle: .startHandler
            case .clientOpenServerOpen: .finishRequests
            case .receivingHeaders: .reset(code: H2Error.protocolError)
            case .clientClosedServerIdle, .clientClosedServerOpen, .clientClosedServerClosed: .reset(code: H2Error.streamClosed)
            default: .none
            }
        #expect(machine.receivedEndStream(bufferedRequests: 1) == expected)
    }

    @Test("a single-request handler needs exactly one message", arguments: [0, 2, 5])
    func wrongRequestCount(_ count: Int) {
        var machine = Self.machine(in: .clientOpenServerIdle)
        #expect(machine.receivedEndStream(bufferedRequests: count) == .wrongRequestCount(count))
        #expect(machine.handlerSlot == .reserved)
        #expect(machine.decideStatus(pendingOutbound: 0) == .sendTrailersOnly(releaseSlot: true))
    }

    // MARK: - Resets and close

    @Test("our reset in every state ends the call and is no glitch", arguments: allStates)
    func serverReset(_ state: State) {
        var machine = Self.machine(in: state)
        machine.resetByServer()
        #expect(machine.isFinished)
        #expect(machine.sendMessage() == .fail)
        #expect(machine.decideStatus(pendingOutbound: 0) == .none)
        #expect(machine.closed(errorCode: H2Error.refusedStream).countsAsGlitch == false)
    }

    @Test("the client's reset in every state cancels an open call and is no glitch", arguments: allStates)
    func clientReset(_ state: State) {
        var machine = Self.machine(in: state)
        let wasFinished = machine.isFinished
        machine.receivedReset()
        #expect(machine.isFinished)
        let closed = machine.closed(errorCode: H2Error.cancel)
        #expect(closed.countsAsGlitch == false)
        switch state {
        case .resetByClient(let callWasOpen): #expect(closed.cancelHandler == callWasOpen)
        case .resetByServer, .closed: #expect(closed.cancelHandler == false)
        default: #expect(closed.cancelHandler == !wasFinished)
        }
    }

    @Test("a close with an error nobody sent is the peer's glitch", arguments: allStates)
    func libraryReset(_ state: State) {
        var machine = Self.machine(in: state)
        let closed = machine.closed(errorCode: H2Error.protocolError)
        let peerFault: Bool =
            switch state {
            case .resetByServer, .resetByClient, .closed: false
            default: true
            }
        #expect(closed.countsAsGlitch == peerFault)
        #expect(machine.state == .closed)
        // The connection closing is never the peer's glitch.
        var other = Self.machine(in: state)
        #expect(other.closed(errorCode: nil).countsAsGlitch == false)
    }

    @Test("a handler that never started gives its slot back when the stream closes")
    func unstartedSlot() {
        var machine = Self.machine(in: .clientOpenServerIdle)
        let closed = machine.closed(errorCode: H2Error.cancel)
        #expect(closed == .init(countsAsGlitch: true, cancelHandler: true, releaseSlot: true))
        // A running handler keeps its slot past the close, until it reports back.
        var running = Self.machine(in: .clientClosedServerIdle)
        #expect(running.closed(errorCode: nil).releaseSlot == false)
        #expect(running.handlerSlot == .running)
        #expect(running.handlerFinished() == false)
        #expect(running.handlerSlot == .released)
    }

    @Test("GOAWAY abandons unfinished calls only")
    func abandon() {
        var open = Self.machine(in: .clientClosedServerOpen)
        #expect(open.abandon() == true)
        #expect(open.closed(errorCode: nil).cancelHandler == false)
        var done = Self.machine(in: .clientClosedServerClosed)
        #expect(done.abandon() == false)
        #expect(done.state == .clientClosedServerClosed)
    }

    // MARK: - GET /metrics

    private static func scrape(
        contentType: String? = nil, method: String = "GET", path: String = "/metrics", servesMetrics: Bool = true
    ) -> Machine.RequestHead {
        Machine.RequestHead(
            contentType: contentType, method: method, path: path, encoding: nil, takesSingleRequest: nil,
            servesMetrics: servesMetrics)
    }

    @Test("GET /metrics is answered with the exposition, without a handler slot")
    func metricsScrape() {
        var machine = Machine()
        #expect(machine.receivedRequestHeaders(Self.scrape(), hasHandlerRoom: false) == .respondMetrics)
        #expect(machine.state == .clientOpenServerClosed)
        #expect(machine.handlerSlot == .none)
        #expect(machine.receivedEndStream(bufferedRequests: 0) == .none)
        #expect(machine.state == .clientClosedServerClosed)
        #expect(machine.sentFinalHeaders() == .none)
        #expect(machine.closed(errorCode: H2Error.noError) == Machine.OnClose())
    }

    @Test("A scrape whose request is still open when the body ends is told to stop")
    func metricsScrapeLeftOpen() {
        var machine = Machine()
        #expect(machine.receivedRequestHeaders(Self.scrape(), hasHandlerRoom: true) == .respondMetrics)
        #expect(machine.sentFinalHeaders() == .resetNoError)
        #expect(machine.state == .resetByServer)
    }

    @Test("Other requests that are not gRPC keep getting 415", arguments: [
        scrape(servesMetrics: false),
        scrape(method: "POST"),
        scrape(path: "/metrics/other"),
        scrape(path: "/"),
        scrape(contentType: "text/plain", method: "HEAD"),
    ])
    func notAScrape(head: Machine.RequestHead) {
        var machine = Machine()
        #expect(machine.receivedRequestHeaders(head, hasHandlerRoom: true) == .respondUnsupportedMediaType)
        #expect(machine.state == .clientOpenServerClosed)
    }

    @Test("A gRPC request to /metrics stays gRPC")
    func grpcToMetricsPath() {
        var machine = Machine()
        let head = Self.scrape(contentType: "application/grpc")
        #expect(machine.receivedRequestHeaders(head, hasHandlerRoom: true)
            == .fail(RPCError(code: .invalidArgument, message: "gRPC requires the POST method"), advertiseEncodings: false))
        var post = Machine()
        #expect(post.receivedRequestHeaders(Self.scrape(contentType: "application/grpc", method: "POST"), hasHandlerRoom: true)
            == .fail(RPCError(code: .unimplemented, message: "method not found: /metrics"), advertiseEncodings: false))
    }
}
