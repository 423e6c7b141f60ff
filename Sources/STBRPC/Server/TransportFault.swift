/// A misbehaviour of the transport that a handler asks for instead of an answer, so that
/// a test double can show how clients cope with broken connections: the stream reset,
/// the connection sent away or cut, or the response dribbled out a few bytes at a time.
///
/// Thrown by a handler; the connection carries it out when the handler ends. Only the
/// `TransportFaults` SPI can make one (`@_spi(TransportFaults) import STBRPC`), so a
/// service cannot reach it by configuration, and a server whose handlers never throw it
/// pays one nil check per call.
@_spi(TransportFaults) public struct TransportFault: Error, Sendable {
    enum Kind: Sendable {
        case resetStream(code: UInt32)
        case goAway(code: UInt32)
        case closeConnection
        case dribble(body: [UInt8], chunkBytes: Int, gapNanos: UInt64)
    }

    let kind: Kind

    /// Resets the call's stream (RST_STREAM) with an HTTP/2 error code (RFC 9113 §7;
    /// 2 INTERNAL_ERROR, 7 REFUSED_STREAM, 8 CANCEL, …).
    public static func resetStream(code: UInt32) -> TransportFault {
        TransportFault(kind: .resetStream(code: code))
    }

    /// Sends GOAWAY with an HTTP/2 error code, abandons every unfinished call of the
    /// connection, and closes it once the frame is out.
    public static func goAway(code: UInt32) -> TransportFault {
        TransportFault(kind: .goAway(code: code))
    }

    /// Closes the socket at once, discarding what is queued and sending a TCP reset.
    public static var closeConnection: TransportFault {
        TransportFault(kind: .closeConnection)
    }

    /// Sends `messages` (each framed as the call's protocol frames a message) as the
    /// response body `chunkBytes` bytes at a time, `gapNanos` apart, then ends the call
    /// with OK, unless the client's deadline or cancel ends it first.
    public static func dribble(messages: [[UInt8]], chunkBytes: Int, gapNanos: UInt64) -> TransportFault {
        var body: [UInt8] = []
        for message in messages { appendFramedMessage(message, to: &body) }
        return TransportFault(kind: .dribble(body: body, chunkBytes: max(1, chunkBytes), gapNanos: gapNanos))
    }
}
