import STBMessages
import STBPostgres
import STBRPC

/// How the gateway reads one upstream's change feed: `follow(after, deliver)` streams the
/// committed events after a cursor (empty: from now on) to `deliver`, in order, until
/// `deliver` throws, the feed fails, or the task is cancelled.
public struct UpstreamSource: Sendable {
    public typealias Deliver = @Sendable ([UpstreamEvent]) async throws -> Void
    public let upstream: Upstream
    public let follow: @Sendable (_ after: String, _ deliver: Deliver) async throws -> Void

    public init(upstream: Upstream, follow: @escaping @Sendable (String, Deliver) async throws -> Void) {
        self.upstream = upstream
        self.follow = follow
    }

    /// Whether `error` says the cursor cannot be followed (pruned, or not the feed's).
    static func isRefusedCursor(_ error: any Error) -> Bool {
        guard let error = error as? RPCError else { return false }
        return error.code == .failedPrecondition || error.code == .outOfRange || error.code == .invalidArgument
    }

    /// The catalog's `Watch`.
    public static func catalog(_ client: RPCClient) -> UpstreamSource {
        UpstreamSource(upstream: .catalog) { after, deliver in
            var request = Stb_Catalog_V1_WatchRequest()
            request.after = after
            try await client.serverStreaming(Stb_Catalog_V1_Catalog.watch, request: request) { stream in
                for try await event in stream {
                    guard let cursor = OutboxCursor(event.cursor) else { continue }
                    try await deliver([UpstreamEvent(
                        cursor: cursor, entity: event.entity, key: event.key, action: event.action.word,
                        payload: try event.serializedBytes())])
                }
            }
        }
    }

    /// The rules service's `Watch`.
    public static func rules(_ client: RPCClient) -> UpstreamSource {
        UpstreamSource(upstream: .rules) { after, deliver in
            var request = Stb_Rules_V1_WatchRequest()
            request.after = after
            try await client.serverStreaming(Stb_Rules_V1_Rules.watch, request: request) { stream in
                for try await event in stream {
                    guard let cursor = OutboxCursor(event.cursor) else { continue }
                    try await deliver([UpstreamEvent(
                        cursor: cursor, entity: event.entity, key: event.key, action: event.action.word,
                        payload: try event.serializedBytes())])
                }
            }
        }
    }

    /// The project service's `Watch` (for admins and service accounts: every project).
    public static func project(_ client: RPCClient) -> UpstreamSource {
        UpstreamSource(upstream: .project) { after, deliver in
            var request = Stb_Project_V1_WatchRequest()
            request.after = after
            try await client.serverStreaming(Stb_Project_V1_Projects.watch, request: request) { stream in
                for try await event in stream {
                    guard let cursor = OutboxCursor(event.cursor) else { continue }
                    try await deliver([UpstreamEvent(
                        cursor: cursor, entity: event.entity, key: event.key, action: event.action.word,
                        projectKey: event.projectKey, payload: try event.serializedBytes())])
                }
            }
        }
    }

    /// The gateway's own outbox (alarms), read from its database.
    public static func local(_ feed: OutboxFeed) -> UpstreamSource {
        UpstreamSource(upstream: .alarms) { after, deliver in
            let cursor: OutboxCursor
            if after.isEmpty {
                cursor = try await feed.outbox.head(pool: feed.pool)
            } else {
                guard let parsed = OutboxCursor(after) else {
                    throw RPCError(code: .invalidArgument, message: "not a cursor of the gateway's feed")
                }
                if parsed < (try await feed.outbox.horizon(pool: feed.pool)) {
                    throw RPCError(code: .failedPrecondition, message: "resync required: the gateway's feed no longer holds these events")
                }
                if parsed > (try await feed.outbox.head(pool: feed.pool)) {
                    throw RPCError(code: .outOfRange, message: "the cursor is beyond the gateway's newest event")
                }
                cursor = parsed
            }
            for try await batch in feed.batches(after: cursor) {
                try await deliver(batch.map {
                    UpstreamEvent(cursor: $0.cursor, entity: $0.entity, key: $0.key, action: $0.action, payload: $0.payload)
                })
            }
        }
    }
}

extension Stb_Common_V1_ChangeAction {
    /// `created`, `updated`, `deleted`.
    var word: String {
        switch self {
        case .created: "created"
        case .updated: "updated"
        case .deleted: "deleted"
        default: "changed"
        }
    }
}
