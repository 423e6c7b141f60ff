internal import CNghttp2
import STBEventLoop
import STBMessages

// The lean unary path: the same callbacks as a general call's, without a response queue,
// header strings or response metadata.
extension ClientConnection {
    /// Submits `exchange` as a new stream with its prepared headers. Fails it if the
    /// connection cannot take it.
    func start(_ exchange: UnaryExchange) {
        // A call that ended while waiting for a retry (its deadline, a cancel) stays ended.
        guard !exchange.isFinished else { return }
        guard let session, isUsable, !isClosed else {
            exchange.finish(.failure(RPCError(code: .unavailable, message: "connection to \(authority) is closed")))
            return
        }
        var provider = HTTP2Connection.bodyProvider
        let streamID = nghttp2_submit_request(session, nil, exchange.headers.fields, exchange.headers.count, &provider, nil)
        guard streamID > 0 else {
            exchange.finish(.failure(RPCError(code: .unavailable, message: "could not start a stream: \(LibError.describe(Int(streamID)))")))
            return
        }
        exchange.streamID = streamID
        exchange.connection = self
        streams[streamID] = .unary(exchange)
        transport.scheduleFlush()
    }

    /// Ends `exchange` with `status` (RST_STREAM if it is open on the wire).
    func cancel(_ exchange: UnaryExchange, status: RPCError) {
        guard !exchange.isFinished else { return }
        resetStream(exchange.streamID)
        exchange.finish(.failure(status))
    }

    func exchangeData(_ exchange: UnaryExchange, data: UnsafePointer<UInt8>, length: Int) {
        guard let session else { return }
        // One response message, held until the status: the window is returned at once.
        nghttp2_session_consume(session, exchange.streamID, length)
        guard !exchange.isFinished else { return }
        do {
            try exchange.deframer.process(UnsafeRawBufferPointer(start: data, count: length)) { message in
                if exchange.response == nil { exchange.response = message } else { exchange.extraResponses = true }
            }
        } catch {
            let status = switch error {
            case .tooLarge(let size): RPCError(code: .resourceExhausted, message: "response message of \(size) bytes exceeds the limit")
            case .unexpectedFlags: RPCError(code: .internal, message: "compressed response without grpc-encoding")
            }
            cancel(exchange, status: status)
        }
    }

    func exchangeBody(
        _ exchange: UnaryExchange, into buffer: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        let bytes = exchange.request.bytes
        let count = min(bytes.count - exchange.requestOffset, length)
        if count > 0 {
            bytes.withUnsafeBytes { source in
                UnsafeMutableRawPointer(buffer).copyMemory(from: source.baseAddress! + exchange.requestOffset, byteCount: count)
            }
            exchange.requestOffset += count
        }
        if exchange.requestOffset == bytes.count { flags.pointee |= DataFlag.eof }
        return count
    }

    func exchangeClosed(_ exchange: UnaryExchange, errorCode: UInt32) {
        guard !exchange.isFinished else { return }
        if errorCode == H2Error.refusedStream, !exchange.receivedHeaders, exchange.refusalRetries > 0 {
            // REFUSED_STREAM: the server processed nothing (typically: streams opened before
            // its MAX_CONCURRENT_STREAMS arrived). Retry transparently, as a general call does.
            exchange.refusalRetries -= 1
            exchange.requestOffset = 0
            exchange.deframer = MessageDeframer(maxMessageSize: exchange.deframer.maxMessageSize)
            exchange.connection = nil
            loop.executeSoon { [weak self] in
                guard let self else {
                    exchange.finish(.failure(RPCError(code: .unavailable, message: "the connection closed")))
                    return
                }
                self.start(exchange)
            }
            return
        }
        let code = errorCode == H2Error.noError ? RPCError.Code.internal : RPCError.Code(resetCode: errorCode)
        exchange.finish(.failure(RPCError(code: code, message: "stream closed by the server without a status (HTTP/2 error \(errorCode))")))
    }
}
