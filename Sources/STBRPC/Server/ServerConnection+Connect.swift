internal import CNghttp2

extension ServerConnection {
    /// Ends a Connect call with `status`. Unary: one response whose HTTP status is the
    /// status's (200, or the Connect mapping with the JSON `Error` as body), with the
    /// initial metadata as headers and the trailing metadata as `trailer-` headers.
    /// Streaming: an end-of-stream envelope after the queued messages, under HTTP 200,
    /// carrying the error and the trailing metadata.
    func finishConnect(_ stream: ServerStream, status: RPCError, wire: WireProtocol, session: OpaquePointer) {
        let startResponse: Bool
        let releaseSlot: Bool
        switch stream.machine.decideStatus(pendingOutbound: stream.pendingOutbound) {
        case .none:
            return
        case .sendTrailersOnly(let release):
            startResponse = true
            releaseSlot = release
        case .sendTrailers(let start, let release):
            startResponse = start
            releaseSlot = release
        }
        stream.deadlineTimer?.cancel()
        if releaseSlot { perform(policy.handlerReleased(finishedAt: nil)) }
        let trailing = trailingMetadata(stream, status)
        switch wire {
        case .connectUnary:
            submitUnaryResponse(stream, status: status, trailing: trailing, session: session)
        default:
            let message = ConnectStatus.endStreamMessage(status, trailing: trailing, messageLimit: config.maxStatusMessageBytes)
            stream.outbound.append(envelope: message, flags: 0x02)
            stream.endsWithBody = true
            if startResponse {
                self.startResponse(stream, session)
            } else {
                resumeBody(stream, session)
            }
        }
        transport.scheduleFlush()
    }

    /// The whole response of a Connect unary call: nothing was sent before it.
    private func submitUnaryResponse(_ stream: ServerStream, status: RPCError, trailing: Metadata, session: OpaquePointer) {
        var block = HeaderBlock(capacity: 6)
        var budget = newHeaderBudget()
        func add(_ name: String, _ value: String) {
            block.add(name, value)
            budget.charge(name, value)
        }
        if status.code == .ok {
            add(":status", "200")
            add("content-type", stream.machine.wire?.responseContentType ?? "application/proto")
        } else {
            // Only the response carries a message; an error replaces it.
            stream.outbound.discard()
            stream.outbound.append(raw: ConnectStatus.errorBody(status, messageLimit: config.maxStatusMessageBytes))
            add(":status", String(ConnectStatus.httpStatus(status.code)))
            add("content-type", "application/json")
        }
        add("content-length", String(stream.pendingOutbound))
        if stream.advertiseEncodings { add("accept-encoding", "identity") }
        addMetadata(takeInitialMetadata(stream), of: stream, into: &block, budget: &budget)
        addMetadata(trailing, of: stream, into: &block, budget: &budget, prefix: "trailer-")
        stream.endsWithBody = true
        var provider = HTTP2Connection.bodyProvider
        let result = block.withNameValues { nghttp2_submit_response(session, stream.id, $0, $1, &provider) }
        if result != 0 { statusNotSubmitted(stream, result) }
    }
}
