/// One request stream on a server connection: where it stands (`machine`) and the data
/// that goes with it. Loop only.
final class ServerStream {
    let id: Int32
    /// The stream's state; the connection acts on what its transitions return.
    var machine = ServerStreamStateMachine()

    // Request headers, as parsed.
    var path: String?
    var method: String?
    var contentType: String?
    var timeoutNanos: UInt64?
    var encoding: String?
    // Connect request headers.
    var connectProtocolVersion: String?
    var contentEncoding: String?
    var connectContentEncoding: String?
    var timeoutIsMalformed = false
    /// Answer with `grpc-accept-encoding` (after an unsupported `grpc-encoding`).
    var advertiseEncodings = false
    var metadata = Metadata()
    /// Loop time when a header block (request headers or trailers) began; nil once complete.
    var headersStartedAt: UInt64?

    // Request body.
    var deframer: MessageDeframer
    /// The body of a Connect unary request (one bare message), gathered until END_STREAM.
    var bareBody: [UInt8] = []
    var singleRequest: [[UInt8]] = []
    var requestQueue: MessageQueue?
    /// Received DATA bytes whose window credit is withheld until the handler reads.
    var unconsumedBytes = 0

    // The call.
    var handler: RPCRouter.Handler?
    /// The plain HTTP route serving the request, when one does.
    var httpHandler: HTTPRoutes.Handler?
    var call: ServerCall?
    var deadlineTimer: TimerHandle?

    // Response.
    var outbound = OutboundBody()
    var trailers: HeaderBlock?
    /// The body ends the stream when drained, with no trailers (a plain HTTP response).
    var endsWithBody = false

    init(id: Int32, maxMessageSize: Int) {
        self.id = id
        self.deframer = MessageDeframer(maxMessageSize: maxMessageSize)
    }

    var pendingOutbound: Int { outbound.pending }
    /// Request bytes held for a message not yet complete.
    var bufferedInbound: Int { deframer.bufferedByteCount + bareBody.count }
}
