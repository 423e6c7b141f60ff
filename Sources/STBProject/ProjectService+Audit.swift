import Logging
import Synchronization
import STBJSON
import STBMessages
import STBPostgres
import STBRPC
import STBService

/// The audit log (hash-chained per project) and the change feed.
extension ProjectService {
    static let auditColumns = """
        id, project_id, project_key, at_ms, actor, actor_id, entity, entity_key, action, before::text, after::text, \
        old_hash, new_hash, revision, previous_row_hash, row_hash
        """

    static func auditEntry(_ row: PostgresRow) throws -> (entry: Stb_Project_V1_AuditEntry, content: AuditRow, projectID: Int64, revision: Int64) {
        let before = try row.decode(9, as: String?.self)
        let after = try row.decode(10, as: String?.self)
        let content = AuditRow(
            projectID: try row.decode(1, as: Int64.self), projectKey: try row.decode(2, as: String.self),
            atMs: try row.decode(3, as: Int64.self), actor: try row.decode(4, as: String.self), actorID: try row.decode(5, as: String.self),
            entity: try row.decode(6, as: String.self), entityKey: try row.decode(7, as: String.self), action: try row.decode(8, as: String.self),
            before: try before.map { try JSONValue.parse($0) }, after: try after.map { try JSONValue.parse($0) },
            oldHash: try row.decode(11, as: [UInt8].self), newHash: try row.decode(12, as: [UInt8].self),
            revision: try row.decode(13, as: Int64.self), previousRowHash: try row.decode(14, as: [UInt8].self))
        let entry = Stb_Project_V1_AuditEntry(
            id: try row.decode(0, as: Int64.self), projectKey: content.projectKey, atMs: content.atMs, actor: content.actor,
            actorID: content.actorID, entity: content.entity, entityKey: content.entityKey, action: content.action,
            beforeJson: before ?? "", afterJson: after ?? "", oldHash: content.oldHash, newHash: content.newHash,
            previousRowHash: content.previousRowHash, rowHash: try row.decode(15, as: [UInt8].self))
        return (entry, content, content.projectID, content.revision)
    }

    public func listAudit(_ request: Stb_Project_V1_ListAuditRequest, context: ServerContext) async throws -> Stb_Project_V1_ListAuditResponse {
        let access = try await access(context.caller, request.projectKey)
        let page = try Page(request.page)
        return try await withIdentity(context.caller) { transaction in
            let rows = try await transaction.query("""
                SELECT \(unescaped: Self.auditColumns), count(*) OVER () AS total FROM audit_log
                WHERE project_id = \(access.id) AND id > \(page.after) ORDER BY id LIMIT \(page.size)
                """)
            let entries = try rows.map { try Self.auditEntry($0).entry }
            return Stb_Project_V1_ListAuditResponse(entries: entries, page: try page.info(rows, lastID: entries.last?.id))
        }
    }

    /// Recomputes the chain from the project's first audit row: each row must name its
    /// predecessor's hash and hash to what it stores.
    public func verifyAudit(_ request: Stb_Project_V1_ProjectRef, context: ServerContext) async throws -> Stb_Project_V1_VerifyAuditResponse {
        let access = try await access(context.caller, request.key)
        return try await withIdentity(context.caller) { transaction in
            var previous: [UInt8] = []
            var count: UInt64 = 0
            var after: Int64 = 0
            while true {
                let rows = try await transaction.query("""
                    SELECT \(unescaped: Self.auditColumns) FROM audit_log
                    WHERE project_id = \(access.id) AND id > \(after) ORDER BY id LIMIT 1000
                    """)
                if rows.isEmpty { break }
                for row in rows {
                    let (entry, content, projectID, _) = try Self.auditEntry(row)
                    after = entry.id
                    count += 1
                    var problem: String?
                    if projectID != access.id || content.projectKey != access.key {
                        problem = "the row names another project"
                    } else if content.previousRowHash != previous {
                        problem = "the row does not follow its predecessor (a row before it was removed or altered)"
                    } else if content.hash != entry.rowHash {
                        problem = "the row's content does not match its hash (it was altered)"
                    }
                    if let problem {
                        return Stb_Project_V1_VerifyAuditResponse(intact: false, rows: count, firstBrokenID: entry.id, problem: problem)
                    }
                    previous = entry.rowHash
                }
            }
            return Stb_Project_V1_VerifyAuditResponse(intact: true, rows: count)
        }
    }

    /// The change feed: service accounts and admins only (it names every project).
    public func watch(_ request: Stb_Project_V1_WatchRequest, writer: RPCWriter<Stb_Project_V1_ChangeEvent>, context: ServerContext) async throws {
        let role = context.caller.role
        guard role == "admin" || role == "service" else {
            throw RPCError(code: .permissionDenied, message: "the project change feed is for service accounts and admins")
        }
        try await STBService.watch(after: request.after, feed: feed, reload: "reload the projects and watch again", to: writer) { stored in
            var event = try stored.payload.withUnsafeBytes { try Stb_Project_V1_ChangeEvent(serializedBytes: $0) }
            event.cursor = stored.cursor.description
            return event
        }
    }
}
