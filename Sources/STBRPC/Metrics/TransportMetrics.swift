import Metrics

/// Names of the metrics the RPC layer records, as they appear in a scrape.
public enum RPCMetricName {
    /// Counter: calls ended, by `service`, `method`, `code` (the status) and `protocol`.
    public static let requests = "stb_rpc_server_requests_total"
    /// Histogram (seconds): call duration, by `service` and `method`.
    public static let duration = "stb_rpc_server_request_duration_seconds"
    /// Gauge: calls running now, by `service` and `method`.
    public static let inFlight = "stb_rpc_server_calls_in_flight"
    /// Gauge: open HTTP/2 connections.
    public static let connections = "stb_rpc_server_connections"
    /// Gauge: open HTTP/2 streams.
    public static let streams = "stb_rpc_server_streams"
    /// Counter: bytes read from clients' sockets.
    public static let receivedBytes = "stb_rpc_server_received_bytes_total"
    /// Counter: bytes written to clients' sockets.
    public static let sentBytes = "stb_rpc_server_sent_bytes_total"

    /// A help text per name, for the exposition.
    public static let help: [String: String] = [
        requests: "RPCs ended, by service, method, status code and protocol (grpc, connect).",
        duration: "RPC duration from the handler's start to its status, by service and method.",
        inFlight: "RPCs running now, by service and method.",
        connections: "Open HTTP/2 connections.",
        streams: "Open HTTP/2 streams.",
        receivedBytes: "Bytes read from clients' connections.",
        sentBytes: "Bytes written to clients' connections.",
    ]
}

/// A server's transport metrics: open connections and streams, bytes in and out. One per
/// server, shared by its connections; the metric objects are made once, so the hot path
/// only adds to them.
final class TransportMetrics: Sendable {
    let connections: Meter
    let streams: Meter
    let receivedBytes: Counter
    let sentBytes: Counter

    init(factory: any MetricsFactory) {
        connections = Meter(label: RPCMetricName.connections, factory: factory)
        streams = Meter(label: RPCMetricName.streams, factory: factory)
        receivedBytes = Counter(label: RPCMetricName.receivedBytes, factory: factory)
        sentBytes = Counter(label: RPCMetricName.sentBytes, factory: factory)
    }
}
