import Metrics
import Prometheus
import STBPostgres
import STBRPC
import Synchronization

/// Names of the metrics the service kit and the services record, as they appear in a scrape.
public enum ServiceMetricName {
    /// Gauge: events a `Watch` follower is behind the outbox head, by `outbox` (the
    /// service's outbox channel) and `follower` (a number per open call).
    public static let watchLag = "stb_watch_follower_lag_events"
    /// Gauge: the revision of the catalog copy a replica holds, by `source`.
    public static let replicaRevision = "stb_replica_revision"
    /// Gauge: the newest revision the replica's source has announced, by `source`.
    public static let replicaAnnouncedRevision = "stb_replica_announced_revision"

    /// A help text per name, for the exposition.
    public static let help: [String: String] = [
        watchLag: "Events a Watch follower is behind the newest committed event.",
        replicaRevision: "Revision of the replicated configuration this service holds.",
        replicaAnnouncedRevision: "Newest revision the replicated service has announced.",
    ]

    /// The help texts of every metric the RPC layer, the Postgres layer and the kit record.
    public static let allHelp: [String: String] = RPCMetricName.help
        .merging(PostgresMetricName.help) { first, _ in first }
        .merging(help) { first, _ in first }
}

/// The process's metrics: swift-metrics bootstrapped once with a Prometheus registry,
/// and the exposition `GET /metrics` serves from it.
public enum ServiceMetrics {
    private static let bootstrapped = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Bootstraps `MetricsSystem` with a Prometheus factory (once per process; later
    /// calls return the same registry). Timers get buckets from 100 µs to 10 s: most
    /// calls and queries take well under the factory's smallest default bucket (5 ms).
    @discardableResult
    public static func bootstrap() -> PrometheusCollectorRegistry {
        bootstrapped.withLock { registry in
            if let registry { return registry }
            let made = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: made)
            factory.defaultDurationHistogramBuckets = latencyBuckets
            MetricsSystem.bootstrap(factory)
            registry = made
            return made
        }
    }

    /// Histogram buckets for durations.
    public static let latencyBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    /// The exposition of `registry`, help texts added.
    public static func exposition(of registry: PrometheusCollectorRegistry) -> @Sendable () -> [UInt8] {
        { PrometheusText.addingHelp(to: registry.emitToBuffer(), help: ServiceMetricName.allHelp) }
    }
}

/// One `Watch` call's lag gauge, removed from the registry when the call ends.
struct WatchLagGauge {
    private static let nextFollower = Atomic<Int>(0)
    private let meter: Meter

    init(outbox: Outbox) {
        let follower = Self.nextFollower.wrappingAdd(1, ordering: .relaxed).newValue
        meter = Meter(label: ServiceMetricName.watchLag, dimensions: [("outbox", outbox.channel), ("follower", String(follower))])
    }

    /// The follower has delivered up to `delivered`; the newest event is `head`.
    func record(delivered: OutboxCursor, head: OutboxCursor) {
        meter.set(max(0, head.sequence - delivered.sequence))
    }

    func caughtUp() { meter.set(0) }

    func destroy() { meter.destroy() }
}
