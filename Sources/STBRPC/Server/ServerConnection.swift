internal import CNghttp2
import Glibc
import Logging
import Metrics
import Synchronization
import STBEventLoop

/// The server side of one HTTP/2 connection: it feeds what nghttp2 reports into each
/// stream's `ServerStreamStateMachine` and into the connection's `ServerConnectionPolicy`,
/// and carries out what they return: dispatch to handlers, response framing, resets,
/// GOAWAY and close. Loop only.
final class ServerConnection: HTTP2ConnectionDelegate {
    let server: ServerCore
    /// The socket and the nghttp2 session.
    let transport: HTTP2Connection
    var config: RPCServer.Configuration { server.configuration }
    private var streams: [Int32: ServerStream] = [:]
    /// The stream the last lookup found: a frame's callbacks (each header field, each DATA
    /// chunk, the frame itself) ask for the same stream many times in a row.
    private var lastStream: ServerStream?
    var policy: ServerConnectionPolicy
    let peer: String
    var bufferedInbound = 0
    /// Socket bytes already added to the server's byte counters.
    private var reportedBytesRead = 0
    private var reportedBytesWritten = 0
    /// Open streams already added to the server's stream gauge.
    private var reportedStreams = 0
    /// The `authorization` value of the connection's last call: a client sends the same
    /// one on every call, and the next call with the same bytes shares this string
    /// instead of copying the token again.
    private var lastAuthorization = ""
    private var metrics: TransportMetrics { server.transportMetrics }

    init(server: ServerCore, loop: EventLoop, fd: Int32) throws(SocketError) {
        self.server = server
        self.peer = Socket.peerDescription(fd)
        self.policy = ServerConnectionPolicy(limits: ServerConnectionPolicy.Limits(server.configuration), now: loop.now)
        self.transport = HTTP2Connection(loop: loop, fd: fd)
        Socket.setNoDelay(fd)
        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0 else { throw SocketError(operation: "nghttp2_option_new", errno: ENOMEM) }
        defer { nghttp2_option_del(option) }
        // Window credit is returned as handlers read (backpressure), not on receipt.
        nghttp2_option_set_no_auto_window_update(option, 1)
        nghttp2_option_set_no_closed_streams(option, 1)
        var newSession: OpaquePointer?
        guard nghttp2_session_server_new2(&newSession, HTTP2Callbacks.shared, transport.userDataPointer, option) == 0 else {
            throw SocketError(operation: "nghttp2_session_server_new2", errno: ENOMEM)
        }
        transport.session = newSession
        let settings: [(Int32, UInt32)] = [
            (Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), UInt32(config.maxConcurrentStreams)),
            (Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), UInt32(config.initialStreamWindow)),
            (Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), UInt32(config.maxHeaderListSize)),
            (Int32(NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES.rawValue), 1),
        ]
        var entries = settings.map { nghttp2_settings_entry(settings_id: $0.0, value: $0.1) }
        nghttp2_submit_settings(newSession, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count)
        nghttp2_session_set_local_window_size(newSession, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(config.connectionWindow))
        transport.delegate = self
        do {
            try transport.activate()
        } catch {
            transport.delegate = nil  // the two hold each other until the connection closes
            throw error
        }
        metrics.connections.increment()
        transport.scheduleFlush()
    }

    var loop: EventLoop { transport.loop }
    var session: OpaquePointer? { transport.session }
    var isClosed: Bool { transport.isClosed }
    /// Whether a graceful shutdown has begun.
    var isDraining: Bool { policy.isDraining }

    /// Closes the socket; every open call is cancelled. Safe to call more than once.
    func close(reason: String) {
        transport.close(reason: reason)
    }

    /// The open stream with this id.
    private func stream(_ id: Int32) -> ServerStream? {
        if let lastStream, lastStream.id == id { return lastStream }
        let found = streams[id]
        if found != nil { lastStream = found }
        return found
    }

    // MARK: - Request headers

    func onBeginHeaders(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let header = frame.pointee.hd
        guard header.type == FrameType.headers else { return 0 }
        if frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
            let stream = ServerStream(id: header.stream_id, maxMessageSize: config.maxReceiveMessageSize)
            streams[header.stream_id] = stream
            lastStream = stream
            policy.streamOpened(now: loop.now)
        }
        // Per stream, so a block the library or the header budget rejects (and that
        // therefore never completes) ends with its stream instead of lingering.
        stream(header.stream_id)?.headersStartedAt = loop.now
        return 0
    }

    func onHeader(
        _ frame: UnsafePointer<nghttp2_frame>, name: UnsafePointer<UInt8>, nameLength: Int,
        value: UnsafePointer<UInt8>, valueLength: Int
    ) -> Int32 {
        guard let stream = self.stream(frame.pointee.hd.stream_id) else { return 0 }
        let field = stream.machine.receivedHeaderField(
            size: nameLength + valueLength + 32, maxListSize: config.maxHeaderListSize, maxFields: config.maxHeaderFields)
        if field == .resetOverBudget {
            glitch()
            reset(stream, code: H2Error.enhanceYourCalm)
            return LibError.temporalCallbackFailure
        }
        guard frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST else { return 0 }  // request trailers: ignored
        if name[0] == UInt8(ascii: ":") {
            if bytesEqual(name, nameLength, ":path") {
                // A method's path reuses the registered string; anything else is copied.
                stream.route = server.routes.route(value, valueLength)
                stream.path = stream.route?.path ?? makeString(value, valueLength)
            } else if bytesEqual(name, nameLength, ":method") {
                stream.method = makeString(value, valueLength)
            }
        } else if bytesEqual(name, nameLength, "content-type") {
            stream.contentType =
                bytesEqual(value, valueLength, "application/grpc") ? "application/grpc" : makeString(value, valueLength)
        } else if bytesEqual(name, nameLength, "grpc-timeout") {
            // A malformed timeout is treated as none rather than failing the call.
            stream.timeoutNanos = GRPCTimeout.parse(makeString(value, valueLength))
        } else if bytesEqual(name, nameLength, "grpc-encoding") {
            stream.encoding = makeString(value, valueLength)
        } else if bytesEqual(name, nameLength, "authorization") {
            stream.metadata.addReceived(key: "authorization", value: authorizationValue(value, valueLength))
        } else if hasPrefix(name, nameLength, "connect-") || bytesEqual(name, nameLength, "content-encoding") {
            connectHeader(name, nameLength, makeString(value, valueLength), of: stream)
        } else if hasPrefix(name, nameLength, "grpc-") || bytesEqual(name, nameLength, "te")
            || bytesEqual(name, nameLength, "user-agent") || bytesEqual(name, nameLength, "content-length")
            || bytesEqual(name, nameLength, "accept-encoding")
        {
            // Protocol headers, not metadata.
        } else {
            stream.metadata.addReceived(key: makeString(name, nameLength), value: makeString(value, valueLength))
        }
        return 0
    }

    /// The `authorization` header's value: the connection's previous one when the bytes are
    /// the same (both came from this connection's peer, so comparing them tells it nothing).
    private func authorizationValue(_ value: UnsafePointer<UInt8>, _ length: Int) -> String {
        var last = lastAuthorization
        if length > 0, last.utf8.count == length, last.withUTF8({ memcmp($0.baseAddress!, value, length) }) == 0 {
            return last
        }
        last = makeString(value, length)
        lastAuthorization = last
        return last
    }

    /// A Connect protocol header (`connect-*`, `content-encoding`): never metadata.
    private func connectHeader(_ name: UnsafePointer<UInt8>, _ nameLength: Int, _ value: String, of stream: ServerStream) {
        if bytesEqual(name, nameLength, "connect-timeout-ms") {
            stream.timeoutNanos = ConnectTimeout.parse(value)
            stream.timeoutIsMalformed = stream.timeoutNanos == nil
        } else if bytesEqual(name, nameLength, "connect-protocol-version") {
            stream.connectProtocolVersion = value
        } else if bytesEqual(name, nameLength, "content-encoding") {
            stream.contentEncoding = value
        } else if bytesEqual(name, nameLength, "connect-content-encoding") {
            stream.connectContentEncoding = value
        }
    }

    // MARK: - Frames

    func onFrameReceived(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let header = frame.pointee.hd
        policy.frameReceived()
        switch header.type {
        case FrameType.headers:
            guard let stream = self.stream(header.stream_id) else { return 0 }
            stream.headersStartedAt = nil
            if frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
                dispatch(stream)
            }
            if header.flags & FrameFlag.endStream != 0 { requestEnded(stream) }
        case FrameType.data:
            if header.flags & FrameFlag.endStream != 0, let stream = self.stream(header.stream_id) {
                requestEnded(stream)
            }
        case FrameType.rstStream:
            stream(header.stream_id)?.machine.receivedReset()
        case FrameType.ping where header.flags & FrameFlag.ack == 0:
            perform(policy.pingReceived(now: loop.now))
        default:
            break
        }
        return 0
    }

    func onDataChunk(streamID: Int32, flags: UInt8, data: UnsafePointer<UInt8>, length: Int) -> Int32 {
        guard let session else { return 0 }
        guard let stream = self.stream(streamID) else {
            // Nobody will read these bytes: return their window credit at once.
            nghttp2_session_consume(session, streamID, length)
            return 0
        }
        switch stream.machine.receivedData() {
        case .deliver:
            break
        case .discard:
            nghttp2_session_consume(session, streamID, length)
            return 0
        case .reset(let code):
            nghttp2_session_consume(session, streamID, length)
            glitch()
            reset(stream, code: code)
            return 0
        }
        if case .connectUnary = stream.machine.wire {
            return receivedBareBody(stream, streamID: streamID, session: session, data: data, length: length)
        }
        if stream.machine.servesHTTP {
            return receivedHTTPBody(stream, streamID: streamID, session: session, data: data, length: length)
        }
        let before = stream.deframer.bufferedByteCount
        do {
            try stream.deframer.process(UnsafeRawBufferPointer(start: data, count: length)) { message in
                if let queue = stream.requestQueue {
                    queue.push(message)
                } else {
                    stream.singleRequest.append(message)
                }
            }
        } catch {
            nghttp2_session_consume(session, streamID, length)
            switch error {
            case .tooLarge(let size):
                fail(stream, RPCError(code: .resourceExhausted, message: "request message of \(size) bytes exceeds the limit of \(config.maxReceiveMessageSize) bytes"))
            case .unexpectedFlags(let flags):
                fail(stream, Self.flagsError(flags, wire: stream.machine.wire))
            }
            return 0
        }
        bufferedInbound += stream.deframer.bufferedByteCount - before
        if bufferedInbound > config.maxBufferedInboundPerConnection {
            nghttp2_session_consume(session, streamID, length)
            fail(stream, RPCError(code: .resourceExhausted, message: "connection receive buffer is full"))
            return 0
        }
        if stream.machine.takesSingleRequest, stream.singleRequest.count > 1 {
            nghttp2_session_consume(session, streamID, length)
            fail(stream, RPCError(code: .unimplemented, message: "\(stream.path ?? "method") takes one request message, got more"))
            return 0
        }
        if let queue = stream.requestQueue, queue.queuedBytes > config.maxQueuedOutboundPerStream {
            stream.unconsumedBytes += length  // credit returned when the handler reads
        } else {
            nghttp2_session_consume(session, streamID, length)
        }
        return 0
    }

    /// The status for a request message with flags set: compression that was not
    /// negotiated, or (Connect) a flag no request may carry.
    private static func flagsError(_ flags: UInt8, wire: WireProtocol?) -> RPCError {
        switch wire {
        case .connectStreaming where flags & 1 == 0:
            RPCError(code: .invalidArgument, message: "request envelope flags \(flags) are not allowed")
        case .connectStreaming:
            RPCError(code: .internal, message: "compressed message received without connect-content-encoding")
        default:
            RPCError(code: .internal, message: "compressed message received without grpc-encoding")
        }
    }

    /// A chunk of a Connect unary body: gathered whole, the message limit checked before
    /// the bytes are kept.
    private func receivedBareBody(
        _ stream: ServerStream, streamID: Int32, session: OpaquePointer, data: UnsafePointer<UInt8>, length: Int
    ) -> Int32 {
        nghttp2_session_consume(session, streamID, length)
        guard stream.bareBody.count + length <= config.maxReceiveMessageSize else {
            bufferedInbound -= stream.bareBody.count
            stream.bareBody = []
            fail(stream, RPCError(code: .resourceExhausted, message: "request message exceeds the limit of \(config.maxReceiveMessageSize) bytes"))
            return 0
        }
        guard bufferedInbound + length <= config.maxBufferedInboundPerConnection else {
            bufferedInbound -= stream.bareBody.count
            stream.bareBody = []
            fail(stream, RPCError(code: .resourceExhausted, message: "connection receive buffer is full"))
            return 0
        }
        stream.bareBody.append(contentsOf: UnsafeBufferPointer(start: data, count: length))
        bufferedInbound += length
        return 0
    }

    func onStreamClose(streamID: Int32, errorCode: UInt32) -> Int32 {
        guard let stream = streams.removeValue(forKey: streamID) else { return 0 }
        if lastStream === stream { lastStream = nil }
        bufferedInbound -= stream.bufferedInbound
        let closed = stream.machine.closed(errorCode: errorCode)
        if closed.countsAsGlitch {
            glitch()  // the library reset it: the peer broke the protocol on this stream
        }
        if let session, stream.unconsumedBytes > 0 {
            nghttp2_session_consume_connection(session, stream.unconsumedBytes)
        }
        endCall(of: stream, closed, error: RPCError(code: .cancelled, message: "the call was cancelled"))
        perform(policy.streamClosed(now: loop.now))
        return 0
    }

    /// The stream is gone (closed by nghttp2, or with the connection): stop its timer,
    /// end its request stream, cancel an unfinished handler, wake blocked writers, and give
    /// back a slot no handler used.
    private func endCall(of stream: ServerStream, _ closed: ServerStreamStateMachine.OnClose, error: RPCError) {
        stream.deadlineTimer?.cancel()
        stream.requestQueue?.finish(.failure(error))
        if closed.cancelHandler { stream.call?.cancelTask() }
        if !stream.outbound.drainWaiters.isEmpty { stream.outbound.resumeWaiters(error: error) }
        if closed.releaseSlot { perform(policy.handlerReleased(finishedAt: nil)) }
        stream.call = nil  // the call keeps its stream while the handler runs; not the reverse
    }

    func onInvalidFrame(_ frame: UnsafePointer<nghttp2_frame>, error: Int32) -> Int32 {
        glitch()
        return 0
    }

    func onFrameSent(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let header = frame.pointee.hd
        if header.type == FrameType.headers || header.type == FrameType.data {
            policy.headersOrDataSent()
        }
        if header.type == FrameType.headers || header.type == FrameType.data, header.flags & FrameFlag.endStream != 0,
            let stream = self.stream(header.stream_id), stream.machine.sentFinalHeaders() == .resetNoError, let session
        {
            nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream.id, H2Error.noError)
        }
        return 0
    }

    // MARK: - Dispatch

    private func dispatch(_ stream: ServerStream) {
        guard let session else { return }
        let handler = stream.route?.handler ?? stream.path.flatMap { server.router.handler(for: $0) }
        let httpHandler = config.httpRoutes.isEmpty ? nil : stream.path.flatMap { config.httpRoutes.handler(forTarget: $0) }
        let head = ServerStreamStateMachine.RequestHead(
            contentType: stream.contentType, method: stream.method, path: stream.path, encoding: stream.encoding,
            takesSingleRequest: handler?.takesSingleRequest, servesMetrics: config.metricsExposition != nil,
            handlerIsUnary: handler?.isUnary ?? false, connectProtocolVersion: stream.connectProtocolVersion,
            contentEncoding: stream.contentEncoding, connectContentEncoding: stream.connectContentEncoding,
            timeoutIsMalformed: stream.timeoutIsMalformed, metricsServiceName: config.metricsServiceName,
            hasHTTPRoute: httpHandler != nil)
        switch stream.machine.receivedRequestHeaders(head, hasHandlerRoom: policy.hasHandlerRoom) {
        case .none:
            return
        case .respondUnsupportedMediaType:
            var block = HeaderBlock(capacity: 3)
            block.add(":status", "415")
            block.add("content-type", "text/plain")
            block.add("accept-post", WireProtocol.acceptedContentTypes)
            _ = block.withNameValues { nghttp2_submit_response(session, stream.id, $0, $1, nil) }
            return
        case .respondMetrics:
            let body = config.metricsExposition?() ?? []
            var block = HeaderBlock(capacity: 3)
            block.add(":status", "200")
            block.add("content-type", PrometheusText.contentType)
            block.add("content-length", String(body.count))
            stream.outbound.append(raw: body)
            stream.endsWithBody = true
            var provider = HTTP2Connection.bodyProvider
            _ = block.withNameValues { nghttp2_submit_response(session, stream.id, $0, $1, &provider) }
            return
        case .acceptHTTP:
            policy.handlerReserved()
            stream.httpHandler = httpHandler
            return
        case .fail(let status, let advertiseEncodings):
            stream.advertiseEncodings = advertiseEncodings
            return fail(stream, status)
        case .refuse:
            glitch()
            reset(stream, code: H2Error.refusedStream)
            return
        case .reset(let code):
            glitch()
            reset(stream, code: code)
            return
        case .accept(let startHandler):
            policy.handlerReserved()
            stream.handler = handler
            if let timeout = stream.timeoutNanos {
                stream.deadlineTimer = loop.schedule(afterNanoseconds: timeout) { [unowned self, unowned stream] in
                    self.deadlineExpired(stream)
                }
            }
            if startHandler {
                let streamID = stream.id
                let credit = UncheckedSendableBox(self)
                let loop = self.loop
                stream.requestQueue = MessageQueue { _ in
                    // The handler took a message: return withheld window credit.
                    if loop.inEventLoop {
                        credit.value.returnCredit(streamID)
                    } else {
                        loop.execute { credit.value.returnCredit(streamID) }
                    }
                }
                start(stream)
            }
        }
    }

    private func requestEnded(_ stream: ServerStream) {
        if stream.machine.gathersWholeBody, !stream.machine.isFinished {
            // The whole body is the one request message, even when empty.
            bufferedInbound -= stream.bareBody.count
            stream.singleRequest = SingleRequest(stream.bareBody)
            stream.bareBody = []
        }
        let action = stream.machine.receivedEndStream(bufferedRequests: stream.singleRequest.count)
        // Bytes of a message whose rest never comes: a streaming call fails rather than
        // seeming to end cleanly without it, and a single-request call says so (INTERNAL,
        // as grpc-go answers). Its handler has not started, or reads the failure next.
        let truncated = stream.deframer.bufferedByteCount > 0
        switch action {
        case .none:
            break
        case .wrongRequestCount where truncated, .finishRequests where truncated:
            if stream.machine.wire?.isConnect == true {
                fail(stream, RPCError(code: .invalidArgument, message: "the request ended inside an envelope"))
            } else {
                fail(stream, RPCError(code: .internal, message: "the request ended inside a message"))
            }
        case .startHandler:
            start(stream)
        case .wrongRequestCount(let count):
            fail(stream, RPCError(code: .unimplemented, message: "\(stream.path ?? "method") takes one request message, got \(count)"))
        case .finishRequests:
            stream.requestQueue?.finish()
        case .reset(let code):
            glitch()
            reset(stream, code: code)
        }
    }

    private func start(_ stream: ServerStream) {
        if stream.machine.servesHTTP { return startHTTP(stream) }
        guard let handler = stream.handler else { return }
        let deadline = stream.timeoutNanos.map { ContinuousClock.now + .nanoseconds(Int64(clamping: $0)) }
        let wire = stream.machine.wire ?? .grpc(.proto)
        let codec = wire.codec
        let context = ServerContext(
            path: stream.path ?? "", metadata: stream.metadata, peer: peer, deadline: deadline,
            rpcProtocol: wire.isConnect ? .connect : .grpc, responseMetadata: ResponseMetadata())
        let call = ServerCall(connection: self, stream: stream, context: context)
        stream.call = call
        let request = stream.singleRequest.take()
        if let immediate = stream.route?.immediate, answeredImmediately(call, immediate, request, codec) { return }
        let queue = stream.requestQueue
        call.task = Task(executorPreference: loop) {
            do {
                switch handler {
                case .unary(let body):
                    call.complete(response: try await body(request, codec, context), error: nil)
                case .serverStreaming(let body):
                    try await body(request, codec, call, context)
                    call.complete(response: nil, error: nil)
                case .clientStreaming(let body):
                    call.complete(response: try await body(queue!, codec, context), error: nil)
                case .bidirectionalStreaming(let body):
                    try await body(queue!, codec, call, context)
                    call.complete(response: nil, error: nil)
                }
            } catch {
                call.complete(response: nil, error: error)
            }
        }
    }

    /// Runs a unary method's immediate answer here, inside the request's last callback:
    /// no task, no hop. False when it could not answer at once; the method's handler
    /// takes the call then.
    private func answeredImmediately(_ call: ServerCall, _ immediate: RPCRouter.Immediate, _ request: [UInt8], _ codec: MessageCodec) -> Bool {
        let response: [UInt8]
        do {
            guard let answer = try immediate(request, codec, call.context) else { return false }
            response = answer
        } catch {
            call.complete(response: nil, error: error)
            return true
        }
        call.complete(response: response, error: nil)
        return true
    }

    func handlerFinished(_ stream: ServerStream, response: [UInt8]?, error: (any Error)?) {
        if error != nil, let fault = error as? TransportFault { return carryOut(fault, on: stream) }
        let sendStatus = stream.machine.handlerFinished()
        let released = policy.handlerReleased(finishedAt: loop.now)
        defer { perform(released) }
        guard sendStatus, !isClosed else { return }
        if let response {
            if case .connectUnary = stream.machine.wire {
                stream.outbound.append(raw: response)
            } else {
                stream.outbound.append(message: response)
            }
        }
        let status: RPCError
        switch error {
        case nil: status = RPCError(code: .ok, message: "")
        case let error as RPCError: status = error
        case is CancellationError: status = RPCError(code: .cancelled, message: "the call was cancelled")
        case let error?:
            server.logger.warning("handler failed", metadata: ["path": "\(stream.path ?? "")", "error": "\(error)"])
            status = RPCError(code: .unknown, message: "the server failed to handle the call")
        }
        finish(stream, status: status)
    }

    // MARK: - Responses

    /// The budget for one response header block: ours, or the client's advertised
    /// SETTINGS_MAX_HEADER_LIST_SIZE when smaller (unset reads as unlimited).
    func newHeaderBudget() -> HeaderBudget {
        var limit = config.maxResponseHeaderListSize
        if let session {
            let peer = nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE)
            limit = min(limit, Int(peer))
        }
        return HeaderBudget(limit: limit)
    }

    private func addResponseStart(_ stream: ServerStream, into block: inout HeaderBlock, budget: inout HeaderBudget) {
        let contentType = stream.machine.wire?.responseContentType ?? "application/grpc"
        for (name, value) in [(":status", "200"), ("content-type", contentType)] {
            block.add(name, value)
            budget.charge(name, value)
        }
    }

    /// The handler's initial metadata, taken once: it goes with the first header block.
    func takeInitialMetadata(_ stream: ServerStream) -> Metadata {
        guard let call = stream.call else { return Metadata() }
        return call.context.responseMetadata.state.withLock { state in
            defer { state.initial = Metadata() }
            return state.initial
        }
    }

    private func responseHeaders(_ stream: ServerStream) -> HeaderBlock {
        var block = HeaderBlock(capacity: 4)
        var budget = newHeaderBudget()
        addResponseStart(stream, into: &block, budget: &budget)
        if stream.advertiseEncodings, case .connectStreaming = stream.machine.wire {
            block.add("connect-accept-encoding", "identity")
            budget.charge("connect-accept-encoding", "identity")
        }
        addMetadata(takeInitialMetadata(stream), of: stream, into: &block, budget: &budget)
        return block
    }

    /// The status fields and the trailing metadata. The status code always goes; the
    /// message is cut to what the budget leaves; the details (`grpc-status-details-bin`)
    /// and then the metadata go only where they fit.
    private func statusFields(_ stream: ServerStream, _ status: RPCError, into block: inout HeaderBlock, budget: inout HeaderBudget) {
        let code = String(status.code.rawValue)
        block.add("grpc-status", code)
        budget.charge("grpc-status", code)
        if stream.advertiseEncodings {
            block.add("grpc-accept-encoding", "identity")
            budget.charge("grpc-accept-encoding", "identity")
        }
        var sentMessage = ""
        if !status.message.isEmpty {
            let room = min(config.maxStatusMessageBytes, budget.valueRoom(forName: "grpc-message"))
            let message = StatusMessage.encode(status.message, limit: room)
            if message.utf8.count < status.message.utf8.count {
                server.logger.debug(
                    "status message shortened to fit the header budget",
                    metadata: ["path": "\(stream.path ?? "")", "bytes": "\(status.message.utf8.count)"])
            }
            if !message.isEmpty {
                block.add("grpc-message", message)
                budget.charge("grpc-message", message)
            }
            sentMessage = StatusMessage.decode(message)
        }
        addDetails(of: status, sentMessage: sentMessage, on: stream, into: &block, budget: &budget)
        addMetadata(trailingMetadata(stream, status), of: stream, into: &block, budget: &budget)
    }

    /// The status's metadata and the handler's trailing metadata.
    func trailingMetadata(_ stream: ServerStream, _ status: RPCError) -> Metadata {
        var trailing = status.metadata
        if let call = stream.call {
            trailing.add(contentsOf: call.context.responseMetadata.state.withLock { $0.trailing })
        }
        return trailing
    }

    /// Adds `grpc-status-details-bin`: the status's details that fit, with the message as
    /// it was sent (stock clients check that the two agree). Those that do not fit are
    /// dropped and logged; the status itself has already gone.
    private func addDetails(of status: RPCError, sentMessage: String, on stream: ServerStream, into block: inout HeaderBlock, budget: inout HeaderBudget) {
        guard !status.details.isEmpty else { return }
        let room = budget.valueRoom(forName: RPCError.detailsKey)
        let encoded = RPCError.detailsValue(code: status.code, message: sentMessage, details: status.details, room: room)
        if let encoded {
            block.add(RPCError.detailsKey, encoded.value)
            budget.charge(RPCError.detailsKey, encoded.value)
        }
        let dropped = encoded?.dropped ?? status.details.count
        if dropped > 0 {
            server.logger.warning(
                "status details dropped: over the header budget",
                metadata: ["path": "\(stream.path ?? "")", "dropped": "\(dropped) of \(status.details.count)"])
        }
    }

    /// Adds each metadata field that fits; the rest are dropped and logged, since a
    /// header block over the client's limit would cost the whole call its status.
    func addMetadata(
        _ metadata: Metadata, of stream: ServerStream, into block: inout HeaderBlock, budget: inout HeaderBudget,
        prefix: String = ""
    ) {
        var dropped: [String] = []
        for (key, value) in metadata.headerFields() {
            let name = prefix.isEmpty ? key : prefix + key
            if budget.take(name, value) {
                block.add(name, value)
            } else {
                dropped.append("\(name) (\(value.utf8.count) bytes)")
            }
        }
        if !dropped.isEmpty {
            server.logger.warning(
                "response metadata dropped: over the header budget",
                metadata: ["path": "\(stream.path ?? "")", "fields": "\(dropped.joined(separator: ", "))"])
        }
    }

    /// Submits the response headers with the body provider.
    func startResponse(_ stream: ServerStream, _ session: OpaquePointer) {
        var provider = HTTP2Connection.bodyProvider
        if case .grpc(.proto) = stream.machine.wire, !hasInitialMetadata(stream) {
            // The usual gRPC call: the same two fields every time, encoded once.
            _ = ResponseHeaderLists.grpcProto.withNameValues { nghttp2_submit_response(session, stream.id, $0, $1, &provider) }
            return
        }
        var block = responseHeaders(stream)
        _ = block.withNameValues { nghttp2_submit_response(session, stream.id, $0, $1, &provider) }
    }

    /// Whether the handler set initial metadata (without taking it).
    private func hasInitialMetadata(_ stream: ServerStream) -> Bool {
        guard let call = stream.call else { return false }
        return call.context.responseMetadata.state.withLock { !$0.initial.isEmpty }
    }

    /// Whether a status goes out as the lone `grpc-status: 0`: OK with no message, no
    /// details, no encodings advertised and no trailing metadata from the status or the
    /// handler.
    private func isBareOK(_ stream: ServerStream, _ status: RPCError) -> Bool {
        guard status.code == .ok, status.message.isEmpty, status.details.isEmpty, status.metadata.isEmpty,
            !stream.advertiseEncodings
        else { return false }
        guard let call = stream.call else { return true }
        return call.context.responseMetadata.state.withLock { $0.trailing.isEmpty }
    }

    /// Wakes the body provider if it told nghttp2 to wait for data.
    func resumeBody(_ stream: ServerStream, _ session: OpaquePointer) {
        guard stream.outbound.isDeferred else { return }
        stream.outbound.isDeferred = false
        nghttp2_session_resume_data(session, stream.id)
    }

    /// Queues a response message (`raw`: bytes of a plain HTTP body, not framed).
    func enqueueResponseMessage(_ message: [UInt8], on stream: ServerStream, raw: Bool = false) throws {
        guard !isClosed, let session else {
            throw RPCError(code: .cancelled, message: "the call has ended")
        }
        let next = stream.machine.sendMessage()
        guard next != .fail else { throw RPCError(code: .cancelled, message: "the call has ended") }
        if raw {
            stream.outbound.append(raw: message)
        } else {
            stream.outbound.append(message: message)
        }
        if next == .startResponse {
            startResponse(stream, session)
        } else {
            resumeBody(stream, session)
        }
        transport.scheduleFlush()
    }

    func needsDrain(_ stream: ServerStream) -> Bool {
        stream.pendingOutbound > config.maxQueuedOutboundPerStream && !stream.machine.isFinished
    }

    /// Ends the call with `status`: trailers after any queued messages, or Trailers-Only.
    func finish(_ stream: ServerStream, status: RPCError) {
        guard let session else { return }
        if let wire = stream.machine.wire, wire.isConnect {
            return finishConnect(stream, status: status, wire: wire, session: session)
        }
        switch stream.machine.decideStatus(pendingOutbound: stream.pendingOutbound) {
        case .none:
            return
        case .sendTrailersOnly(let releaseSlot):
            stream.deadlineTimer?.cancel()
            if releaseSlot { perform(policy.handlerReleased(finishedAt: nil)) }
            // Trailers-Only: one block, in which the status comes before any metadata.
            var block = HeaderBlock(capacity: 4)
            var budget = newHeaderBudget()
            addResponseStart(stream, into: &block, budget: &budget)
            let initial = takeInitialMetadata(stream)
            statusFields(stream, status, into: &block, budget: &budget)
            addMetadata(initial, of: stream, into: &block, budget: &budget)
            let result = block.withNameValues { nghttp2_submit_response(session, stream.id, $0, $1, nil) }
            if result != 0 { statusNotSubmitted(stream, result) }
        case .sendTrailers(let startResponse, let releaseSlot):
            stream.deadlineTimer?.cancel()
            if releaseSlot { perform(policy.handlerReleased(finishedAt: nil)) }
            if isBareOK(stream, status) {
                stream.trailers = .preencoded(ResponseHeaderLists.okStatus)
            } else {
                var trailers = HeaderBlock(capacity: 2)
                var budget = newHeaderBudget()
                statusFields(stream, status, into: &trailers, budget: &budget)
                stream.trailers = .block(trailers)
            }
            if startResponse {
                self.startResponse(stream, session)
            } else {
                resumeBody(stream, session)
            }
        }
        transport.scheduleFlush()
    }

    /// The library refused the status block (the stream is already closing, or out of
    /// memory): reset the stream, so the client learns at once instead of at its deadline.
    func statusNotSubmitted(_ stream: ServerStream, _ result: Int32) {
        server.logger.warning(
            "could not submit a call's status",
            metadata: ["path": "\(stream.path ?? "")", "error": "\(LibError.describe(Int(result)))"])
        reset(stream, code: H2Error.internalError)
    }

    /// Fails a call from the connection's side (limits, bad requests): status, then cancel.
    private func fail(_ stream: ServerStream, _ status: RPCError) {
        stream.requestQueue?.finish(.failure(status))
        let task = stream.call
        finish(stream, status: status)
        task?.cancelTask()
    }

    func reset(_ stream: ServerStream, code: UInt32) {
        guard let session else { return }
        stream.machine.resetByServer()
        stream.call?.cancelTask()
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream.id, code)
        transport.scheduleFlush()
    }

    private func deadlineExpired(_ stream: ServerStream) {
        guard !stream.machine.isFinished else { return }
        stream.requestQueue?.finish(.failure(RPCError(code: .deadlineExceeded, message: "deadline exceeded")))
        let call = stream.call
        finish(stream, status: RPCError(code: .deadlineExceeded, message: "deadline exceeded"))
        call?.cancelTask()
        stream.outbound.resumeWaiters(error: RPCError(code: .deadlineExceeded, message: "deadline exceeded"))
    }

    func readBody(streamID: Int32, into buffer: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let stream = self.stream(streamID) else {
            flags.pointee |= DataFlag.eof
            return 0
        }
        let count = stream.outbound.copy(into: buffer, length: length)
        if count > 0, !stream.outbound.drainWaiters.isEmpty,
            stream.pendingOutbound <= config.maxQueuedOutboundPerStream / 2
        {
            stream.outbound.resumeWaiters(error: nil)
        }
        if stream.pendingOutbound == 0 {
            if let trailers = stream.trailers, let session {
                stream.trailers = nil
                flags.pointee |= DataFlag.eof | DataFlag.noEndStream
                let result: Int32
                switch trailers {
                case .block(var block): result = block.withNameValues { nghttp2_submit_trailer(session, streamID, $0, $1) }
                case .preencoded(let list): result = list.withNameValues { nghttp2_submit_trailer(session, streamID, $0, $1) }
                }
                if result != 0 { statusNotSubmitted(stream, result) }
            } else if stream.endsWithBody {
                flags.pointee |= DataFlag.eof
            } else if count == 0 {
                stream.outbound.isDeferred = true
                return LibError.deferred
            }
        }
        return count
    }

    fileprivate func returnCredit(_ streamID: Int32) {
        guard let stream = self.stream(streamID), stream.unconsumedBytes > 0, let session,
            (stream.requestQueue?.queuedBytes ?? 0) <= config.maxQueuedOutboundPerStream
        else { return }
        nghttp2_session_consume(session, streamID, stream.unconsumedBytes)
        stream.unconsumedBytes = 0
        transport.scheduleFlush()
    }

    // MARK: - Policy: pings, glitches, timers, shutdown

    func glitch() {
        perform(policy.glitch(now: loop.now))
    }

    /// Carries out what the connection policy decided.
    func perform(_ action: ServerConnectionPolicy.Action) {
        switch action {
        case .none:
            break
        case .goAwayAndClose(let code, let debug):
            guard let session else { return }
            var debugBytes = Array(debug.utf8)
            nghttp2_submit_goaway(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nghttp2_session_get_last_proc_stream_id(session),
                code, &debugBytes, debugBytes.count)
            for stream in streams.values where stream.machine.abandon() {
                stream.call?.cancelTask()
            }
            transport.scheduleFlush()
        case .close(let reason):
            close(reason: reason)
        case .closeAfterFlush:
            guard !isClosed else { return }
            transport.scheduleFlush()
        case .sendShutdownNotice:
            guard let session else { return }
            nghttp2_submit_shutdown_notice(session)
            transport.scheduleFlush()
            // About one round trip later, name the last stream we will process.
            loop.schedule(afterNanoseconds: 100_000_000) { [weak self] in
                guard let self, self.session != nil else { return }
                self.perform(self.policy.shutdownNoticeElapsed())
            }
        case .sendFinalGoAway(let thenClose):
            guard let session else { return }
            nghttp2_submit_goaway(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nghttp2_session_get_last_proc_stream_id(session),
                H2Error.noError, nil, 0)
            transport.scheduleFlush()
            if thenClose { perform(.closeAfterFlush) }
        }
    }

    func connectionWillFlush() -> Bool {
        guard let session else { return true }
        let action = policy.willFlush(queuedFrames: nghttp2_session_get_outbound_queue_size(session))
        guard action == .none else {
            perform(action)
            return false
        }
        return true
    }

    func connectionDidFlush() {
        reportTraffic()
        perform(policy.didFlush(bufferedOutput: transport.bufferedOutput))
    }

    /// Adds the socket bytes moved and the streams opened or closed since the last report
    /// to the server's metrics: once per flush, not per read, write or stream (a unary call
    /// answered within one loop turn leaves the stream gauge alone).
    private func reportTraffic() {
        if streams.count != reportedStreams {
            metrics.streams.increment(by: Double(streams.count - reportedStreams))
            reportedStreams = streams.count
        }
        let read = transport.bytesRead, written = transport.bytesWritten
        if read != reportedBytesRead {
            metrics.receivedBytes.increment(by: read - reportedBytesRead)
            reportedBytesRead = read
        }
        if written != reportedBytesWritten {
            metrics.sentBytes.increment(by: written - reportedBytesWritten)
            reportedBytesWritten = written
        }
    }

    func connectionTick(now: UInt64) {
        var oldestHeaderBlock: UInt64?
        var pendingOutbound = false
        for stream in streams.values {
            if let started = stream.headersStartedAt, started < oldestHeaderBlock ?? .max { oldestHeaderBlock = started }
            if stream.pendingOutbound > 0 { pendingOutbound = true }
        }
        perform(policy.tick(
            now: now, oldestHeaderBlockStart: oldestHeaderBlock,
            pendingOutput: transport.bufferedOutput > 0 || pendingOutbound, lastWriteProgress: transport.lastWriteProgress))
    }

    /// Graceful shutdown, step one: announce it (GOAWAY with the maximum stream id + PING).
    func beginShutdown() {
        guard session != nil else { return }
        perform(policy.beginGracefulShutdown())
    }

    func connectionDidClose(reason: String) {
        server.logger.debug("connection closed", metadata: ["peer": "\(peer)", "reason": "\(reason)"])
        reportTraffic()
        metrics.connections.decrement()
        if reportedStreams != 0 { metrics.streams.decrement(by: Double(reportedStreams)) }
        reportedStreams = 0
        for stream in streams.values {
            endCall(of: stream, stream.machine.closed(errorCode: nil), error: RPCError(code: .cancelled, message: "the connection closed"))
        }
        streams.removeAll()
        lastStream = nil
        server.connectionClosed(self)
    }

    var openStreamCount: Int { streams.count }
    var runningHandlerCount: Int { policy.runningHandlers }
}
