import Logging
import STBMessages
import STBRPC
import ServiceLifecycle

/// Follows the project service's change feed (`Projects.Watch`, as the gateway's service
/// account) from the stored cursor, turning each `validity` event into an alarm change
/// (`AlarmBook.apply`), the cursor stored with it. Reconnects with backoff; a cursor the
/// feed no longer keeps is dropped (the follower goes on from the newest change).
public final class AlarmFollower: Service, Sendable {
    private let book: AlarmBook
    private let client: RPCClient
    private let logger: Logger

    public init(book: AlarmBook, projects: RPCClient, logger: Logger) {
        self.book = book
        self.client = projects
        self.logger = logger
    }

    public func run() async {
        await cancelWhenGracefulShutdown { await self.followForever() }
    }

    private func followForever() async {
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                var request = Stb_Project_V1_WatchRequest()
                request.after = try await book.cursor()
                try await client.serverStreaming(Stb_Project_V1_Projects.watch, request: request) { stream in
                    for try await event in stream {
                        delay = .milliseconds(100)
                        try await handle(event)
                    }
                }
            } catch let error as RPCError where error.code == .failedPrecondition || error.code == .outOfRange {
                logger.warning("the project feed no longer holds the alarm cursor; following from the newest change", metadata: ["error": "\(error.message)"])
                try? await book.setCursor("")
            } catch {
                if Task.isCancelled { return }
                logger.warning("following the project feed failed; retrying", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }

    /// One project event: a validity change becomes an alarm change; any other event only
    /// moves the cursor.
    func handle(_ event: Stb_Project_V1_ChangeEvent) async throws {
        guard event.entity == "validity" else {
            try await book.setCursor(event.cursor)
            return
        }
        let alarm = try await book.apply(
            projectKey: event.projectKey, valid: event.valid, violations: event.violations, sourceRevision: event.revision, cursor: event.cursor)
        if let alarm {
            logger.info("alarm changed", metadata: ["project": "\(alarm.projectKey)", "alarm": "\(alarm.id)", "status": "\(alarm.status)"])
        }
    }
}
