import Logging
import STBMessages
import STBJSON
import STBPostgres
import STBRPC

/// How every service runs a handler: with the caller's identity (`stb-actor` metadata,
/// "anonymous" when absent), database errors turned into statuses, and nothing internal
/// in a message.
public struct ServiceCalls: Sendable {
    /// The service's name as callers read it: "catalog", "rules".
    public let service: String
    public let logger: Logger

    public init(service: String, logger: Logger) {
        self.service = service
        self.logger = logger
    }

    public func run<R>(_ context: ServerContext, _ body: (String) async throws -> R) async throws -> R {
        let actor = context.metadata.firstString(forKey: "stb-actor").flatMap { $0.isEmpty ? nil : String($0.prefix(128)) } ?? "anonymous"
        do {
            return try await body(actor)
        } catch let error as RPCError {
            throw error
        } catch let error as PostgresError {
            throw rpcError(for: error)
        } catch is CancellationError {
            throw RPCError(code: .cancelled, message: "the call was cancelled")
        } catch {
            logger.error("\(service) call failed", metadata: ["path": "\(context.path)", "error": "\(error)"])
            throw RPCError(code: .internal, message: "internal error")
        }
    }

    /// The status for a database error.
    public func rpcError(for error: PostgresError) -> RPCError {
        switch error.code {
        case .uniqueViolation:
            return RPCError(code: .alreadyExists, message: "already exists\(error.detail.map { ": \($0)" } ?? "")")
        case .foreignKeyViolation:
            return RPCError(code: .failedPrecondition, message: "still referenced or refers to something missing\(error.detail.map { ": \($0)" } ?? "")")
        case .checkViolation, .notNullViolation, .invalidData:
            return RPCError(code: .invalidArgument, message: "invalid value: \(error.message)")
        case .serializationFailure, .deadlockDetected:
            return RPCError(code: .aborted, message: "conflicting concurrent change; retry")
        case .connectionLost, .connectionFailed, .poolClosed:
            return RPCError(code: .unavailable, message: "the \(service) database is unavailable; retry")
        case .queryCancelled:
            return RPCError(code: .cancelled, message: "the call was cancelled")
        default:
            logger.error("database error", metadata: ["error": "\(error)"])
            return RPCError(code: .internal, message: "internal database error")
        }
    }
}

/// Serves a `Watch` call from a service's outbox: replays events after the client's
/// cursor (empty: only changes from now on), then follows new ones until the caller goes
/// away. A cursor older than the pruned horizon is refused with FAILED_PRECONDITION
/// "resync required" (`reload` says how to recover), never answered with a gap.
/// `decode` turns a stored event into the service's message, its cursor set.
public func watch<Event: ProtoMessage>(
    after token: String, feed: OutboxFeed, reload: String, to writer: RPCWriter<Event>,
    decode: (OutboxEvent) throws -> Event
) async throws {
    let cursor: OutboxCursor
    if token.isEmpty {
        cursor = try await feed.outbox.head(pool: feed.pool)
    } else {
        guard let parsed = OutboxCursor(token) else {
            throw RPCError(code: .invalidArgument, message: "after: \(quoted(token)) is not a cursor this service issued")
        }
        cursor = parsed
        let pruned = try await feed.outbox.horizon(pool: feed.pool)
        if cursor < pruned {
            throw RPCError(
                code: .failedPrecondition,
                message: "resync required: cursor \(cursor) is older than the change feed keeps (events up to \(pruned) were pruned); \(reload)"
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
    }
    for try await batch in feed.batches(after: cursor) {
        try await writer.write(contentsOf: try batch.map(decode))
    }
}
