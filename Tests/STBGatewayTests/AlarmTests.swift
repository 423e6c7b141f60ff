import STBAuth
import STBGateway
import STBMessages
import STBPostgres
import STBRPC
import Testing

typealias Alarms = Stb_Gateway_V1_Alarms

@Suite("Gateway alarms", .serialized)
struct AlarmTests {
    static func violation(_ rule: String, _ severity: Stb_Rules_V1_Severity) -> Stb_Rules_V1_Violation {
        var violation = Stb_Rules_V1_Violation()
        violation.ruleKey = rule
        violation.severity = severity
        violation.message = "\(rule) is broken"
        return violation
    }

    /// A user with `role` and a token for them.
    static func user(_ name: String, _ role: Stb_Gateway_V1_Role, in gateway: GatewayHarness, admin: String) async throws -> (id: String, token: String) {
        let password = "\(name) password 0123"
        let user = try await gateway.createUser(name, role: role, password: password, as: admin)
        return (user.id, try await gateway.login(name, password).accessToken)
    }

    static func list(_ gateway: GatewayHarness, as token: String, _ configure: (inout Stb_Gateway_V1_ListAlarmsRequest) -> Void = { _ in }) async throws -> [Stb_Gateway_V1_Alarm] {
        var request = Stb_Gateway_V1_ListAlarmsRequest()
        configure(&request)
        return try await gateway.client.unary(Alarms.listAlarms, request: request, metadata: Metadata.bearer(token)).alarms
    }

    static func acknowledge(_ gateway: GatewayHarness, _ id: Int64, note: String = "", as token: String) async throws -> Stb_Gateway_V1_Alarm {
        var request = Stb_Gateway_V1_AcknowledgeAlarmRequest()
        request.id = id
        request.note = note
        return try await gateway.client.unary(Alarms.acknowledgeAlarm, request: request, metadata: Metadata.bearer(token))
    }

    @Test("Severity follows the violations: any error is CRITICAL, only warnings WARNING, else INFO")
    func severity() {
        #expect(AlarmSeverityName.severity(of: [Self.violation("a", .warning), Self.violation("b", .error)]) == .critical)
        #expect(AlarmSeverityName.severity(of: [Self.violation("a", .warning)]) == .warning)
        #expect(AlarmSeverityName.severity(of: [Self.violation("a", .unspecified)]) == .info)
    }

    @Test("Validity events raise, update, re-activate and clear one alarm per project, each change an outbox event")
    func transitions() async throws {
        try await GatewayHarness.with { gateway in
            let book = AlarmBook(pool: gateway.pool)
            let admin = try await gateway.login().accessToken
            let raised = try #require(try await book.apply(projectKey: "stb-a", valid: false, violations: [Self.violation("r1", .error)], sourceRevision: 5))
            #expect(raised.status == .active && raised.severity == .critical && raised.violations.map(\.ruleKey) == ["r1"])
            // The same verdict again changes nothing; an older event replayed is ignored.
            #expect(try await book.apply(projectKey: "stb-a", valid: false, violations: [Self.violation("r1", .error)], sourceRevision: 6) == nil)
            #expect(try await book.apply(projectKey: "stb-a", valid: false, violations: [], sourceRevision: 4) == nil)
            let milder = try #require(try await book.apply(projectKey: "stb-a", valid: false, violations: [Self.violation("r2", .warning)], sourceRevision: 7))
            #expect(milder.id == raised.id && milder.severity == .warning && milder.status == .active)
            let acknowledged = try await Self.acknowledge(gateway, raised.id, note: "looking", as: admin)
            #expect(acknowledged.status == .acknowledged && acknowledged.acknowledgedBy == "admin" && acknowledged.acknowledgementNote == "looking")
            #expect(acknowledged.acknowledgedAtMs > 0)
            // Worse again: active again, the acknowledgement kept for the record.
            let worse = try #require(try await book.apply(projectKey: "stb-a", valid: false, violations: [Self.violation("r1", .error)], sourceRevision: 8))
            #expect(worse.id == raised.id && worse.status == .active && worse.severity == .critical)
            let cleared = try #require(try await book.apply(projectKey: "stb-a", valid: true, violations: [], sourceRevision: 9))
            #expect(cleared.id == raised.id && cleared.status == .cleared && cleared.clearedAtMs > 0)
            #expect(try await book.apply(projectKey: "stb-a", valid: true, violations: [], sourceRevision: 10) == nil)
            // A new failure opens a new alarm.
            let again = try #require(try await book.apply(projectKey: "stb-a", valid: false, violations: [Self.violation("r3", .warning)], sourceRevision: 11))
            #expect(again.id != raised.id && again.severity == .warning)

            let events = try await AlarmBook.outbox.read(after: .start, limit: 100, pool: gateway.pool)
            #expect(events.map(\.entity) == Array(repeating: "alarm", count: 6))
            #expect(events.map(\.action) == ["created", "updated", "updated", "updated", "updated", "created"])
            let statuses = try events.map { try Stb_Gateway_V1_Alarm(serializedBytes: $0.payload).status }
            #expect(statuses == [.active, .active, .acknowledged, .active, .cleared, .active])
        }
    }

    @Test("WatchAlarms replays alarm changes after a cursor")
    func watch() async throws {
        try await GatewayHarness.with { gateway in
            let book = AlarmBook(pool: gateway.pool)
            let admin = try await gateway.login().accessToken
            try await book.apply(projectKey: "stb-w", valid: false, violations: [Self.violation("r1", .error)], sourceRevision: 1)
            try await book.apply(projectKey: "stb-w", valid: true, violations: [], sourceRevision: 2)
            var request = Stb_Gateway_V1_WatchAlarmsRequest()
            request.after = "0:0"
            let seen: [Stb_Gateway_V1_AlarmEvent] = try await gateway.client.serverStreaming(
                Alarms.watchAlarms, request: request, metadata: Metadata.bearer(admin), timeout: .seconds(30)
            ) { stream in
                var seen: [Stb_Gateway_V1_AlarmEvent] = []
                for try await event in stream {
                    seen.append(event)
                    if seen.count == 2 { break }
                }
                return seen
            }
            #expect(seen.map(\.action) == [.created, .updated])
            #expect(seen.map { $0.alarm?.status } == [.active, .cleared])
            #expect(seen.allSatisfy { !$0.cursor.isEmpty })
        }
    }

    @Test("Users see and acknowledge only the alarms of their projects; viewers cannot acknowledge; filters and pages")
    func visibility() async throws {
        try await GatewayHarness.with { gateway in
            let book = AlarmBook(pool: gateway.pool)
            let admin = try await gateway.login().accessToken
            let viewer = try await Self.user("vera", .viewer, in: gateway, admin: admin)
            let operatorUser = try await Self.user("otto", .operator, in: gateway, admin: admin)
            gateway.memberships[viewer.id] = ["stb-a"]
            gateway.memberships[operatorUser.id] = ["stb-a"]
            let a = try #require(try await book.apply(projectKey: "stb-a", valid: false, violations: [Self.violation("r1", .error)], sourceRevision: 1))
            let b = try #require(try await book.apply(projectKey: "stb-b", valid: false, violations: [Self.violation("r2", .warning)], sourceRevision: 2))

            #expect(try await Self.list(gateway, as: admin).map(\.id) == [a.id, b.id])
            #expect(try await Self.list(gateway, as: viewer.token).map(\.id) == [a.id])
            #expect(try await Self.list(gateway, as: admin) { $0.severity = .warning }.map(\.id) == [b.id])
            #expect(try await Self.list(gateway, as: admin) { $0.projectKey = "stb-b" }.map(\.id) == [b.id])
            #expect(try await Self.list(gateway, as: viewer.token) { $0.projectKey = "stb-b" }.isEmpty)
            var paged = Stb_Gateway_V1_ListAlarmsRequest()
            paged.page = Stb_Common_V1_PageRequest(pageSize: 1, pageToken: "")
            let first = try await gateway.client.unary(Alarms.listAlarms, request: paged, metadata: Metadata.bearer(admin))
            #expect(first.alarms.map(\.id) == [a.id] && first.page?.total == 2 && first.page?.nextPageToken == String(a.id))

            await expectStatus(.permissionDenied) { _ = try await Self.acknowledge(gateway, a.id, as: viewer.token) }
            await expectStatus(.notFound) { _ = try await Self.acknowledge(gateway, b.id, as: operatorUser.token) }
            let acknowledged = try await Self.acknowledge(gateway, a.id, note: "on it", as: operatorUser.token)
            #expect(acknowledged.acknowledgedBy == "otto" && acknowledged.status == .acknowledged)
            await expectStatus(.failedPrecondition) { _ = try await Self.acknowledge(gateway, a.id, as: operatorUser.token) }
            #expect(try await Self.list(gateway, as: viewer.token) { $0.status = .acknowledged }.map(\.id) == [a.id])
            #expect(try await Self.list(gateway, as: admin) { $0.status = .active }.map(\.id) == [b.id])
            await expectStatus(.invalidArgument) { _ = try await Self.acknowledge(gateway, a.id, note: String(repeating: "n", count: 1001), as: admin) }
            await expectStatus(.invalidArgument) { _ = try await Self.list(gateway, as: admin) { $0.status = .init(rawValue: 9) } }
        }
    }

    @Test("Retention deletes cleared alarms older than the given days, with a deleted event")
    func retention() async throws {
        try await GatewayHarness.with { gateway in
            let book = AlarmBook(pool: gateway.pool)
            let old = try #require(try await book.apply(projectKey: "stb-old", valid: false, violations: [], sourceRevision: 1))
            try await book.apply(projectKey: "stb-old", valid: true, violations: [], sourceRevision: 2)
            try await book.apply(projectKey: "stb-new", valid: false, violations: [], sourceRevision: 3)
            try await book.apply(projectKey: "stb-new", valid: true, violations: [], sourceRevision: 4)
            try await book.apply(projectKey: "stb-open", valid: false, violations: [], sourceRevision: 5)
            _ = try await gateway.pool.query("UPDATE alarms SET cleared_at = now() - interval '31 days' WHERE id = \(old.id)")
            #expect(try await book.prune(olderThanDays: 30) == 1)
            #expect(try await gateway.count("SELECT count(*) FROM alarms") == 2)
            let last = try #require(try await AlarmBook.outbox.read(after: .start, limit: 100, pool: gateway.pool).last)
            #expect(last.action == "deleted" && last.key == "stb-old/\(old.id)")
        }
    }
}
