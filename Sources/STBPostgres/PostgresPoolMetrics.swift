import Metrics

/// Names of the metrics the Postgres layer records, as they appear in a scrape.
public enum PostgresMetricName {
    /// Gauge: connections of the pool, open or being opened.
    public static let poolSize = "stb_pg_pool_connections"
    /// Gauge: connections lent out (open minus idle).
    public static let poolInUse = "stb_pg_pool_connections_in_use"
    /// Gauge: callers waiting for a connection.
    public static let poolWaiters = "stb_pg_pool_waiters"
    /// Histogram (seconds): time of each statement or pipeline on a pooled connection.
    public static let queryDuration = "stb_pg_query_duration_seconds"

    /// A help text per name, for the exposition.
    public static let help: [String: String] = [
        poolSize: "Database pool connections, open or being opened.",
        poolInUse: "Database pool connections lent out.",
        poolWaiters: "Callers waiting for a database pool connection.",
        queryDuration: "Duration of statements (a pipeline counts once) on pooled connections.",
    ]
}

/// A pool's gauges and the query timer its connections share. Made once per pool.
final class PostgresPoolMetrics: Sendable {
    let size: Meter
    let inUse: Meter
    let waiters: Meter
    let queryDuration: Metrics.Timer

    init(factory: any MetricsFactory) {
        size = Meter(label: PostgresMetricName.poolSize, factory: factory)
        inUse = Meter(label: PostgresMetricName.poolInUse, factory: factory)
        waiters = Meter(label: PostgresMetricName.poolWaiters, factory: factory)
        queryDuration = Metrics.Timer(label: PostgresMetricName.queryDuration, factory: factory)
    }

    /// Publishes the pool's counts (under its lock, so the three agree).
    func record(open: Int, idle: Int, waiters: Int) {
        size.set(open)
        inUse.set(open - idle)
        self.waiters.set(waiters)
    }
}
