/// One request stream on a server connection: where it stands (`machine`) and the data
/// that goes with it. Loop only.
final class ServerStream {
    let id: Int32
    /// The stream's state; the connection acts on what its transitions return.
    var machine = ServerStreamStateMachine()

    // Request headers, as parsed.
    var path: String?
    /// The method `path` names, when it names one (found from its bytes).
    var route: RouteTable.Route?
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
    var singleRequest = SingleRequest()
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
    var trailers: ResponseTrailers?
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

/// A stream's trailers, waiting for its body to drain.
enum ResponseTrailers {
    /// Built for this call (a status with a message, details or metadata).
    case block(HeaderBlock)
    /// The same for every call (`grpc-status: 0`).
    case preencoded(StaticHeaderList)
}

/// The response header lists every call of a kind shares.
enum ResponseHeaderLists {
    /// The response headers of a gRPC call in protobuf with no initial metadata.
    static let grpcProto = StaticHeaderList([(":status", "200"), ("content-type", "application/grpc")])
    /// The trailers of a call that ended OK with nothing else to say.
    static let okStatus = StaticHeaderList([("grpc-status", "0")])
}

/// The request message of a unary or server-streaming call, held until its handler starts,
/// and how many messages came (more than one fails the call).
struct SingleRequest {
    private(set) var first: [UInt8]?
    private(set) var count = 0

    init() {}

    init(_ message: [UInt8]) {
        first = message
        count = 1
    }

    mutating func append(_ message: [UInt8]) {
        if first == nil { first = message }
        count += 1
    }

    /// The first message (empty when none came); leaves nothing held.
    mutating func take() -> [UInt8] {
        defer { self = SingleRequest() }
        return first ?? []
    }
}
