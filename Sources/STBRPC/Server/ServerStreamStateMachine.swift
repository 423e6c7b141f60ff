/// The life of one request stream on a server connection, as a value.
///
/// The connection feeds it what nghttp2 reports (a request header block, END_STREAM, a
/// reset, the stream's close) and what the call does (a message to send, a status); each
/// transition moves the state on and returns what the connection must do. It does no I/O,
/// so every transition, legal or not, can be tested without a socket.
///
/// The states pair the client's side with ours, as gRPC streams are described: the client
/// is *open* while it may still send request messages and *closed* after END_STREAM; we are
/// *idle* until the response headers go out, *open* while messages may follow, and *closed*
/// once a status is decided.
struct ServerStreamStateMachine {
    enum State: Equatable {
        /// The request header block has begun and is not complete.
        case receivingHeaders
        /// Request headers in; request messages may follow; no response yet.
        case clientOpenServerIdle
        /// Request messages may follow; the response headers were submitted.
        case clientOpenServerOpen
        /// END_STREAM received; no response yet.
        case clientClosedServerIdle
        /// END_STREAM received; the response headers were submitted.
        case clientClosedServerOpen
        /// A status is decided while the client may still send: once the status is out,
        /// the client is told to stop (RST_STREAM NO_ERROR).
        case clientOpenServerClosed
        /// END_STREAM received and a status decided.
        case clientClosedServerClosed
        /// We sent RST_STREAM: nothing more is sent.
        case resetByServer
        /// The client sent RST_STREAM; nghttp2 closes the stream next. `callWasOpen`: no
        /// status had been decided, so the handler is to be cancelled.
        case resetByClient(callWasOpen: Bool)
        /// The connection is going away (GOAWAY with an error): nothing more is sent, and
        /// the handler is cancelled.
        case abandoned
        /// nghttp2 closed the stream, or the connection closed.
        case closed
    }

    /// The stream's claim on its connection's budget of running handlers.
    enum HandlerSlot: Equatable {
        /// No handler was assigned.
        case none
        /// Counted from the request headers; the handler has not started. Taken then, not
        /// when the request ends, so that a client sending every HEADERS first and the DATA
        /// later cannot run more handlers than the cap.
        case reserved
        /// The handler runs; counted until it reports back, even past the stream's close.
        case running
        /// Given back.
        case released
    }

    private(set) var state: State = .receivingHeaders
    private(set) var handlerSlot: HandlerSlot = .none
    /// Whether the handler reads one request message before it starts (unary, server streaming).
    private(set) var takesSingleRequest = false
    /// The protocol of the request, once its headers named a known one.
    private(set) var wire: WireProtocol?
    /// Whether a plain HTTP route serves the request (`HTTPRoutes`).
    private(set) var servesHTTP = false

    /// Whether the request body is gathered whole until END_STREAM (Connect unary, or a
    /// plain HTTP request) rather than deframed into messages.
    var gathersWholeBody: Bool {
        if servesHTTP { return true }
        if case .connectUnary = wire { return true }
        return false
    }
    /// Header fields and bytes received on this stream (request headers and trailers),
    /// counted as SETTINGS_MAX_HEADER_LIST_SIZE counts: Σ(name + value + 32).
    private var headerBytes = 0
    private var headerFields = 0

    /// Whether nothing more is sent on the stream: a status is decided, or it was reset,
    /// abandoned or closed.
    var isFinished: Bool {
        switch state {
        case .receivingHeaders, .clientOpenServerIdle, .clientOpenServerOpen, .clientClosedServerIdle, .clientClosedServerOpen:
            false
        case .clientOpenServerClosed, .clientClosedServerClosed, .resetByServer, .resetByClient, .abandoned, .closed:
            true
        }
    }

    /// Whether the client sent END_STREAM, as far as the state still tells.
    private var clientClosed: Bool {
        switch state {
        case .clientClosedServerIdle, .clientClosedServerOpen, .clientClosedServerClosed: true
        default: false
        }
    }

    // MARK: - Request

    enum OnHeaderField: Equatable {
        case accept
        /// The header list is over the budget: reset the stream (ENHANCE_YOUR_CALM), count
        /// a glitch and stop the library decoding the rest of the block.
        case resetOverBudget
    }

    /// One header field of a request header block or of request trailers arrived.
    mutating func receivedHeaderField(size: Int, maxListSize: Int, maxFields: Int) -> OnHeaderField {
        headerBytes += size
        headerFields += 1
        guard headerBytes > maxListSize || headerFields > maxFields else { return .accept }
        return .resetOverBudget
    }

    /// The request as its header block described it.
    struct RequestHead {
        var contentType: String?
        var method: String?
        var path: String?
        /// `grpc-encoding`.
        var encoding: String?
        /// What the route's handler reads: nil when no handler serves `path`.
        var takesSingleRequest: Bool?
        /// Whether the server answers `GET /metrics`.
        var servesMetrics = false
        /// The protocol the content type names; nil: not an RPC.
        var wire: WireProtocol?
        /// Whether the route's handler is unary (Connect's unary form serves only those).
        var handlerIsUnary = false
        /// `connect-protocol-version`.
        var connectProtocolVersion: String?
        /// `content-encoding` (Connect unary) and `connect-content-encoding` (Connect streaming).
        var contentEncoding: String?
        var connectContentEncoding: String?
        /// A `connect-timeout-ms` that is not 1 to 10 digits.
        var timeoutIsMalformed = false
        /// Besides `/metrics`, the server answers `/metrics/<this name>`.
        var metricsServiceName: String?
        /// Whether a plain HTTP route matches the path.
        var hasHTTPRoute = false

        init(
            contentType: String?, method: String?, path: String?, encoding: String?, takesSingleRequest: Bool?,
            servesMetrics: Bool = false, handlerIsUnary: Bool = false, connectProtocolVersion: String? = nil,
            contentEncoding: String? = nil, connectContentEncoding: String? = nil, timeoutIsMalformed: Bool = false,
            metricsServiceName: String? = nil, hasHTTPRoute: Bool = false
        ) {
            self.contentType = contentType
            self.method = method
            self.path = path
            self.encoding = encoding
            self.takesSingleRequest = takesSingleRequest
            self.servesMetrics = servesMetrics
            self.wire = contentType.flatMap(WireProtocol.init(contentType:))
            self.handlerIsUnary = handlerIsUnary
            self.connectProtocolVersion = connectProtocolVersion
            self.contentEncoding = contentEncoding
            self.connectContentEncoding = connectContentEncoding
            self.timeoutIsMalformed = timeoutIsMalformed
            self.metricsServiceName = metricsServiceName
            self.hasHTTPRoute = hasHTTPRoute
        }

        /// Whether a plain HTTP route takes the request: one matches, and the request is
        /// not an RPC (no RPC content type, or Connect unary to a path no method serves).
        var goesToHTTPRoute: Bool {
            guard hasHTTPRoute, !isMetricsScrape else { return false }
            switch wire {
            case nil: return true
            case .connectUnary: return takesSingleRequest == nil
            default: return false
            }
        }

        /// Whether this is a metrics scrape the server answers.
        var isMetricsScrape: Bool {
            guard servesMetrics, method == "GET", let path else { return false }
            if path == "/metrics" { return true }
            guard let name = metricsServiceName, path.hasPrefix("/metrics/") else { return false }
            return path.utf8.dropFirst(9).elementsEqual(name.utf8)
        }

        /// The encoding the request's messages are in, by its protocol's header.
        var messageEncoding: String? {
            switch wire {
            case .grpc, nil: encoding
            case .connectUnary: contentEncoding
            case .connectStreaming: connectContentEncoding
            }
        }
    }

    enum OnRequestHeaders: Equatable {
        /// The stream had already ended (reset while its headers arrived).
        case none
        /// Not a request in a protocol served here (or a Connect form the method does not
        /// have): answer HTTP 415 with `accept-post`, and nothing else.
        case respondUnsupportedMediaType
        /// `GET /metrics` on a server that serves them: answer with the exposition.
        case respondMetrics
        /// A plain HTTP route serves the request and its handler slot is taken: gather the
        /// body, then start the route's handler at END_STREAM.
        case acceptHTTP
        /// End the call with this status (Trailers-Only); `advertiseEncodings` asks for
        /// `grpc-accept-encoding` beside it.
        case fail(RPCError, advertiseEncodings: Bool)
        /// No handler may start now (cap reached, or the connection drains): reset the
        /// stream with REFUSED_STREAM and count a glitch.
        case refuse
        /// The call is accepted and its handler slot taken: arm the deadline; when
        /// `startHandler`, start the handler now (it reads a stream of requests).
        case accept(startHandler: Bool)
        /// A second request header block on one stream: reset it.
        case reset(code: UInt32)
    }

    /// The request header block completed. `hasHandlerRoom`: whether the connection may
    /// start one more handler.
    mutating func receivedRequestHeaders(_ head: RequestHead, hasHandlerRoom: Bool) -> OnRequestHeaders {
        switch state {
        case .receivingHeaders:
            break
        case .resetByServer, .resetByClient, .abandoned, .closed:
            return .none
        case .clientOpenServerIdle, .clientOpenServerOpen, .clientClosedServerIdle, .clientClosedServerOpen,
            .clientOpenServerClosed, .clientClosedServerClosed:
            return .reset(code: H2Error.protocolError)
        }
        if head.goesToHTTPRoute {
            state = .clientOpenServerIdle
            guard hasHandlerRoom else { return .refuse }
            servesHTTP = true
            takesSingleRequest = true
            handlerSlot = .reserved
            return .acceptHTTP
        }
        guard let wire = head.wire else {
            state = .clientOpenServerClosed
            return head.isMetricsScrape ? .respondMetrics : .respondUnsupportedMediaType
        }
        self.wire = wire
        state = .clientOpenServerIdle
        guard head.method == "POST" else {
            let name = wire.isConnect ? "Connect" : "gRPC"
            return .fail(RPCError(code: .invalidArgument, message: "\(name) requires the POST method"), advertiseEncodings: false)
        }
        if wire.isConnect {
            if let version = head.connectProtocolVersion, version != "1" {
                return .fail(
                    RPCError(code: .invalidArgument, message: "connect-protocol-version \"\(version)\" is not supported (1 is)"),
                    advertiseEncodings: false)
            }
            if head.timeoutIsMalformed {
                return .fail(
                    RPCError(code: .invalidArgument, message: "connect-timeout-ms must be a number of at most 10 digits"),
                    advertiseEncodings: false)
            }
        }
        guard let takesSingleRequest = head.takesSingleRequest else {
            return .fail(RPCError(code: .unimplemented, message: "method not found: \(head.path ?? "")"), advertiseEncodings: false)
        }
        switch wire {
        case .connectUnary where !head.handlerIsUnary, .connectStreaming where head.handlerIsUnary:
            // The method exists, but not in this form: Connect answers 415.
            state = .clientOpenServerClosed
            return .respondUnsupportedMediaType
        default:
            break
        }
        if let encoding = head.messageEncoding, encoding != "identity" {
            return .fail(
                RPCError(code: .unimplemented, message: "message compression \"\(encoding)\" is not supported (identity is)"),
                advertiseEncodings: true)
        }
        guard hasHandlerRoom else { return .refuse }
        self.takesSingleRequest = takesSingleRequest
        handlerSlot = takesSingleRequest ? .reserved : .running
        return .accept(startHandler: !takesSingleRequest)
    }

    enum OnData: Equatable {
        /// Deframe the bytes and hand the messages on.
        case deliver
        /// Nobody will read them: return their window credit at once.
        case discard
        /// DATA the protocol does not allow here (before the request headers, or after
        /// END_STREAM): reset the stream, return the credit and count a glitch.
        case reset(code: UInt32)
    }

    /// A chunk of a DATA frame arrived.
    func receivedData() -> OnData {
        switch state {
        case .clientOpenServerIdle, .clientOpenServerOpen:
            .deliver
        case .receivingHeaders:
            .reset(code: H2Error.protocolError)
        case .clientClosedServerIdle, .clientClosedServerOpen, .clientClosedServerClosed:
            .reset(code: H2Error.streamClosed)
        case .clientOpenServerClosed, .resetByServer, .resetByClient, .abandoned, .closed:
            .discard
        }
    }

    enum OnEndStream: Equatable {
        case none
        /// The single request message is in: start the handler.
        case startHandler
        /// A single-request handler got this many messages instead of one: fail the call.
        case wrongRequestCount(Int)
        /// Tell the handler's request stream that no more messages come.
        case finishRequests
        /// END_STREAM twice: reset the stream.
        case reset(code: UInt32)
    }

    /// The client sent END_STREAM (on HEADERS or DATA); `bufferedRequests` is the number of
    /// complete request messages held for a handler not yet started.
    mutating func receivedEndStream(bufferedRequests: Int) -> OnEndStream {
        switch state {
        case .clientOpenServerIdle:
            state = .clientClosedServerIdle
        case .clientOpenServerOpen:
            state = .clientClosedServerOpen
        case .clientOpenServerClosed:
            state = .clientClosedServerClosed
            return .none
        case .receivingHeaders:
            return .reset(code: H2Error.protocolError)
        case .clientClosedServerIdle, .clientClosedServerOpen, .clientClosedServerClosed:
            return .reset(code: H2Error.streamClosed)
        case .resetByServer, .resetByClient, .abandoned, .closed:
            return .none
        }
        switch handlerSlot {
        case .reserved:
            guard bufferedRequests == 1 else { return .wrongRequestCount(bufferedRequests) }
            handlerSlot = .running
            return .startHandler
        case .running where !takesSingleRequest:
            return .finishRequests
        case .none, .running, .released:
            return .none
        }
    }

    /// The client reset the stream (RST_STREAM received); nghttp2 closes it next.
    mutating func receivedReset() {
        switch state {
        case .resetByServer, .resetByClient, .closed:
            break
        default:
            state = .resetByClient(callWasOpen: !isFinished)
        }
    }

    // MARK: - Response

    enum OnSendMessage: Equatable {
        /// Submit the response headers with the body provider.
        case startResponse
        /// The body is already flowing: wake the provider if it waits.
        case resumeBody
        /// The call has ended: the message cannot go.
        case fail
    }

    /// The handler queued a response message.
    mutating func sendMessage() -> OnSendMessage {
        switch state {
        case .clientOpenServerIdle:
            state = .clientOpenServerOpen
            return .startResponse
        case .clientClosedServerIdle:
            state = .clientClosedServerOpen
            return .startResponse
        case .clientOpenServerOpen, .clientClosedServerOpen:
            return .resumeBody
        case .receivingHeaders, .clientOpenServerClosed, .clientClosedServerClosed, .resetByServer, .resetByClient, .abandoned, .closed:
            return .fail
        }
    }

    enum OnStatus: Equatable {
        /// A status was already decided, or the stream ended: nothing to send.
        case none
        /// Nothing was sent yet: one header block with the status (Trailers-Only).
        case sendTrailersOnly(releaseSlot: Bool)
        /// Trailers after the queued messages; `startResponse`: submit the response
        /// headers first.
        case sendTrailers(startResponse: Bool, releaseSlot: Bool)
    }

    /// The call's status is decided (the handler's outcome, a limit, the deadline).
    /// `pendingOutbound`: response bytes queued and not yet sent.
    mutating func decideStatus(pendingOutbound: Int) -> OnStatus {
        let startResponse: Bool
        switch state {
        case .receivingHeaders, .clientOpenServerIdle:
            state = .clientOpenServerClosed
            startResponse = true
        case .clientClosedServerIdle:
            state = .clientClosedServerClosed
            startResponse = true
        case .clientOpenServerOpen:
            state = .clientOpenServerClosed
            startResponse = false
        case .clientClosedServerOpen:
            state = .clientClosedServerClosed
            startResponse = false
        case .clientOpenServerClosed, .clientClosedServerClosed, .resetByServer, .resetByClient, .abandoned, .closed:
            return .none
        }
        let releaseSlot = releaseUnstartedSlot()
        if startResponse && pendingOutbound == 0 {
            return .sendTrailersOnly(releaseSlot: releaseSlot)
        }
        return .sendTrailers(startResponse: startResponse, releaseSlot: releaseSlot)
    }

    enum OnFinalHeadersSent: Equatable {
        case none
        /// The status went out before the client finished sending: tell it to stop.
        case resetNoError
    }

    /// A HEADERS or DATA frame with END_STREAM (the status, a 415, the end of a metrics
    /// response) was sent.
    mutating func sentFinalHeaders() -> OnFinalHeadersSent {
        guard state == .clientOpenServerClosed else { return .none }
        state = .resetByServer
        return .resetNoError
    }

    /// We reset the stream (RST_STREAM submitted).
    mutating func resetByServer() {
        guard state != .closed else { return }
        state = .resetByServer
    }

    /// The connection sends GOAWAY with an error and closes: returns true when the call
    /// was unfinished and its handler must be cancelled.
    mutating func abandon() -> Bool {
        guard !isFinished else { return false }
        state = .abandoned
        return true
    }

    // MARK: - Handler and close

    /// The handler reported back: its slot is free. Returns whether a status must still
    /// be sent.
    mutating func handlerFinished() -> Bool {
        if handlerSlot == .running { handlerSlot = .released }
        return !isFinished
    }

    struct OnClose: Equatable {
        /// The library reset the stream: the peer broke the protocol on it.
        var countsAsGlitch = false
        /// The call had not ended: cancel its handler.
        var cancelHandler = false
        /// The handler never started: give its slot back.
        var releaseSlot = false
    }

    /// nghttp2 closed the stream with `errorCode`, or (nil) the connection closed.
    mutating func closed(errorCode: UInt32?) -> OnClose {
        var result = OnClose()
        switch state {
        case .closed:
            return result
        case .resetByServer:
            break
        case .resetByClient(let callWasOpen):
            result.cancelHandler = callWasOpen
        default:
            result.countsAsGlitch = errorCode.map { $0 != H2Error.noError } ?? false
            result.cancelHandler = !isFinished
        }
        result.releaseSlot = releaseUnstartedSlot()
        state = .closed
        return result
    }

    private mutating func releaseUnstartedSlot() -> Bool {
        guard handlerSlot == .reserved else { return false }
        handlerSlot = .released
        return true
    }
}
