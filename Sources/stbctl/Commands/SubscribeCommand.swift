import ArgumentParser
import Foundation
import STBMessages
import STBRPC

/// `stbctl subscribe TOPIC…`: the gateway's realtime stream.
struct SubscribeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscribe",
        abstract: "Follow topics through the gateway's realtime stream.",
        discussion: """
            Topics: catalog, rules, project:<key>, projects, alarms. Prints one line per \
            message:

              snapshot <topic> <bytes> bytes
              <topic> <cursor> <action> <entity> <key>
              resync required: <reason> (<topics>)

            After a disconnect (the gateway restarting, a slow-consumer or expired-token \
            end) it resumes with the last resume token, so nothing is missed; a resync \
            (followed by fresh snapshots) is printed. Runs until Ctrl-C.

            Examples:
              stbctl subscribe catalog rules
              stbctl subscribe project:stb-4k projects
            """
    )

    @Argument(help: "The topics.")
    var topics: [String]

    @Option(help: ArgumentHelp("Resume from this token.", valueName: "token"))
    var resume: String?

    @OptionGroup var gateway: GatewayOptions

    func run() async throws {
        var token = resume ?? ""
        var delay = 0.5
        while true {
            do {
                try await gateway.withGateway { client, metadata in
                    var request = Stb_Gateway_V1_SubscribeRequest()
                    request.topics = topics
                    request.resumeToken = token
                    try await client.serverStreaming(Stb_Gateway_V1_Realtime.subscribe, request: request, metadata: metadata) { stream in
                        for try await message in stream {
                            delay = 0.5
                            if let line = Self.line(message) { print(line) }
                            fflush(nil)
                            token = message.resumeToken
                        }
                    }
                }
                Terminal.writeError("the gateway ended the stream; resuming")
            } catch let failure as CommandFailure {
                // Refusals (a bad topic, no access) are final; the rest are resumed.
                let final = ["INVALID_ARGUMENT", "invalidArgument", "PERMISSION_DENIED", "permissionDenied", "not logged in"]
                if final.contains(where: { failure.message.contains($0) }) { throw failure }
                Terminal.writeError("stream interrupted (\(failure.message.split(separator: "\n").first ?? "")); resuming")
            }
            try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
            delay = min(delay * 2, 5)
        }
    }

    static func line(_ message: Stb_Gateway_V1_SubscribeEvent) -> String? {
        switch message.kind {
        case .snapshot(let snapshot)?:
            return "snapshot \(snapshot.topic) \(snapshot.payload.count) bytes"
        case .delta(let delta)?:
            return "\(delta.topic) \(delta.cursor) \(delta.action) \(delta.entity) \(delta.key)"
        case .resyncRequired(let resync)?:
            return "resync required: \(resync.reason) (\(resync.topics.joined(separator: ", ")))"
        case .heartbeat?, nil:
            return nil
        }
    }
}

/// `stbctl sessions`: the gateway's stream sessions (admins).
struct SessionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions",
        abstract: "List the gateway's realtime stream sessions, or end one (admins only).",
        discussion: """
            Examples:
              stbctl sessions
              stbctl sessions --open
              stbctl sessions --end 42
            """
    )

    @Flag(help: "Only running streams.")
    var open = false

    @Option(help: ArgumentHelp("End this running stream.", valueName: "id"))
    var end: Int64?

    @OptionGroup var gateway: GatewayOptions

    func run() async throws {
        if let end {
            let session = try await gateway.withGateway { client, metadata in
                var request = Stb_Gateway_V1_EndSessionRequest()
                request.id = end
                return try await client.unary(Stb_Gateway_V1_Realtime.endSession, request: request, metadata: metadata, timeout: gateway.callTimeout)
            }
            print("session \(session.id) ended")
            return
        }
        let sessions = try await gateway.withGateway { client, metadata in
            var request = Stb_Gateway_V1_ListSessionsRequest()
            request.openOnly = open
            return try await client.unary(Stb_Gateway_V1_Realtime.listSessions, request: request, metadata: metadata, timeout: gateway.callTimeout).sessions
        }
        var table = Table(header: ["ID", "USER", "TOPICS", "STATUS", "PEER", "END REASON"])
        for session in sessions {
            table.append(["\(session.id)", session.username, session.topics.joined(separator: ","), session.status, session.peer, session.endReason])
        }
        Terminal.write(table.text)
    }
}
