import STBMessages
import STBJSON
import STBPostgres
import STBRPC

/// Serves a `Watch` call from a service's outbox: replays events after the client's
/// cursor (empty: only changes from now on), then follows new ones until the caller goes
/// away. A cursor older than the pruned horizon is refused with FAILED_PRECONDITION
/// "resync required" (`reload` says how to recover), never answered with a gap; its
/// details hold a `PreconditionFailure` of type `RESYNC_REQUIRED` for programs.
/// `decode` turns a stored event into the service's message, its cursor set.
public func watch<Event: ProtoMessage>(
    after token: String, feed: OutboxFeed, reload: String, to writer: RPCWriter<Event>,
    decode: (OutboxEvent) throws -> Event
) async throws {
    let cursor: OutboxCursor
    let lag = WatchLagGauge(outbox: feed.outbox)
    defer { lag.destroy() }
    if token.isEmpty {
        cursor = try await feed.outbox.head(pool: feed.pool)
        lag.caughtUp()
    } else {
        guard let parsed = OutboxCursor(token) else {
            throw invalidArgument(["after: \(quoted(token)) is not a cursor this service issued"])
        }
        cursor = parsed
        let pruned = try await feed.outbox.horizon(pool: feed.pool)
        if cursor < pruned {
            let description = "cursor \(cursor) is older than the change feed keeps (events up to \(pruned) were pruned); \(reload)"
            throw RPCError(
                code: .failedPrecondition,
                message: "resync required: \(description)",
                details: [
                    .preconditionFailure(type: "RESYNC_REQUIRED", subject: "after", description: description),
                    .errorInfo(reason: "RESYNC_REQUIRED", metadata: ["cursor": "\(cursor)", "horizon": "\(pruned)"]),
                ]
            )
        }
        // Every cursor this service issued names a committed event, so one past the newest
        // is not ours (or from another database): following it would never deliver anything.
        let head = try await feed.outbox.head(pool: feed.pool)
        if cursor > head {
            throw RPCError(
                code: .outOfRange,
                message: "after: cursor \(cursor) is beyond the newest change (\(head)); it was not issued by this service; \(reload)"
            )
        }
        lag.record(delivered: cursor, head: head)
    }
    for try await batch in feed.batches(after: cursor) {
        try await writer.write(contentsOf: try batch.map(decode))
        guard let last = batch.last else { continue }
        if batch.count < feed.batchSize {
            lag.caughtUp()  // a short read: nothing newer was committed then
        } else if let head = try? await feed.outbox.head(pool: feed.pool) {
            lag.record(delivered: last.cursor, head: head)  // a full batch: more is waiting
        }
    }
}
