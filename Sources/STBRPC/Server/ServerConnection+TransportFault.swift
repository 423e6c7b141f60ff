internal import CNghttp2
import Glibc

extension ServerConnection {
    /// Carries out a fault a handler threw instead of answering (see `TransportFault`).
    /// Loop only.
    func carryOut(_ fault: TransportFault, on stream: ServerStream) {
        let sendStatus = stream.machine.handlerFinished()
        perform(policy.handlerReleased(finishedAt: loop.now))
        guard sendStatus, !isClosed else { return }
        switch fault.kind {
        case .resetStream(let code):
            reset(stream, code: code)
        case .goAway(let code):
            perform(policy.goAwayAndClose(code: code, debug: "fault"))
        case .closeConnection:
            // SO_LINGER 0: the close sends a TCP reset instead of an orderly FIN.
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            _ = setsockopt(transport.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            close(reason: "fault: connection reset")
        case .dribble(let body, let chunkBytes, let gapNanos):
            if case .connectUnary = stream.machine.wire {
                // A Connect unary body is one bare message: there is no framing to dribble.
                return finish(stream, status: RPCError(code: .unimplemented, message: "a dribbled answer needs a streaming protocol"))
            }
            dribble(body[...], chunkBytes: chunkBytes, gapNanos: gapNanos, on: stream)
        }
    }

    /// Queues the next `chunkBytes` of `body` on `stream` and schedules the rest
    /// `gapNanos` later; at the end sends the OK status. Stops when the stream ended
    /// meanwhile (deadline, cancel, close).
    private func dribble(_ body: ArraySlice<UInt8>, chunkBytes: Int, gapNanos: UInt64, on stream: ServerStream) {
        guard !isClosed, let session, !stream.machine.isFinished else { return }
        guard !body.isEmpty else { return finish(stream, status: RPCError(code: .ok, message: "")) }
        let chunk = body.prefix(chunkBytes)
        switch stream.machine.sendMessage() {
        case .fail: return
        case .startResponse:
            stream.outbound.append(raw: Array(chunk))
            startResponse(stream, session)
        case .resumeBody:
            stream.outbound.append(raw: Array(chunk))
            resumeBody(stream, session)
        }
        transport.scheduleFlush()
        let rest = body.dropFirst(chunk.count)
        _ = loop.schedule(afterNanoseconds: gapNanos) { [weak self] in
            self?.dribble(rest, chunkBytes: chunkBytes, gapNanos: gapNanos, on: stream)
        }
    }
}
