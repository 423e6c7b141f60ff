import STBAuth
import STBJSON
import STBMessages
import STBRPC
import STBService

/// `GET /events?topics=…`: the `Realtime/Subscribe` stream as server-sent events, for a
/// browser's `EventSource`. It runs Subscribe's own handler (the same authorization,
/// quotas, session rows, resume and resync), and writes each message as an event:
///
/// - first `retry: <ms>` (randomised, 1000–3000, so reconnecting pages spread out);
/// - `event: snapshot` / `delta` / `resync`, each with `id: <resume token>` and JSON
///   `data` (payloads and change events as proto JSON, by their documented types);
/// - heartbeats as comments, `: heartbeat <ms>`;
/// - a stream that ends with an error ends with `event: error` and `data: {"code","message"}`.
///
/// The access token comes from `authorization: Bearer` or the `stb_access` cookie; a
/// reconnect's `Last-Event-ID` (or the query's `lastEventId`) is the resume token. Missing or bad credentials are 401,
/// bad topics or a resume token this service did not issue 400, before the stream starts.
public struct EventStream: Sendable {
    let realtime: RealtimeService
    let access: MethodAccess

    public init(realtime: RealtimeService, access: MethodAccess = .platform) {
        self.realtime = realtime
        self.access = access
    }

    static let subscribePath = "/stb.gateway.v1.Realtime/Subscribe"

    public func register(in routes: inout HTTPRoutes) {
        routes.add("/events") { try await respond(to: $0) }
    }

    func respond(to request: HTTPRequest) async throws -> HTTPResponse {
        guard request.method == "GET" else { return WebResponses.methodNotAllowed("GET") }
        let token: Substring
        if let header = request.header(Metadata.authorizationKey) {
            guard let bearer = Authenticator.bearerToken(header) else {
                return WebResponses.error(401, code: "unauthenticated", "the authorization header is not `Bearer <token>`")
            }
            token = bearer
        } else if let cookie = request.cookie(WebSessions.accessCookie), !cookie.isEmpty {
            token = Substring(cookie)
        } else {
            return WebResponses.error(401, code: "unauthenticated", "an access token is required (log in)")
        }
        let claims: AccessClaims
        do {
            claims = try await realtime.authenticator.verify(token)
        } catch {
            return WebResponses.error(401, code: "unauthenticated", error.description)
        }
        guard let requirement = access[Self.subscribePath], requirement.permits(claims.role) else {
            return WebResponses.error(403, code: "permission_denied", "subscribing requires another role")
        }
        let names = (request.queryItem("topics") ?? "").split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        do {
            _ = try Topic.parse(names, maximum: realtime.hub.configuration.maximumTopics)
        } catch {
            return WebResponses.error(400, code: "invalid_argument", error.message)
        }
        var subscribe = Stb_Gateway_V1_SubscribeRequest()
        subscribe.topics = names
        // A new EventSource cannot set the header: a page that reconnects after an error
        // (a refreshed token) may pass the last id as `lastEventId` instead.
        if let resume = request.header("last-event-id") ?? request.queryItem("lastEventId"), !resume.isEmpty {
            guard ResumeToken(text: resume) != nil else {
                return WebResponses.error(400, code: "invalid_argument", "Last-Event-ID: not a resume token this service issued; reconnect without it")
            }
            subscribe.resumeToken = resume
        }
        var metadata = Metadata()
        metadata.addString("Bearer \(token)", forKey: Metadata.authorizationKey)
        let context = ServerContext(path: Self.subscribePath, metadata: metadata, peer: request.peer)
        let realtime = self.realtime
        let request = subscribe
        let headers = [
            HTTPField("content-type", "text/event-stream"), HTTPField("cache-control", "no-cache"),
            // Tells a buffering proxy (nginx and alike) to pass events on at once.
            HTTPField("x-accel-buffering", "no"),
        ] + WebResponses.securityHeaders
        return HTTPResponse(status: 200, headers: headers, body: .stream { body in
            try await body.write("retry: \(Int.random(in: 1000...3000))\n\n")
            let writer = RPCWriter<Stb_Gateway_V1_SubscribeEvent>(encodedMessages: { bytes in
                let message = try Stb_Gateway_V1_SubscribeEvent(serializedBytes: bytes)
                try await body.write(ServerSentEvents.frame(message))
            })
            do {
                try await realtime.subscribe(request, writer: writer, context: context)
            } catch let error as RPCError {
                try await body.write(ServerSentEvents.error(error))
            }
        })
    }
}

/// The text of server-sent events for `Subscribe` messages.
enum ServerSentEvents {
    /// One message as an event (or, for a heartbeat, a comment line).
    static func frame(_ message: Stb_Gateway_V1_SubscribeEvent) -> String {
        switch message.kind {
        case .snapshot(let snapshot):
            let payload = Topic(snapshot.topic).map { snapshotJSON(snapshot.payload, of: $0) } ?? "null"
            return event("snapshot", id: message.resumeToken, data: #"{"topic":\#(quoted(snapshot.topic)),"payload":\#(payload)}"#)
        case .delta(let delta):
            let data = #"{"topic":\#(quoted(delta.topic)),"upstream":\#(quoted(delta.upstream)),"cursor":\#(quoted(delta.cursor)),"#
                + #""entity":\#(quoted(delta.entity)),"key":\#(quoted(delta.key)),"action":\#(quoted(delta.action)),"#
                + #""event":\#(changeEventJSON(delta.event, upstream: delta.upstream))}"#
            return event("delta", id: message.resumeToken, data: data)
        case .resyncRequired(let resync):
            let topics = JSONValue.array(resync.topics.map { .string($0) }).canonicalText
            return event("resync", id: message.resumeToken, data: #"{"reason":\#(quoted(resync.reason)),"topics":\#(topics)}"#)
        case .heartbeat(let beat):
            return ": heartbeat \(beat.atMs)\n\n"
        case nil:
            return ""
        }
    }

    /// The last event of a stream that failed.
    static func error(_ error: RPCError) -> String {
        event("error", id: nil, data: WebResponses.errorBody(code: error.connectCodeName, message: error.message).canonicalText)
    }

    /// `event:`, `id:` and one `data:` line (JSON holds no raw newline), then a blank line.
    static func event(_ name: String, id: String?, data: String) -> String {
        var text = "event: \(name)\n"
        if let id, !id.isEmpty { text += "id: \(id)\n" }
        return text + "data: \(data)\n\n"
    }

    static func quoted(_ text: String) -> String {
        JSONValue.string(text).canonicalText
    }

    /// A snapshot's payload as proto JSON, by the type `realtime.proto` names for its
    /// topic; `null` for alarms (no payload) or bytes that do not decode.
    static func snapshotJSON(_ payload: [UInt8], of topic: Topic) -> String {
        let json: [UInt8]?
        switch topic {
        case .catalog: json = try? Stb_Catalog_V1_GetConfigResponse(serializedBytes: payload).jsonUTF8Bytes()
        case .rules: json = try? Stb_Rules_V1_ListRulesResponse(serializedBytes: payload).jsonUTF8Bytes()
        case .project: json = try? Stb_Project_V1_ProjectConfig(serializedBytes: payload).jsonUTF8Bytes()
        case .projects: json = try? Stb_Project_V1_ListProjectsResponse(serializedBytes: payload).jsonUTF8Bytes()
        case .alarms: json = nil
        }
        return json.map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }

    /// A delta's change event as proto JSON, by its upstream (alarms: the `Alarm`).
    static func changeEventJSON(_ event: [UInt8], upstream: String) -> String {
        let json: [UInt8]?
        switch upstream {
        case "catalog": json = try? Stb_Catalog_V1_ChangeEvent(serializedBytes: event).jsonUTF8Bytes()
        case "rules": json = try? Stb_Rules_V1_ChangeEvent(serializedBytes: event).jsonUTF8Bytes()
        case "project": json = try? Stb_Project_V1_ChangeEvent(serializedBytes: event).jsonUTF8Bytes()
        case "alarms": json = try? Stb_Gateway_V1_Alarm(serializedBytes: event).jsonUTF8Bytes()
        default: json = nil
        }
        return json.map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }
}
