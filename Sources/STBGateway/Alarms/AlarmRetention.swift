import Logging
import ServiceLifecycle

/// Deletes cleared alarms older than the retention (`GATEWAY_ALARM_RETENTION_DAYS`) once
/// an hour, and once at start.
public struct AlarmRetention: Service {
    let book: AlarmBook
    let days: Int
    let logger: Logger

    public init(book: AlarmBook, days: Int, logger: Logger) {
        self.book = book
        self.days = days
        self.logger = logger
    }

    public func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let pruned = try await book.prune(olderThanDays: days)
                    if pruned > 0 { logger.info("pruned cleared alarms", metadata: ["count": "\(pruned)", "days": "\(days)"]) }
                } catch {
                    logger.warning("pruning cleared alarms failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(3600))
            }
        }
    }
}
