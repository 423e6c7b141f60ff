import Metrics

extension RPCServer {
    /// Server settings. The defaults suit production; tests shorten the timers.
    public struct Configuration: Sendable {
        /// Address to bind; "0.0.0.0" for every interface.
        public var host = "127.0.0.1"
        /// Port to bind; 0 picks a free one (see `RPCServer.port`).
        public var port = 0
        /// Worker threads, each with its own event loop and listening socket.
        public var workers = 1

        /// SETTINGS_MAX_CONCURRENT_STREAMS.
        public var maxConcurrentStreams = 100
        /// Handlers allowed to run at once per connection (a reset frees the stream, not the task).
        public var maxRunningHandlersPerConnection = 100
        /// Largest request message accepted, checked from the length prefix.
        public var maxReceiveMessageSize = 4 * 1024 * 1024
        /// Header list budget per request: Σ(name + value + 32), as SETTINGS_MAX_HEADER_LIST_SIZE counts.
        public var maxHeaderListSize = 16 * 1024
        /// Header fields allowed per request.
        public var maxHeaderFields = 100
        /// Budget of each response header block we send (headers, trailers), Σ(name + value
        /// + 32), lowered to the client's SETTINGS_MAX_HEADER_LIST_SIZE when that is
        /// smaller. Well under common clients' limits (grpcio: 8 KiB), so a status always
        /// arrives: custom metadata that does not fit is dropped (and logged), never the status.
        public var maxResponseHeaderListSize = 4 * 1024
        /// Longest `grpc-message` we send, percent-encoded; longer messages are cut with a mark.
        public var maxStatusMessageBytes = 2 * 1024
        /// SETTINGS_INITIAL_WINDOW_SIZE: how much a client may send per stream before we read it.
        public var initialStreamWindow = 1 << 20
        /// Connection-level receive window.
        public var connectionWindow = 16 << 20
        /// Bytes of partial (not yet complete) request messages buffered per connection.
        public var maxBufferedInboundPerConnection = 32 << 20
        /// Queued response bytes per stream above which a writing handler waits.
        public var maxQueuedOutboundPerStream = 256 * 1024

        /// How long a graceful shutdown lets running calls finish before closing connections.
        public var shutdownGracePeriod: Duration = .seconds(10)

        /// A connection must complete the HTTP/2 preface and first SETTINGS within this.
        public var handshakeTimeout: Duration = .seconds(10)
        /// A header block must complete within this once begun.
        public var headerTimeout: Duration = .seconds(10)
        /// A connection with no streams for this long gets GOAWAY (`max_idle`).
        public var idleTimeout: Duration = .seconds(300)
        /// A connection whose pending output makes no progress for this long is closed.
        public var writeStallTimeout: Duration = .seconds(30)

        /// PINGs closer together than this (with calls active) are strikes.
        public var minPingInterval: Duration = .seconds(300)
        /// PINGs closer together than this with no calls active are strikes.
        public var minPingIntervalWithoutCalls: Duration = .seconds(7200)
        /// Strikes tolerated before GOAWAY(ENHANCE_YOUR_CALM, `too_many_pings`).
        public var maxPingStrikes = 2

        /// Misbehaviour budget (invalid frames, refused and library-reset streams, header
        /// budget breaches): burst size and refill per second. Empty → GOAWAY(ENHANCE_YOUR_CALM).
        public var glitchBurst = 1000
        public var glitchRefillPerSecond = 100

        /// Where the transport metrics (connections, streams, bytes) are recorded; nil:
        /// the process's `MetricsSystem.factory` (a no-op until `main` bootstraps one).
        public var metricsFactory: (any MetricsFactory)?
        /// Answers `GET /metrics` (an HTTP/2 GET without a gRPC content type) with its
        /// bytes, as `text/plain; version=0.0.4` (the Prometheus text format). Called on
        /// a worker loop: it must not block. Nil: such a request gets 415, as any other
        /// request that is not gRPC.
        public var metricsExposition: (@Sendable () -> [UInt8])?
        /// The service's name (`catalog`): with `metricsExposition`, `GET /metrics/<name>`
        /// is answered too, so that a proxy that routes by path but cannot rewrite it can
        /// send `/metrics/catalog` to the catalog.
        public var metricsServiceName: String?
        /// Plain HTTP requests the server answers besides RPCs (see `HTTPRoutes`); none
        /// by default.
        public var httpRoutes = HTTPRoutes()

        public init() {}
    }
}

extension Duration {
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }
}
