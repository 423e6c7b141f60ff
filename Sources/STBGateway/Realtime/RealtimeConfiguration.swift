import STBAuth
import STBRPC
import STBService

/// The realtime half of `gatewayd`, from the environment (documented in the README):
///
/// - `GATEWAY_CATALOG_ADDR` (`127.0.0.1:50051`), `GATEWAY_RULES_ADDR` (`127.0.0.1:50052`),
///   `GATEWAY_PROJECT_ADDR` (`127.0.0.1:50053`): the upstreams;
/// - `GATEWAY_RING_EVENTS` (10000), `GATEWAY_RING_BYTES` (16 MiB): each upstream's ring;
/// - `GATEWAY_REPLAY_LIMIT` (10000): the most events a resume replays before it answers
///   with `resync_required`;
/// - `GATEWAY_STREAM_QUEUE_BYTES` (1 MiB): a stream's unsent messages before it ends as a
///   slow consumer;
/// - `GATEWAY_HEARTBEAT_SECONDS` (15);
/// - `GATEWAY_STREAM_QUOTAS` (`viewer:5,operator:10,engineer:20,admin:50,service:100`):
///   concurrent streams per user, by role;
/// - `GATEWAY_MAX_TOPICS` (64): topics in one `Subscribe`.
public struct RealtimeConfiguration: Sendable {
    public var catalog: (host: String, port: Int)
    public var rules: (host: String, port: Int)
    public var project: (host: String, port: Int)
    public var ringEvents: Int
    public var ringBytes: Int
    public var replayLimit: Int
    public var queueBytes: Int
    public var heartbeat: Duration
    public var quotas: [Role: Int]
    public var maximumTopics: Int

    public init(environment: [String: String]) throws(ConfigurationError) {
        catalog = try ServiceConfiguration.address("GATEWAY_CATALOG_ADDR", in: environment, default: "127.0.0.1:50051")
        rules = try ServiceConfiguration.address("GATEWAY_RULES_ADDR", in: environment, default: "127.0.0.1:50052")
        project = try ServiceConfiguration.address("GATEWAY_PROJECT_ADDR", in: environment, default: "127.0.0.1:50053")
        ringEvents = try GatewayConfiguration.integer("GATEWAY_RING_EVENTS", environment, default: 10_000, in: 1...10_000_000)
        ringBytes = try GatewayConfiguration.integer("GATEWAY_RING_BYTES", environment, default: 16 << 20, in: 1024...(1 << 34))
        replayLimit = try GatewayConfiguration.integer("GATEWAY_REPLAY_LIMIT", environment, default: 10_000, in: 0...10_000_000)
        queueBytes = try GatewayConfiguration.integer("GATEWAY_STREAM_QUEUE_BYTES", environment, default: 1 << 20, in: 1024...(1 << 30))
        heartbeat = .seconds(try GatewayConfiguration.integer("GATEWAY_HEARTBEAT_SECONDS", environment, default: 15, in: 1...3600))
        maximumTopics = try GatewayConfiguration.integer("GATEWAY_MAX_TOPICS", environment, default: 64, in: 1...10_000)
        quotas = [.viewer: 5, .operator: 10, .engineer: 20, .admin: 50, .service: 100]
        if let text = environment["GATEWAY_STREAM_QUOTAS"] {
            for pair in text.split(separator: ",") {
                let parts = pair.split(separator: ":")
                guard parts.count == 2, let role = Role(claim: String(parts[0])), let limit = Int(parts[1]), limit >= 0 else {
                    throw ConfigurationError(variable: "GATEWAY_STREAM_QUOTAS", value: text, expected: "role:count pairs separated by commas")
                }
                quotas[role] = limit
            }
        }
    }
}
