import Logging
import STBAPI
import STBMessages
import STBPostgres
import STBRPC
import STBService

/// The gateway's `stb.gateway.v1.Alarms`: the alarms `AlarmBook` keeps, listed and
/// acknowledged by the users who can see their projects, and their change feed.
public struct AlarmsService: Stb_Gateway_V1_AlarmsService {
    /// The most characters an acknowledgement note holds.
    static let maxNoteLength = 1000

    let pool: PostgresPool
    let book: AlarmBook
    let visibility: ProjectVisibility
    let feed: OutboxFeed

    public init(pool: PostgresPool, signal: ChangeSignal, visibility: ProjectVisibility) {
        self.pool = pool
        self.book = AlarmBook(pool: pool)
        self.visibility = visibility
        self.feed = OutboxFeed(outbox: AlarmBook.outbox, pool: pool, signal: signal)
    }

    public func listAlarms(_ request: Stb_Gateway_V1_ListAlarmsRequest, context: ServerContext) async throws -> Stb_Gateway_V1_ListAlarmsResponse {
        let caller = try Self.caller(context)
        var problems: [String] = []
        let status = request.status == .unspecified ? "" : AlarmStatusName.name(request.status)
        if status == nil { problems.append("status: \(request.status.rawValue) is not an alarm status") }
        let severity = request.severity == .unspecified ? "" : AlarmSeverityName.name(request.severity)
        if severity == nil { problems.append("severity: \(request.severity.rawValue) is not an alarm severity") }
        try check(problems)
        let page = try Page(request.page)
        let visible = try await visibility.visibleProjects(for: caller)
        let everyProject = visible == nil
        let keys = (visible ?? []).sorted()
        let project = request.projectKey, statusName = status ?? "", severityName = severity ?? ""
        // The same filter twice: once for the page, once for the total.
        let rows = try await pool.query("""
            SELECT \(unescaped: StoredAlarm.columns),
                   (SELECT count(*) FROM alarms a
                    WHERE (\(project) = '' OR a.project_key = \(project)) AND (\(statusName) = '' OR a.status = \(statusName))
                      AND (\(severityName) = '' OR a.severity = \(severityName)) AND (\(everyProject) OR a.project_key = ANY(\(keys)))) AS total
            FROM alarms a
            WHERE (\(project) = '' OR a.project_key = \(project)) AND (\(statusName) = '' OR a.status = \(statusName))
              AND (\(severityName) = '' OR a.severity = \(severityName)) AND (\(everyProject) OR a.project_key = ANY(\(keys)))
              AND a.id > \(page.after)
            ORDER BY a.id LIMIT \(Int64(page.size))
            """)
        let alarms = try rows.map { try StoredAlarm(row: $0).message }
        var reply = Stb_Gateway_V1_ListAlarmsResponse()
        reply.alarms = alarms
        reply.page = try page.info(rows, lastID: alarms.last?.id)
        return reply
    }

    public func acknowledgeAlarm(_ request: Stb_Gateway_V1_AcknowledgeAlarmRequest, context: ServerContext) async throws -> Stb_Gateway_V1_Alarm {
        let caller = try Self.caller(context)
        var problems: [String] = []
        if request.id <= 0 { problems.append("id: required") }
        if request.note.count > Self.maxNoteLength { problems.append("note: must be at most \(Self.maxNoteLength) characters") }
        if request.note.utf8.contains(0) { problems.append("note: must not contain NUL") }
        try check(problems)
        let visible = try await visibility.visibleProjects(for: caller)
        return try await book.acknowledge(id: request.id, note: request.note, actor: caller.name) { project in
            visible?.contains(project) ?? true
        }
    }

    public func watchAlarms(_ request: Stb_Gateway_V1_WatchAlarmsRequest, writer: RPCWriter<Stb_Gateway_V1_AlarmEvent>, context: ServerContext) async throws {
        try await STBService.watch(after: request.after, feed: feed, reload: "list the alarms and watch again", to: writer) { stored in
            var event = Stb_Gateway_V1_AlarmEvent()
            event.cursor = stored.cursor.description
            event.action = switch stored.action {
            case "created": .created
            case "deleted": .deleted
            default: .updated
            }
            event.alarm = try Stb_Gateway_V1_Alarm(serializedBytes: stored.payload)
            return event
        }
    }

    /// The caller's verified identity, or UNAUTHENTICATED.
    static func caller(_ context: ServerContext) throws(RPCError) -> CallerIdentity {
        guard let identity = context.identity, !identity.role.isEmpty else {
            throw RPCError(code: .unauthenticated, message: "an access token is required")
        }
        return identity
    }
}
