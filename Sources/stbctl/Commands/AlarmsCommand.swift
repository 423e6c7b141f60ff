import ArgumentParser
import Foundation
import STBMessages
import STBRPC

/// `stbctl alarms …`: the gateway's alarms (projects whose draft is invalid).
struct AlarmsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alarms",
        abstract: "List and acknowledge alarms at the gateway.",
        discussion: """
            Lists the alarms of the projects you can see (admins: all).

            Examples:
              stbctl alarms
              stbctl alarms --project stb-a --status active
              stbctl alarms ack 12 --note "looking into it"
            """,
        subcommands: [List.self, Acknowledge.self],
        defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List alarms.")
        @Option(help: "Only this project's alarms.") var project = ""
        @Option(help: "active, acknowledged or cleared.", transform: parseStatus) var status: Stb_Gateway_V1_AlarmStatus = .unspecified
        @Option(help: "info, warning or critical.", transform: parseSeverity) var severity: Stb_Gateway_V1_AlarmSeverity = .unspecified
        @OptionGroup var gateway: GatewayOptions

        func run() async throws {
            let alarms = try await gateway.withGateway { client, metadata in
                var alarms: [Stb_Gateway_V1_Alarm] = []
                var token = ""
                repeat {
                    var request = Stb_Gateway_V1_ListAlarmsRequest()
                    request.projectKey = project
                    request.status = status
                    request.severity = severity
                    request.page = Stb_Common_V1_PageRequest(pageSize: 500, pageToken: token)
                    let reply = try await client.unary(Stb_Gateway_V1_Alarms.listAlarms, request: request, metadata: metadata, timeout: gateway.callTimeout)
                    alarms += reply.alarms
                    guard reply.page?.nextPageToken != token else { break }
                    token = reply.page?.nextPageToken ?? ""
                } while !token.isEmpty
                return alarms
            }
            var table = Table(header: ["ID", "PROJECT", "STATUS", "SEVERITY", "VIOLATIONS", "RAISED", "ACKNOWLEDGED BY", "RULES"])
            for alarm in alarms {
                table.append([
                    String(alarm.id), alarm.projectKey, statusName(alarm.status), severityName(alarm.severity), String(alarm.violations.count),
                    timeText(alarm.raisedAtMs), alarm.acknowledgedBy, alarm.violations.map(\.ruleKey).joined(separator: ","),
                ])
            }
            Terminal.write(table.text)
        }
    }

    struct Acknowledge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ack", abstract: "Acknowledge an active alarm (operators and above).")
        @Argument(help: "The alarm's id.") var id: Int64
        @Option(help: "Why, or what is being done.") var note = ""
        @OptionGroup var gateway: GatewayOptions

        func run() async throws {
            let alarm = try await gateway.withGateway { client, metadata in
                var request = Stb_Gateway_V1_AcknowledgeAlarmRequest()
                request.id = id
                request.note = note
                return try await client.unary(Stb_Gateway_V1_Alarms.acknowledgeAlarm, request: request, metadata: metadata, timeout: gateway.callTimeout)
            }
            Terminal.write("acknowledged alarm \(alarm.id) of \(alarm.projectKey) as \(alarm.acknowledgedBy)")
        }
    }
}

func statusName(_ status: Stb_Gateway_V1_AlarmStatus) -> String {
    switch status {
    case .active: "active"
    case .acknowledged: "acknowledged"
    case .cleared: "cleared"
    default: "unspecified"
    }
}

func severityName(_ severity: Stb_Gateway_V1_AlarmSeverity) -> String {
    switch severity {
    case .info: "info"
    case .warning: "warning"
    case .critical: "critical"
    default: "unspecified"
    }
}

func parseStatus(_ text: String) throws -> Stb_Gateway_V1_AlarmStatus {
    switch text.lowercased() {
    case "active": .active
    case "acknowledged", "ack": .acknowledged
    case "cleared": .cleared
    default: throw ValidationError("status must be active, acknowledged or cleared")
    }
}

func parseSeverity(_ text: String) throws -> Stb_Gateway_V1_AlarmSeverity {
    switch text.lowercased() {
    case "info": .info
    case "warning": .warning
    case "critical": .critical
    default: throw ValidationError("severity must be info, warning or critical")
    }
}

/// A time in milliseconds as UTC ISO 8601 (seconds); empty for zero.
func timeText(_ ms: Int64) -> String {
    guard ms > 0 else { return "" }
    let formatter = ISO8601DateFormatter()
    formatter.timeZone = TimeZone(identifier: "UTC")
    return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
}
