internal import CNghttp2
import STBMessages
import Glibc
internal import CLinux
import STBEventLoop

/// An open stream of a client connection.
enum ClientStream {
    /// A call of the general API (any kind, with metadata and a response queue).
    case call(ClientCall)
    /// A lean unary call of a `PreparedUnary`.
    case unary(UnaryExchange)
}

/// The client side of one HTTP/2 connection: calls multiplexed as streams. Loop only.
final class ClientConnection: HTTP2ConnectionDelegate {
    /// Request bytes queued per call above which `send` waits.
    static let maxQueuedRequestBytes = 256 * 1024
    /// SETTINGS_MAX_HEADER_LIST_SIZE we announce: a response header block (or trailers)
    /// of at most this many bytes, Σ(name + value + 32).
    static let maxHeaderListSize = 16 * 1024

    /// The socket and the nghttp2 session.
    let transport: HTTP2Connection
    let authority: String
    /// The open streams: general calls and lean unary exchanges.
    var streams: [Int32: ClientStream] = [:]
    /// Set on GOAWAY or close: new calls need a new connection.
    private(set) var isUsable = true
    private let onClose: (ClientConnection) -> Void

    init(loop: EventLoop, host: String, port: Int, onClose: @escaping (ClientConnection) -> Void) throws {
        let fd = try Socket.connect(host: host, port: port)
        self.authority = "\(host):\(port)"
        self.onClose = onClose
        self.transport = HTTP2Connection(loop: loop, fd: fd)
        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0 else { throw SocketError(operation: "nghttp2_option_new", errno: ENOMEM) }
        defer { nghttp2_option_del(option) }
        nghttp2_option_set_no_auto_window_update(option, 1)
        var newSession: OpaquePointer?
        guard nghttp2_session_client_new2(&newSession, HTTP2Callbacks.shared, transport.userDataPointer, option) == 0 else {
            Glibc.close(fd)
            throw SocketError(operation: "nghttp2_session_client_new2", errno: ENOMEM)
        }
        transport.session = newSession
        var entries = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: 1 << 20),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES.rawValue), value: 1),
            // Servers that honour it (grpcio does) keep their headers and trailers within
            // this, instead of sending a field larger than nghttp2 accepts, which would
            // end the connection (COMPRESSION_ERROR) and with it every call on it.
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: UInt32(Self.maxHeaderListSize)),
        ]
        nghttp2_submit_settings(newSession, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count)
        nghttp2_session_set_local_window_size(newSession, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, 16 << 20)
        transport.delegate = self
        do {
            try transport.activate(connecting: true)
        } catch {
            transport.delegate = nil  // the two hold each other until the connection closes
            throw error
        }
    }

    /// The `user-agent` every request carries.
    static let userAgent = "stb-rpc-swift/1.0"

    var loop: EventLoop { transport.loop }
    var session: OpaquePointer? { transport.session }
    var isClosed: Bool { transport.isClosed }

    /// Closes the socket; every open call fails. Safe to call more than once.
    func close(reason: String) {
        transport.close(reason: reason)
    }

    func connectionFailedToConnect(error: Int32) -> String {
        "could not connect to \(authority): \(String(cString: strerror(error)))"
    }

    /// Submits `call` as a new stream. Fails the call if the session refuses.
    func start(_ call: ClientCall) {
        guard let session, isUsable, !isClosed else {
            call.finish(RPCError(code: .unavailable, message: "connection to \(authority) is closed"))
            return
        }
        var block = HeaderBlock(capacity: 8 + call.requestMetadata.count)
        block.add(":method", "POST")
        block.add(":scheme", "http")
        block.add(":path", call.path)
        block.add(":authority", authority)
        block.add("content-type", "application/grpc")
        block.add("te", "trailers")
        block.add("user-agent", Self.userAgent)
        if let timeout = call.timeoutNanos { block.add("grpc-timeout", GRPCTimeout.format(nanoseconds: timeout)) }
        block.add(contentsOf: call.requestMetadata.headerFields())
        var provider = HTTP2Connection.bodyProvider
        let streamID = block.withNameValues { nghttp2_submit_request(session, nil, $0, $1, &provider, nil) }
        guard streamID > 0 else {
            call.finish(RPCError(code: .unavailable, message: "could not start a stream: \(LibError.describe(Int(streamID)))"))
            return
        }
        call.streamID = streamID
        call.connection = self
        streams[streamID] = .call(call)
        if let timeout = call.timeoutNanos, call.deadlineTimer == nil {
            call.deadlineTimer = loop.schedule(afterNanoseconds: timeout) { [weak self, unowned call] in
                self?.cancel(call, status: RPCError(code: .deadlineExceeded, message: "deadline exceeded"))
            }
        }
        transport.scheduleFlush()
    }

    func bodyUpdated(_ call: ClientCall) {
        guard let session, call.outbound.isDeferred else {
            transport.scheduleFlush()
            return
        }
        call.outbound.isDeferred = false
        nghttp2_session_resume_data(session, call.streamID)
        transport.scheduleFlush()
    }

    func cancel(_ call: ClientCall, status: RPCError) {
        guard !call.isFinished else { return }
        resetStream(call.streamID)
        call.finish(status)
    }

    /// Submits RST_STREAM (CANCEL) for `streamID` if it is open on the wire (a stream ID
    /// is given once the request is submitted) and the connection still has a session.
    func resetStream(_ streamID: Int32) {
        guard let session, streamID > 0 else { return }
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, H2Error.cancel)
        transport.scheduleFlush()
    }

    func returnCredit(_ call: ClientCall) {
        guard let session, call.unconsumedBytes > 0, call.responses.queuedBytes <= Self.maxQueuedRequestBytes else { return }
        nghttp2_session_consume(session, call.streamID, call.unconsumedBytes)
        call.unconsumedBytes = 0
        transport.scheduleFlush()
    }

    // MARK: - Callbacks

    func onHeader(
        _ frame: UnsafePointer<nghttp2_frame>, name: UnsafePointer<UInt8>, nameLength: Int,
        value: UnsafePointer<UInt8>, valueLength: Int
    ) -> Int32 {
        guard let stream = streams[frame.pointee.hd.stream_id] else { return 0 }
        let call: ClientCall
        switch stream {
        case .call(let general): call = general
        case .unary(let exchange):
            _ = exchange.responseStatus.take(name: name, nameLength: nameLength, value: value, valueLength: valueLength)
            return 0
        }
        // A Trailers-Only response (HEADERS with END_STREAM) carries trailers, not headers.
        let isTrailers = call.receivedHeaders || frame.pointee.hd.flags & FrameFlag.endStream != 0
        if call.responseStatus.take(name: name, nameLength: nameLength, value: value, valueLength: valueLength) { return 0 }
        if name[0] != UInt8(ascii: ":"), !hasPrefix(name, nameLength, "grpc-"),
            !bytesEqual(name, nameLength, "content-type"), !bytesEqual(name, nameLength, "content-length")
        {
            let key = makeString(name, nameLength)
            let text = makeString(value, valueLength)
            if isTrailers { call.trailerMetadata.addReceived(key: key, value: text) } else { call.headerMetadata.addReceived(key: key, value: text) }
        }
        return 0
    }

    func onFrameReceived(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let header = frame.pointee.hd
        switch header.type {
        case FrameType.headers:
            switch streams[header.stream_id] {
            case .call(let call)?:
                call.receivedHeaders = true
                if header.flags & FrameFlag.endStream != 0 { responseEnded(call) }
            case .unary(let exchange)?:
                exchange.receivedHeaders = true
                if header.flags & FrameFlag.endStream != 0 { exchange.finish(exchange.receivedOutcome()) }
            case nil:
                break
            }
        case FrameType.data:
            guard header.flags & FrameFlag.endStream != 0 else { break }
            switch streams[header.stream_id] {
            case .call(let call)?: responseEnded(call)
            case .unary(let exchange)?: exchange.finish(exchange.receivedOutcome())
            case nil: break
            }
        case FrameType.goaway:
            isUsable = false
        default:
            break
        }
        return 0
    }

    func onDataChunk(streamID: Int32, flags: UInt8, data: UnsafePointer<UInt8>, length: Int) -> Int32 {
        guard let session else { return 0 }
        let call: ClientCall
        switch streams[streamID] {
        case .call(let general)? where !general.isFinished:
            call = general
        case .unary(let exchange)?:
            exchangeData(exchange, data: data, length: length)
            return 0
        default:
            nghttp2_session_consume(session, streamID, length)
            return 0
        }
        do {
            try call.deframer.process(UnsafeRawBufferPointer(start: data, count: length)) { call.responses.push($0) }
        } catch {
            nghttp2_session_consume(session, streamID, length)
            let status = switch error {
            case .tooLarge(let size): RPCError(code: .resourceExhausted, message: "response message of \(size) bytes exceeds the limit")
            case .unexpectedFlags: RPCError(code: .internal, message: "compressed response without grpc-encoding")
            }
            cancel(call, status: status)
            return 0
        }
        if call.responses.queuedBytes > Self.maxQueuedRequestBytes {
            call.unconsumedBytes += length
        } else {
            nghttp2_session_consume(session, streamID, length)
        }
        return 0
    }

    func onStreamClose(streamID: Int32, errorCode: UInt32) -> Int32 {
        let call: ClientCall
        switch streams.removeValue(forKey: streamID) {
        case .call(let general)?: call = general
        case .unary(let exchange)?:
            exchangeClosed(exchange, errorCode: errorCode)
            return 0
        case nil: return 0
        }
        if let session, call.unconsumedBytes > 0 { nghttp2_session_consume_connection(session, call.unconsumedBytes) }
        if !call.isFinished, errorCode == H2Error.refusedStream, !call.receivedHeaders,
            call.refusalRetries > 0, let request = call.singleRequest
        {
            // REFUSED_STREAM means the server processed nothing (typically: we opened
            // streams before its MAX_CONCURRENT_STREAMS arrived). Retry transparently.
            call.refusalRetries -= 1
            call.outbound = OutboundBody()
            call.outbound.append(message: request)
            call.deframer = MessageDeframer(maxMessageSize: call.deframer.maxMessageSize)
            loop.executeSoon { [weak self] in
                guard let self else {
                    call.finish(RPCError(code: .unavailable, message: "the connection closed"))
                    return
                }
                self.start(call)
            }
            return 0
        }
        if !call.isFinished {
            let code = errorCode == H2Error.noError ? RPCError.Code.internal : RPCError.Code(resetCode: errorCode)
            call.finish(RPCError(code: code, message: "stream closed by the server without a status (HTTP/2 error \(errorCode))"))
        }
        call.connection = nil
        return 0
    }

    func readBody(streamID: Int32, into buffer: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        let call: ClientCall
        switch streams[streamID] {
        case .call(let general)?: call = general
        case .unary(let exchange)?: return exchangeBody(exchange, into: buffer, length: length, flags: flags)
        case nil:
            flags.pointee |= DataFlag.eof
            return 0
        }
        let count = call.outbound.copy(into: buffer, length: length)
        if count > 0, call.outbound.pending <= Self.maxQueuedRequestBytes / 2 {
            call.outbound.resumeWaiters(error: nil)
        }
        if call.outbound.pending == 0 {
            if call.sendingFinished {
                flags.pointee |= DataFlag.eof
            } else if count == 0 {
                call.outbound.isDeferred = true
                return LibError.deferred
            }
        }
        return count
    }

    private func responseEnded(_ call: ClientCall) {
        call.finish(call.responseStatus.status(trailers: call.trailerMetadata))
    }

    func connectionDidClose(reason: String) {
        isUsable = false
        let open = streams.values
        streams.removeAll()
        let status = RPCError(code: .unavailable, message: "connection lost: \(reason)")
        for stream in open {
            switch stream {
            case .call(let call):
                call.finish(status)
                call.connection = nil
            case .unary(let exchange):
                exchange.finish(.failure(status))
            }
        }
        onClose(self)
    }
}
