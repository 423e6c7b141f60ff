internal import CNghttp2
import Glibc
import Logging
import Synchronization
import STBEventLoop

/// The server side of one HTTP/2 connection: request parsing, dispatch to handlers,
/// response framing and the hardening policy. Loop only.
final class ServerConnection: HTTP2Connection {
    private let server: ServerCore
    private var config: RPCServer.Configuration { server.configuration }
    private var streams: [Int32: ServerStream] = [:]
    let peer: String

    private var runningHandlers = 0
    private var bufferedInbound = 0
    private let createdAt: UInt64
    private var handshakeDone = false
    private var lastActivity: UInt64
    private var stallClockStart: UInt64
    private var lastPingReceived: UInt64 = 0
    private var pingStrikes = 0
    private var glitchTokens: Double
    private var glitchRefilledAt: UInt64
    private var closingAfterFlush = false
    private(set) var isDraining = false

    init(server: ServerCore, loop: EventLoop, fd: Int32) throws(SocketError) {
        self.server = server
        self.peer = Socket.peerDescription(fd)
        self.createdAt = loop.now
        self.lastActivity = loop.now
        self.stallClockStart = loop.now
        self.glitchTokens = Double(server.configuration.glitchBurst)
        self.glitchRefilledAt = loop.now
        super.init(loop: loop, fd: fd)
        Socket.setNoDelay(fd)

        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0 else { throw SocketError(operation: "nghttp2_option_new", errno: ENOMEM) }
        defer { nghttp2_option_del(option) }
        // Window credit is returned as handlers read (backpressure), not on receipt.
        nghttp2_option_set_no_auto_window_update(option, 1)
        nghttp2_option_set_no_closed_streams(option, 1)
        var newSession: OpaquePointer?
        guard nghttp2_session_server_new2(&newSession, HTTP2Callbacks.shared, userDataPointer, option) == 0 else {
            throw SocketError(operation: "nghttp2_session_server_new2", errno: ENOMEM)
        }
        session = newSession
        let settings: [(Int32, UInt32)] = [
            (Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), UInt32(config.maxConcurrentStreams)),
            (Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), UInt32(config.initialStreamWindow)),
            (Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), UInt32(config.maxHeaderListSize)),
            (Int32(NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES.rawValue), 1),
        ]
        var entries = settings.map { nghttp2_settings_entry(settings_id: $0.0, value: $0.1) }
        nghttp2_submit_settings(newSession, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count)
        nghttp2_session_set_local_window_size(newSession, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(config.connectionWindow))
        try activate()
        loop.scheduleFlush(self)
    }

    // MARK: - Request headers

    override func onBeginHeaders(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let header = frame.pointee.hd
        guard header.type == FrameType.headers else { return 0 }
        if frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
            streams[header.stream_id] = ServerStream(id: header.stream_id, maxMessageSize: config.maxReceiveMessageSize)
            lastActivity = loop.now
        }
        // Per stream, so a block the library or the header budget rejects (and that
        // therefore never completes) ends with its stream instead of lingering.
        streams[header.stream_id]?.headersStartedAt = loop.now
        return 0
    }

    override func onHeader(
        _ frame: UnsafePointer<nghttp2_frame>, name: UnsafePointer<UInt8>, nameLength: Int,
        value: UnsafePointer<UInt8>, valueLength: Int
    ) -> Int32 {
        guard let stream = streams[frame.pointee.hd.stream_id] else { return 0 }
        stream.headerBytes += nameLength + valueLength + 32
        stream.headerFields += 1
        if stream.headerBytes > config.maxHeaderListSize || stream.headerFields > config.maxHeaderFields {
            glitch()
            reset(stream, code: H2Error.enhanceYourCalm)
            return LibError.temporalCallbackFailure
        }
        guard frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST else { return 0 }  // request trailers: ignored
        if name[0] == UInt8(ascii: ":") {
            if bytesEqual(name, nameLength, ":path") {
                stream.path = makeString(value, valueLength)
            } else if bytesEqual(name, nameLength, ":method") {
                stream.method = makeString(value, valueLength)
            }
        } else if bytesEqual(name, nameLength, "content-type") {
            stream.contentType = makeString(value, valueLength)
        } else if bytesEqual(name, nameLength, "grpc-timeout") {
            // A malformed timeout is treated as none rather than failing the call.
            stream.timeoutNanos = GRPCTimeout.parse(makeString(value, valueLength))
        } else if bytesEqual(name, nameLength, "grpc-encoding") {
            stream.encoding = makeString(value, valueLength)
        } else if hasPrefix(name, nameLength, "grpc-") || bytesEqual(name, nameLength, "te")
            || bytesEqual(name, nameLength, "user-agent") || bytesEqual(name, nameLength, "content-length")
        {
            // Protocol headers, not metadata.
        } else {
            stream.metadata.addReceived(key: makeString(name, nameLength), value: makeString(value, valueLength))
        }
        return 0
    }

    // MARK: - Frames

    override func onFrameReceived(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let header = frame.pointee.hd
        handshakeDone = true
        switch header.type {
        case FrameType.headers:
            guard let stream = streams[header.stream_id] else { return 0 }
            stream.headersStartedAt = nil
            if frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
                dispatch(stream)
            }
            if header.flags & FrameFlag.endStream != 0 { requestEnded(stream) }
        case FrameType.data:
            if header.flags & FrameFlag.endStream != 0, let stream = streams[header.stream_id] {
                requestEnded(stream)
            }
        case FrameType.rstStream:
            streams[header.stream_id]?.peerReset = true
        case FrameType.ping where header.flags & FrameFlag.ack == 0:
            pingReceived()
        default:
            break
        }
        return 0
    }

    override func onDataChunk(streamID: Int32, flags: UInt8, data: UnsafePointer<UInt8>, length: Int) -> Int32 {
        guard let session else { return 0 }
        guard let stream = streams[streamID], !stream.isFinished else {
            // Nobody will read these bytes: return their window credit at once.
            nghttp2_session_consume(session, streamID, length)
            return 0
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
        } catch .tooLarge(let size) {
            nghttp2_session_consume(session, streamID, length)
            fail(stream, RPCError(code: .resourceExhausted, message: "request message of \(size) bytes exceeds the limit of \(config.maxReceiveMessageSize) bytes"))
            return 0
        } catch {
            nghttp2_session_consume(session, streamID, length)
            fail(stream, RPCError(code: .internal, message: "compressed message received without grpc-encoding"))
            return 0
        }
        bufferedInbound += stream.deframer.bufferedByteCount - before
        if bufferedInbound > config.maxBufferedInboundPerConnection {
            nghttp2_session_consume(session, streamID, length)
            fail(stream, RPCError(code: .resourceExhausted, message: "connection receive buffer is full"))
            return 0
        }
        if stream.handler?.takesSingleRequest == true, stream.singleRequest.count > 1 {
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

    override func onStreamClose(streamID: Int32, errorCode: UInt32) -> Int32 {
        guard let stream = streams.removeValue(forKey: streamID) else { return 0 }
        stream.isClosed = true
        lastActivity = loop.now
        bufferedInbound -= stream.deframer.bufferedByteCount
        if errorCode != H2Error.noError, !stream.peerReset, !stream.weReset {
            glitch()  // the library reset it: the peer broke the protocol on this stream
        }
        if let session, stream.unconsumedBytes > 0 {
            nghttp2_session_consume_connection(session, stream.unconsumedBytes)
        }
        stream.deadlineTimer?.cancel()
        stream.requestQueue?.finish(.failure(RPCError(code: .cancelled, message: "the call was cancelled")))
        if !stream.isFinished {
            stream.isFinished = true
            stream.call?.cancelTask()
        }
        resumeDrainWaiters(stream, error: RPCError(code: .cancelled, message: "the call was cancelled"))
        releaseUnstartedSlot(stream)
        stream.call = nil  // the call keeps its stream while the handler runs; not the reverse
        if isDraining { closeIfDrained() }
        return 0
    }

    override func onInvalidFrame(_ frame: UnsafePointer<nghttp2_frame>, error: Int32) -> Int32 {
        glitch()
        return 0
    }

    override func onFrameSent(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let header = frame.pointee.hd
        if header.type == FrameType.headers || header.type == FrameType.data {
            // Sending data or headers forgives earlier pings (gRPC keepalive policy).
            pingStrikes = 0
            lastPingReceived = 0
        }
        // Status sent before the client finished sending: tell it to stop (RST NO_ERROR).
        if header.type == FrameType.headers, header.flags & FrameFlag.endStream != 0,
            let stream = streams[header.stream_id], !stream.requestEnded, !stream.weReset, let session
        {
            stream.weReset = true
            nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream.id, H2Error.noError)
        }
        return 0
    }

    // MARK: - Dispatch

    private func dispatch(_ stream: ServerStream) {
        guard !stream.isFinished, let session else { return }
        guard let contentType = stream.contentType, contentType.hasPrefix("application/grpc") else {
            stream.isFinished = true
            var block = HeaderBlock(capacity: 2)
            block.add(":status", "415")
            block.add("content-type", "text/plain")
            _ = block.withNameValues { nghttp2_submit_response(session, stream.id, $0, $1, nil) }
            return
        }
        guard stream.method == "POST" else {
            return fail(stream, RPCError(code: .invalidArgument, message: "gRPC requires the POST method"))
        }
        guard let path = stream.path, let handler = server.router.handler(for: path) else {
            return fail(stream, RPCError(code: .unimplemented, message: "method not found: \(stream.path ?? "")"))
        }
        if let encoding = stream.encoding, encoding != "identity" {
            stream.advertiseEncodings = true
            return fail(stream, RPCError(code: .unimplemented, message: "message compression \"\(encoding)\" is not supported"))
        }
        guard runningHandlers < config.maxRunningHandlersPerConnection, !isDraining else {
            glitch()
            reset(stream, code: H2Error.refusedStream)
            return
        }
        // The slot is taken now, not when the request ends: otherwise a client could send
        // every HEADERS first and their DATA later, and run more handlers than the cap.
        stream.handler = handler
        stream.holdsHandlerSlot = true
        runningHandlers += 1
        if let timeout = stream.timeoutNanos {
            stream.deadlineTimer = loop.schedule(afterNanoseconds: timeout) { [unowned self, unowned stream] in
                self.deadlineExpired(stream)
            }
        }
        if !handler.takesSingleRequest {
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

    private func requestEnded(_ stream: ServerStream) {
        stream.requestEnded = true
        guard !stream.isFinished, let handler = stream.handler else { return }
        if handler.takesSingleRequest {
            guard stream.singleRequest.count == 1 else {
                return fail(stream, RPCError(code: .unimplemented, message: "\(stream.path ?? "method") takes one request message, got \(stream.singleRequest.count)"))
            }
            start(stream)
        } else {
            stream.requestQueue?.finish()
        }
    }

    private func start(_ stream: ServerStream) {
        guard let handler = stream.handler else { return }
        let deadline = stream.timeoutNanos.map { ContinuousClock.now + .nanoseconds(Int64(clamping: $0)) }
        let context = ServerContext(
            path: stream.path ?? "", metadata: stream.metadata, peer: peer, deadline: deadline,
            responseMetadata: ResponseMetadata())
        let call = ServerCall(connection: self, stream: stream, context: context)
        stream.call = call
        let request = stream.singleRequest.first ?? []
        stream.singleRequest = []
        let queue = stream.requestQueue
        call.task = Task(executorPreference: loop) {
            do {
                switch handler {
                case .unary(let body):
                    call.complete(response: try await body(request, context), error: nil)
                case .serverStreaming(let body):
                    try await body(request, call, context)
                    call.complete(response: nil, error: nil)
                case .clientStreaming(let body):
                    call.complete(response: try await body(queue!, context), error: nil)
                case .bidirectionalStreaming(let body):
                    try await body(queue!, call, context)
                    call.complete(response: nil, error: nil)
                }
            } catch {
                call.complete(response: nil, error: error)
            }
        }
    }

    /// Gives back the handler slot of a stream that ends without its handler having run.
    private func releaseUnstartedSlot(_ stream: ServerStream) {
        guard stream.holdsHandlerSlot, stream.call == nil else { return }
        stream.holdsHandlerSlot = false
        runningHandlers -= 1
    }

    func handlerFinished(_ stream: ServerStream, response: [UInt8]?, error: (any Error)?) {
        stream.holdsHandlerSlot = false
        runningHandlers -= 1
        lastActivity = loop.now
        defer { if isDraining { closeIfDrained() } }
        guard !stream.isFinished, !isClosed else { return }
        if let response {
            stream.outbound.append(message: response)
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
    private func newHeaderBudget() -> HeaderBudget {
        var limit = config.maxResponseHeaderListSize
        if let session {
            let peer = nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE)
            limit = min(limit, Int(peer))
        }
        return HeaderBudget(limit: limit)
    }

    private func addResponseStart(into block: inout HeaderBlock, budget: inout HeaderBudget) {
        for (name, value) in [(":status", "200"), ("content-type", "application/grpc")] {
            block.add(name, value)
            budget.charge(name, value)
        }
    }

    /// The handler's initial metadata, taken once: it goes with the first header block.
    private func takeInitialMetadata(_ stream: ServerStream) -> Metadata {
        guard let call = stream.call else { return Metadata() }
        return call.context.responseMetadata.state.withLock { state in
            defer { state.initial = Metadata() }
            return state.initial
        }
    }

    private func responseHeaders(_ stream: ServerStream) -> HeaderBlock {
        var block = HeaderBlock(capacity: 4)
        var budget = newHeaderBudget()
        addResponseStart(into: &block, budget: &budget)
        addMetadata(takeInitialMetadata(stream), of: stream, into: &block, budget: &budget)
        return block
    }

    /// The status fields and the trailing metadata. The status code always goes; the
    /// message is cut to what the budget leaves; metadata goes only where it fits.
    private func statusFields(_ stream: ServerStream, _ status: RPCError, into block: inout HeaderBlock, budget: inout HeaderBudget) {
        let code = String(status.code.rawValue)
        block.add("grpc-status", code)
        budget.charge("grpc-status", code)
        if stream.advertiseEncodings {
            block.add("grpc-accept-encoding", "identity")
            budget.charge("grpc-accept-encoding", "identity")
        }
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
        }
        var trailing = status.metadata
        if let call = stream.call {
            trailing.add(contentsOf: call.context.responseMetadata.state.withLock { $0.trailing })
        }
        addMetadata(trailing, of: stream, into: &block, budget: &budget)
    }

    /// Adds each metadata field that fits; the rest are dropped and logged, since a
    /// header block over the client's limit would cost the whole call its status.
    private func addMetadata(_ metadata: Metadata, of stream: ServerStream, into block: inout HeaderBlock, budget: inout HeaderBudget) {
        var dropped: [String] = []
        for (name, value) in metadata.headerFields() {
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

    private func startResponse(_ stream: ServerStream) {
        guard !stream.responseStarted, let session else { return }
        stream.responseStarted = true
        var block = responseHeaders(stream)
        var provider = HTTP2Connection.bodyProvider
        _ = block.withNameValues { nghttp2_submit_response(session, stream.id, $0, $1, &provider) }
    }

    func enqueueResponseMessage(_ message: [UInt8], on stream: ServerStream) throws {
        guard !stream.isFinished, !isClosed, let session else {
            throw RPCError(code: .cancelled, message: "the call has ended")
        }
        stream.outbound.append(message: message)
        startOrResumeBody(stream, session)
        loop.scheduleFlush(self)
    }

    /// Submits the response headers with the body provider, or wakes a deferred provider.
    private func startOrResumeBody(_ stream: ServerStream, _ session: OpaquePointer) {
        if !stream.responseStarted {
            startResponse(stream)
        } else if stream.outbound.isDeferred {
            stream.outbound.isDeferred = false
            nghttp2_session_resume_data(session, stream.id)
        }
    }

    func needsDrain(_ stream: ServerStream) -> Bool {
        stream.pendingOutbound > config.maxQueuedOutboundPerStream && !stream.isFinished
    }

    /// Ends the call with `status`: trailers after any queued messages, or Trailers-Only.
    private func finish(_ stream: ServerStream, status: RPCError) {
        guard !stream.isFinished, let session else { return }
        stream.isFinished = true
        stream.deadlineTimer?.cancel()
        releaseUnstartedSlot(stream)
        if !stream.responseStarted && stream.pendingOutbound == 0 {
            // Trailers-Only: one block, in which the status comes before any metadata.
            var block = HeaderBlock(capacity: 4)
            var budget = newHeaderBudget()
            addResponseStart(into: &block, budget: &budget)
            let initial = takeInitialMetadata(stream)
            statusFields(stream, status, into: &block, budget: &budget)
            addMetadata(initial, of: stream, into: &block, budget: &budget)
            let result = block.withNameValues { nghttp2_submit_response(session, stream.id, $0, $1, nil) }
            if result != 0 { statusNotSubmitted(stream, result) }
        } else {
            var trailers = HeaderBlock(capacity: 2)
            var budget = newHeaderBudget()
            statusFields(stream, status, into: &trailers, budget: &budget)
            stream.trailers = trailers
            startOrResumeBody(stream, session)
        }
        loop.scheduleFlush(self)
    }

    /// The library refused the status block (the stream is already closing, or out of
    /// memory): reset the stream, so the client learns at once instead of at its deadline.
    private func statusNotSubmitted(_ stream: ServerStream, _ result: Int32) {
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

    private func reset(_ stream: ServerStream, code: UInt32) {
        guard let session else { return }
        stream.weReset = true
        stream.isFinished = true
        stream.call?.cancelTask()
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream.id, code)
        loop.scheduleFlush(self)
    }

    private func deadlineExpired(_ stream: ServerStream) {
        guard !stream.isFinished else { return }
        stream.requestQueue?.finish(.failure(RPCError(code: .deadlineExceeded, message: "deadline exceeded")))
        let call = stream.call
        finish(stream, status: RPCError(code: .deadlineExceeded, message: "deadline exceeded"))
        call?.cancelTask()
        resumeDrainWaiters(stream, error: RPCError(code: .deadlineExceeded, message: "deadline exceeded"))
    }

    override func readBody(streamID: Int32, into buffer: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let stream = streams[streamID] else {
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
            if var trailers = stream.trailers, let session {
                stream.trailers = nil
                flags.pointee |= DataFlag.eof | DataFlag.noEndStream
                let result = trailers.withNameValues { nghttp2_submit_trailer(session, streamID, $0, $1) }
                if result != 0 { statusNotSubmitted(stream, result) }
            } else if count == 0 {
                stream.outbound.isDeferred = true
                return LibError.deferred
            }
        }
        return count
    }

    private func resumeDrainWaiters(_ stream: ServerStream, error: RPCError?) {
        stream.outbound.resumeWaiters(error: error)
    }

    fileprivate func returnCredit(_ streamID: Int32) {
        guard let stream = streams[streamID], stream.unconsumedBytes > 0, let session,
            (stream.requestQueue?.queuedBytes ?? 0) <= config.maxQueuedOutboundPerStream
        else { return }
        nghttp2_session_consume(session, streamID, stream.unconsumedBytes)
        stream.unconsumedBytes = 0
        loop.scheduleFlush(self)
    }

    // MARK: - Policy: pings, glitches, timers, shutdown

    private func pingReceived() {
        let now = loop.now
        let interval = streams.isEmpty ? config.minPingIntervalWithoutCalls : config.minPingInterval
        if lastPingReceived != 0, now &- lastPingReceived < interval.nanoseconds {
            pingStrikes += 1
            if pingStrikes > config.maxPingStrikes {
                goAway(code: H2Error.enhanceYourCalm, debug: "too_many_pings", terminate: true)
            }
        }
        lastPingReceived = now
    }

    private func glitch() {
        let now = loop.now
        let elapsed = Double(now &- glitchRefilledAt) / 1e9
        glitchTokens = min(Double(config.glitchBurst), glitchTokens + elapsed * Double(config.glitchRefillPerSecond))
        glitchRefilledAt = now
        glitchTokens -= 1
        if glitchTokens < 0 {
            goAway(code: H2Error.enhanceYourCalm, debug: "too_many_glitches", terminate: true)
        }
    }

    private func goAway(code: UInt32, debug: String, terminate: Bool) {
        guard let session, !closingAfterFlush else { return }
        var debugBytes = Array(debug.utf8)
        nghttp2_submit_goaway(
            session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nghttp2_session_get_last_proc_stream_id(session),
            code, &debugBytes, debugBytes.count)
        if terminate {
            closingAfterFlush = true
            for stream in streams.values where !stream.isFinished {
                stream.isFinished = true
                stream.call?.cancelTask()
            }
        }
        loop.scheduleFlush(self)
    }

    override func flush() {
        if let session, nghttp2_session_get_outbound_queue_size(session) > 5000 {
            close(reason: "outbound frame queue overflow")
            return
        }
        super.flush()
        if closingAfterFlush, !isClosed, bufferedOutput == 0 {
            close(reason: "GOAWAY sent")
        }
    }

    override func tick(now: UInt64) {
        if !handshakeDone, now &- createdAt > config.handshakeTimeout.nanoseconds {
            return close(reason: "no HTTP/2 preface within the handshake timeout")
        }
        let headerDeadline = config.headerTimeout.nanoseconds
        if streams.values.contains(where: { $0.headersStartedAt.map { now &- $0 > headerDeadline } ?? false }) {
            goAway(code: H2Error.protocolError, debug: "header_timeout", terminate: true)
            return
        }
        if streams.isEmpty, runningHandlers == 0, now &- lastActivity > config.idleTimeout.nanoseconds {
            goAway(code: H2Error.noError, debug: "max_idle", terminate: true)
            return
        }
        let pending = bufferedOutput > 0 || streams.values.contains { $0.pendingOutbound > 0 }
        if !pending || lastWriteProgress > stallClockStart {
            stallClockStart = pending ? lastWriteProgress : now
        } else if now &- stallClockStart > config.writeStallTimeout.nanoseconds {
            close(reason: "peer stopped reading")
        }
    }

    /// Graceful shutdown, step one: announce it (GOAWAY with the maximum stream id + PING).
    func beginShutdown() {
        guard let session, !isDraining else { return }
        isDraining = true
        nghttp2_submit_shutdown_notice(session)
        loop.scheduleFlush(self)
        // About one round trip later, name the last stream we will process.
        loop.schedule(afterNanoseconds: 100_000_000) { [weak self] in
            guard let self, let session = self.session else { return }
            nghttp2_submit_goaway(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nghttp2_session_get_last_proc_stream_id(session),
                H2Error.noError, nil, 0)
            self.loop.scheduleFlush(self)
            self.closeIfDrained()
        }
    }

    private func closeIfDrained() {
        guard isDraining, streams.isEmpty, runningHandlers == 0, !isClosed else { return }
        closingAfterFlush = true
        loop.scheduleFlush(self)
    }

    override func connectionDidClose(reason: String) {
        server.logger.debug("connection closed", metadata: ["peer": "\(peer)", "reason": "\(reason)"])
        for stream in streams.values {
            stream.isClosed = true
            stream.deadlineTimer?.cancel()
            stream.requestQueue?.finish(.failure(RPCError(code: .cancelled, message: "the connection closed")))
            if !stream.isFinished {
                stream.isFinished = true
                stream.call?.cancelTask()
            }
            resumeDrainWaiters(stream, error: RPCError(code: .cancelled, message: "the connection closed"))
            releaseUnstartedSlot(stream)
            stream.call = nil
        }
        streams.removeAll()
        server.connectionClosed(self)
    }

    var openStreamCount: Int { streams.count }
    var runningHandlerCount: Int { runningHandlers }
}
