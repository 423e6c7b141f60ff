import Logging
import STBPostgres
import ServiceLifecycle

/// Deletes a service's change events older than the retention, every `interval`, until
/// the service group shuts down. A watcher behind the pruned horizon is told to resync.
public struct OutboxPruner: Service {
    let outbox: Outbox
    let pool: PostgresPool
    let retention: Duration
    let interval: Duration
    let logger: Logger

    public init(outbox: Outbox, pool: PostgresPool, retention: Duration, interval: Duration = .seconds(600), logger: Logger) {
        self.outbox = outbox
        self.pool = pool
        self.retention = retention
        self.interval = interval
        self.logger = logger
    }

    public func run() async {
        await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                do {
                    let pruned = try await outbox.prune(retentionSeconds: retention.components.seconds, pool: pool)
                    if pruned > 0 { logger.info("pruned change events", metadata: ["count": "\(pruned)"]) }
                } catch {
                    logger.warning("pruning change events failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
