import ArgumentParser
import STBJSON
import STBMessages
import STBRPC

/// `stbctl dashboards …`: saved dashboards at the gateway.
struct DashboardsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboards",
        abstract: "List, show, create and delete saved dashboards at the gateway.",
        discussion: """
            A dashboard file is JSON: {"name": "…", "description": "…", "shared": false,
            "layout": {"widgets": [{"type": "alarm_list", "x": 0, "y": 0, "w": 6, "h": 4,
            "topic": "alarms"}]}}; widget types are alarm_list (topic), option_value
            (option_key) and project_validity (project_key).

            Examples:
              stbctl dashboards
              stbctl dashboards show 3
              stbctl dashboards create ops.json --shared
              stbctl dashboards delete 3
            """,
        subcommands: [List.self, Show.self, Create.self, Delete.self],
        defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Your dashboards and the shared ones.")
        @OptionGroup var gateway: GatewayOptions

        func run() async throws {
            let dashboards = try await gateway.withGateway { client, metadata in
                var dashboards: [Stb_Gateway_V1_Dashboard] = []
                var token = ""
                repeat {
                    var request = Stb_Gateway_V1_ListDashboardsRequest()
                    request.page = Stb_Common_V1_PageRequest(pageSize: 500, pageToken: token)
                    let reply = try await client.unary(Stb_Gateway_V1_Dashboards.listDashboards, request: request, metadata: metadata, timeout: gateway.callTimeout)
                    dashboards += reply.dashboards
                    guard reply.page?.nextPageToken != token else { break }
                    token = reply.page?.nextPageToken ?? ""
                } while !token.isEmpty
                return dashboards
            }
            var table = Table(header: ["ID", "NAME", "OWNER", "SHARED", "UPDATED", "DESCRIPTION"])
            for dashboard in dashboards {
                table.append([
                    String(dashboard.id), dashboard.name, dashboard.owner, dashboard.shared ? "yes" : "no", timeText(dashboard.updatedAtMs),
                    dashboard.description_p,
                ])
            }
            Terminal.write(table.text)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Print one dashboard as JSON.")
        @Argument(help: "The dashboard's id.") var id: Int64
        @OptionGroup var gateway: GatewayOptions

        func run() async throws {
            let dashboard = try await gateway.withGateway { client, metadata in
                var request = Stb_Gateway_V1_GetDashboardRequest()
                request.id = id
                return try await client.unary(Stb_Gateway_V1_Dashboards.getDashboard, request: request, metadata: metadata, timeout: gateway.callTimeout)
            }
            let layout = (try? JSONValue.parse(dashboard.layoutJson)) ?? .string(dashboard.layoutJson)
            let document = JSONValue.object([
                "id": .integer(dashboard.id), "name": .string(dashboard.name), "description": .string(dashboard.description_p),
                "owner": .string(dashboard.owner), "shared": .bool(dashboard.shared), "layout": layout,
            ])
            Terminal.write(document.canonicalText)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a dashboard from a JSON file (- for standard input).")
        @Argument(help: "The dashboard file.") var file: String
        @Option(help: "The name (overrides the file's).") var name: String?
        @Flag(help: "Share it with every user (overrides the file's).") var shared = false
        @OptionGroup var gateway: GatewayOptions

        func run() async throws {
            let text = try InputFile.read(file, what: "a dashboard document")
            let document = try Self.parse(text, from: file)
            guard document.objectValue != nil, let layout = document["layout"] else {
                throw CommandFailure("\(InputFile.displayName(file)): expected an object with \"name\" and \"layout\"")
            }
            var request = Stb_Gateway_V1_CreateDashboardRequest()
            request.name = name ?? document["name"]?.stringValue ?? ""
            request.description_p = document["description"]?.stringValue ?? ""
            if case .bool(let flag)? = document["shared"] { request.shared = flag }
            if shared { request.shared = true }
            request.layoutJson = layout.canonicalText
            let dashboard = try await gateway.withGateway { client, metadata in
                try await client.unary(Stb_Gateway_V1_Dashboards.createDashboard, request: request, metadata: metadata, timeout: gateway.callTimeout)
            }
            Terminal.write("created dashboard \(dashboard.id) (\(dashboard.name))")
        }

        /// The file's JSON, or a failure naming the file and where the JSON breaks.
        static func parse(_ text: String, from file: String) throws(CommandFailure) -> JSONValue {
            do {
                return try JSONValue.parse(text)
            } catch {
                throw CommandFailure("\(InputFile.displayName(file)): not JSON (\(error.description))")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a dashboard (its owner or an admin).")
        @Argument(help: "The dashboard's id.") var id: Int64
        @OptionGroup var gateway: GatewayOptions

        func run() async throws {
            _ = try await gateway.withGateway { client, metadata in
                var request = Stb_Gateway_V1_DeleteDashboardRequest()
                request.id = id
                return try await client.unary(Stb_Gateway_V1_Dashboards.deleteDashboard, request: request, metadata: metadata, timeout: gateway.callTimeout)
            }
            Terminal.write("deleted dashboard \(id)")
        }
    }
}
