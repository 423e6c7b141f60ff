internal import CNghttp2
import Logging

extension ServerConnection {
    /// A chunk of a plain HTTP request body: gathered whole, up to `HTTPRoutes.maxBodySize`
    /// (413 beyond) and within the connection's receive buffer (503 beyond).
    func receivedHTTPBody(
        _ stream: ServerStream, streamID: Int32, session: OpaquePointer, data: UnsafePointer<UInt8>, length: Int
    ) -> Int32 {
        nghttp2_session_consume(session, streamID, length)
        let status: Int
        if stream.bareBody.count + length > config.httpRoutes.maxBodySize {
            status = 413
        } else if bufferedInbound + length > config.maxBufferedInboundPerConnection {
            status = 503
        } else {
            stream.bareBody.append(contentsOf: UnsafeBufferPointer(start: data, count: length))
            bufferedInbound += length
            return 0
        }
        bufferedInbound -= stream.bareBody.count
        stream.bareBody = []
        let text = status == 413 ? "the request body exceeds \(config.httpRoutes.maxBodySize) bytes\n" : "the server is busy; retry\n"
        respondHTTP(stream, .text(status, text), body: Array(text.utf8))
        return 0
    }

    /// Starts the route's handler with the gathered request, in a task on the loop; its
    /// response goes out through `respondHTTP`, a streamed body through `sendRaw`.
    func startHTTP(_ stream: ServerStream) {
        guard let handler = stream.httpHandler else { return }
        var headers: [HTTPField] = []
        if let contentType = stream.contentType { headers.append(HTTPField("content-type", contentType)) }
        for (key, value) in stream.metadata {
            if case .string(let text) = value { headers.append(HTTPField(key, text)) }
        }
        let request = HTTPRequest(
            method: stream.method ?? "", target: stream.path ?? "/", headers: headers, body: stream.singleRequest.take(), peer: peer)
        let context = ServerContext(
            path: request.path, metadata: stream.metadata, peer: peer, deadline: nil, rpcProtocol: .grpc, responseMetadata: ResponseMetadata())
        let call = ServerCall(connection: self, stream: stream, context: context)
        stream.call = call
        let logger = server.logger
        call.task = Task(executorPreference: loop) {
            let response: HTTPResponse
            do {
                response = try await handler(request)
            } catch is CancellationError {
                call.onLoop { $0.connection.httpHandlerFinished($0.stream) }
                return
            } catch {
                logger.warning("HTTP route failed", metadata: ["path": "\(request.path)", "error": "\(error)"])
                response = .text(500, "the server failed to handle the request\n")
            }
            switch response.body {
            case .bytes(let body):
                call.onLoop { $0.connection.respondHTTP($0.stream, response, body: body) }
            case .stream(let produce):
                call.onLoop { $0.connection.respondHTTP($0.stream, response, body: nil) }
                do {
                    try await produce(HTTPBodyWriter { try await call.sendRaw($0) })
                } catch {
                    // The client went away, or the producer gave up: the body ends here.
                }
                call.onLoop { $0.connection.endHTTPBody($0.stream) }
            }
            call.onLoop { $0.connection.httpHandlerFinished($0.stream) }
        }
    }

    /// Submits a route's response head; `body` nil: a stream follows (`sendRaw`, then
    /// `endHTTPBody`). A HEAD request gets the head alone.
    func respondHTTP(_ stream: ServerStream, _ response: HTTPResponse, body: [UInt8]?) {
        guard !isClosed, let session, stream.machine.sendMessage() == .startResponse else { return }
        var block = HeaderBlock(capacity: response.headers.count + 2)
        block.add(":status", String(response.status))
        var hasLength = false
        for field in response.headers {
            let name = field.name.lowercased()
            guard HTTPResponseFields.isAllowed(name: name, value: field.value) else { continue }
            if name == "content-length" {
                guard body != nil else { continue }
                hasLength = true
            }
            block.add(name, field.value)
        }
        var provider = HTTP2Connection.bodyProvider
        let result: Int32
        if let body {
            if !hasLength { block.add("content-length", String(body.count)) }
            // A response before the handler started (413) gives its reserved slot back.
            if case .sendTrailers(_, releaseSlot: true) = stream.machine.decideStatus(pendingOutbound: body.count) {
                perform(policy.handlerReleased(finishedAt: nil))
            }
            if body.isEmpty || stream.method == "HEAD" {
                result = block.withNameValues { nghttp2_submit_response(session, stream.id, $0, $1, nil) }
            } else {
                stream.outbound.append(raw: body)
                stream.endsWithBody = true
                result = block.withNameValues { nghttp2_submit_response(session, stream.id, $0, $1, &provider) }
            }
        } else {
            result = block.withNameValues { nghttp2_submit_response(session, stream.id, $0, $1, &provider) }
        }
        if result != 0 { statusNotSubmitted(stream, result) }
        transport.scheduleFlush()
    }

    /// The end of a streamed body: the stream ends once what is queued has gone.
    func endHTTPBody(_ stream: ServerStream) {
        guard let session, stream.machine.decideStatus(pendingOutbound: stream.pendingOutbound) != .none else { return }
        stream.endsWithBody = true
        if stream.outbound.isDeferred {
            stream.outbound.isDeferred = false
            nghttp2_session_resume_data(session, stream.id)
        }
        transport.scheduleFlush()
    }

    /// The route's task is over: its slot is free. A stream it left unanswered (it was
    /// cancelled first) is reset.
    func httpHandlerFinished(_ stream: ServerStream) {
        let unanswered = stream.machine.handlerFinished()
        let released = policy.handlerReleased(finishedAt: loop.now)
        if unanswered, !isClosed { reset(stream, code: H2Error.internalError) }
        perform(released)
    }
}

extension ServerCall {
    /// Queues bytes of a plain HTTP response body; suspends while too much is queued.
    func sendRaw(_ bytes: [UInt8]) async throws {
        let box = UncheckedSendableBox(self)
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                loop.execute {
                    let call = box.value
                    do {
                        try call.connection.enqueueResponseMessage(bytes, on: call.stream, raw: true)
                        if call.connection.needsDrain(call.stream) {
                            call.stream.outbound.drainWaiters.append(continuation)
                        } else {
                            continuation.resume()
                        }
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            }
        } onCancel: {
            box.value.loop.execute { box.value.stream.outbound.resumeWaiters(error: CancellationError()) }
        }
    }
}

/// Which response header fields a route may set: HTTP/2 forbids the connection-specific
/// ones, and a name or value with bytes a header cannot hold is dropped.
enum HTTPResponseFields {
    static let connectionSpecific: Set<String> = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"]

    static func isAllowed(name: String, value: String) -> Bool {
        guard !name.isEmpty, !name.hasPrefix(":"), !connectionSpecific.contains(name) else { return false }
        let nameOK = name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }
        let valueOK = value.utf8.allSatisfy { $0 != 0 && $0 != 0x0A && $0 != 0x0D }
        return nameOK && valueOK
    }
}
