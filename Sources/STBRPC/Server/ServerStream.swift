/// One request stream on a server connection. Loop only.
final class ServerStream {
    let id: Int32

    // Request headers, as parsed.
    var path: String?
    var method: String?
    var contentType: String?
    var timeoutNanos: UInt64?
    var encoding: String?
    /// Answer with `grpc-accept-encoding` (after an unsupported `grpc-encoding`).
    var advertiseEncodings = false
    var metadata = Metadata()
    var headerBytes = 0
    var headerFields = 0
    /// Loop time when a header block (request headers or trailers) began; nil once complete.
    var headersStartedAt: UInt64?

    // Request body.
    var deframer: MessageDeframer
    var singleRequest: [[UInt8]] = []
    var requestQueue: MessageQueue?
    var requestEnded = false
    /// Received DATA bytes whose window credit is withheld until the handler reads.
    var unconsumedBytes = 0

    // The call.
    var handler: RPCRouter.Handler?
    /// Counted in the connection's running handlers from dispatch (HEADERS) until the
    /// handler finishes, or until the stream ends without one starting.
    var holdsHandlerSlot = false
    var call: ServerCall?
    var deadlineTimer: TimerHandle?
    /// Set once a status is decided; nothing more is sent after it.
    var isFinished = false
    /// nghttp2 closed the stream.
    var isClosed = false
    var peerReset = false
    var weReset = false

    // Response.
    var responseStarted = false
    var outbound = OutboundBody()
    var trailers: HeaderBlock?

    init(id: Int32, maxMessageSize: Int) {
        self.id = id
        self.deframer = MessageDeframer(maxMessageSize: maxMessageSize)
    }

    var pendingOutbound: Int { outbound.pending }
}
