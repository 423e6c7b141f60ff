import STBGateway
import STBMessages
import STBPostgres
import STBRPC
import Testing

typealias Dashboards = Stb_Gateway_V1_Dashboards

@Suite("Gateway dashboards", .serialized)
struct DashboardTests {
    static let layout = """
        {"widgets": [{"type": "alarm_list", "x": 0, "y": 0, "w": 6, "h": 4, "topic": "alarms"},
                     {"type": "option_value", "x": 6, "y": 0, "w": 3, "h": 2, "option_key": "hdr_enabled"},
                     {"type": "project_validity", "x": 9, "y": 0, "w": 3, "h": 2, "project_key": "stb-a"}]}
        """

    static func create(_ gateway: GatewayHarness, _ name: String, shared: Bool = false, layout: String = layout, as token: String) async throws -> Stb_Gateway_V1_Dashboard {
        var request = Stb_Gateway_V1_CreateDashboardRequest()
        request.name = name
        request.shared = shared
        request.layoutJson = layout
        return try await gateway.client.unary(Dashboards.createDashboard, request: request, metadata: Metadata.bearer(token))
    }

    @Test("A layout is checked member by member; each problem names its path")
    func validation() async throws {
        let cases: [(String, String)] = [
            ("not json", "layout_json: is not JSON"),
            ("[]", "layout_json: must be an object"),
            (#"{"widgets": 3}"#, "layout_json.widgets: must be an array"),
            (#"{"widgets": [], "extra": 1}"#, "layout_json.extra: unknown member"),
            (#"{"widgets": [{"type": "clock", "x": 0, "y": 0, "w": 1, "h": 1}]}"#, #"layout_json.widgets[0].type: "clock" is not one of"#),
            (#"{"widgets": [{"type": "alarm_list", "x": -1, "y": 0, "w": 1, "h": 1, "topic": "alarms"}]}"#, "layout_json.widgets[0].x: must be an integer from 0 to 1000"),
            (#"{"widgets": [{"type": "alarm_list", "x": 0, "y": 1.5, "w": 1, "h": 1, "topic": "alarms"}]}"#, "layout_json.widgets[0].y: must be an integer"),
            (#"{"widgets": [{"type": "alarm_list", "x": 0, "y": 0, "w": 0, "h": 1001, "topic": "alarms"}]}"#, "layout_json.widgets[0].w: must be an integer from 1 to 1000"),
            (#"{"widgets": [{"type": "alarm_list", "x": 0, "y": 0, "w": 1, "h": 1}]}"#, "layout_json.widgets[0].topic: required for a alarm_list widget"),
            (#"{"widgets": [{"type": "alarm_list", "x": 0, "y": 0, "w": 1, "h": 1, "topic": "news"}]}"#, #"layout_json.widgets[0].topic: "news" is not a topic"#),
            (#"{"widgets": [{"type": "option_value", "x": 0, "y": 0, "w": 1, "h": 1, "option_key": "Bad Key"}]}"#, #"layout_json.widgets[0].option_key: "Bad Key" is not a valid key"#),
            (#"{"widgets": [{"type": "project_validity", "x": 0, "y": 0, "w": 1, "h": 1, "project_key": "a", "topic": "alarms"}]}"#, "layout_json.widgets[0].topic: not a member of a project_validity widget"),
        ]
        for (layout, expected) in cases {
            let problems = DashboardLayout.check(layout, at: "layout_json").problems
            #expect(problems.contains { $0.hasPrefix(expected) }, "\(layout): \(problems)")
        }
        let valid = DashboardLayout.check(Self.layout, at: "layout_json")
        #expect(valid.problems.isEmpty && valid.canonical != nil)
        // Over RPC: INVALID_ARGUMENT with one field violation per problem.
        try await GatewayHarness.with { gateway in
            let admin = try await gateway.login().accessToken
            let error = await expectStatus(.invalidArgument) {
                _ = try await Self.create(gateway, "", layout: #"{"widgets": [{"type": "alarm_list", "x": -1, "y": 0, "w": 1, "h": 1}]}"#, as: admin)
            }
            #expect(error?.message.contains("name: required") == true)
            #expect(error?.message.contains("layout_json.widgets[0].x:") == true)
            #expect(error?.message.contains("layout_json.widgets[0].topic:") == true)
        }
    }

    @Test("Own and shared dashboards are visible; only the owner or an admin changes or deletes one")
    func visibility() async throws {
        try await GatewayHarness.with { gateway in
            let admin = try await gateway.login().accessToken
            let ann = try await AlarmTests.user("ann", .viewer, in: gateway, admin: admin)
            let bob = try await AlarmTests.user("bob", .engineer, in: gateway, admin: admin)
            let mine = try await Self.create(gateway, "mine", as: ann.token)
            let shared = try await Self.create(gateway, "team", shared: true, as: ann.token)
            #expect(mine.owner == "ann" && mine.ownerID == ann.id && !mine.layoutJson.isEmpty)

            let listed = try await gateway.client.unary(Dashboards.listDashboards, request: Stb_Gateway_V1_ListDashboardsRequest(), metadata: Metadata.bearer(bob.token))
            #expect(listed.dashboards.map(\.id) == [shared.id] && listed.page?.total == 1)
            let own = try await gateway.client.unary(Dashboards.listDashboards, request: Stb_Gateway_V1_ListDashboardsRequest(), metadata: Metadata.bearer(ann.token))
            #expect(own.dashboards.map(\.id) == [mine.id, shared.id])

            var get = Stb_Gateway_V1_GetDashboardRequest()
            get.id = mine.id
            await expectStatus(.notFound) { _ = try await gateway.client.unary(Dashboards.getDashboard, request: get, metadata: Metadata.bearer(bob.token)) }
            get.id = shared.id
            #expect(try await gateway.client.unary(Dashboards.getDashboard, request: get, metadata: Metadata.bearer(bob.token)).name == "team")

            var update = Stb_Gateway_V1_UpdateDashboardRequest()
            update.id = shared.id
            update.name = "renamed"
            update.shared = true
            update.layoutJson = #"{"widgets": []}"#
            await expectStatus(.permissionDenied) { _ = try await gateway.client.unary(Dashboards.updateDashboard, request: update, metadata: Metadata.bearer(bob.token)) }
            update.id = mine.id
            await expectStatus(.notFound) { _ = try await gateway.client.unary(Dashboards.updateDashboard, request: update, metadata: Metadata.bearer(bob.token)) }
            let renamed = try await gateway.client.unary(Dashboards.updateDashboard, request: update, metadata: Metadata.bearer(ann.token))
            #expect(renamed.name == "renamed" && renamed.shared && renamed.updatedAtMs >= renamed.createdAtMs)

            var delete = Stb_Gateway_V1_DeleteDashboardRequest()
            delete.id = shared.id
            await expectStatus(.permissionDenied) { _ = try await gateway.client.unary(Dashboards.deleteDashboard, request: delete, metadata: Metadata.bearer(bob.token)) }
            _ = try await gateway.client.unary(Dashboards.deleteDashboard, request: delete, metadata: Metadata.bearer(admin))
            delete.id = mine.id
            _ = try await gateway.client.unary(Dashboards.deleteDashboard, request: delete, metadata: Metadata.bearer(ann.token))
            #expect(try await gateway.count("SELECT count(*) FROM dashboards") == 0)
        }
    }
}
