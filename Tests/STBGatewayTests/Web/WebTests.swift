import Glibc
import STBMessages
import STBRPC
import Testing

@testable import STBGateway

@Suite("The gateway's web routes: static files, cookies, server-sent events")
struct WebTests {
    // MARK: - Path sanitising

    @Test("plain relative paths are served; / is index.html", arguments: [
        ("/", "index.html"), ("/app.js", "app.js"), ("/sub/page.json", "sub/page.json"), ("/a%20b.css", "a b.css"),
        ("/x+y.js", "x+y.js"),
    ])
    func servedPaths(path: String, relative: String) {
        #expect(StaticFiles.relativePath(path) == relative)
    }

    @Test("escapes, hidden names and malformed paths are refused", arguments: [
        "/..", "/../etc/passwd", "/sub/../../x", "/%2e%2e/x", "/%2E%2E/x", "/sub/..%2f..%2fx", "/sub%2fpage.json",
        "/..%5cx", "/a\\b", "/.git/config", "/sub/.hidden", "/sub/", "/sub//x", "//x", "/%00", "/%zz", "/.", "/./x", "x",
        "",
    ])
    func refusedPaths(path: String) {
        #expect(StaticFiles.relativePath(path) == nil)
    }

    // MARK: - Serving a directory

    private func withSite(_ body: (String, StaticFiles) throws -> Void) throws {
        var template = Array("/tmp/stb-web-XXXXXX".utf8CString)
        let root = try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) })
        defer { _ = system("rm -rf '\(root)'") }
        mkdir(root + "/site", 0o755)
        mkdir(root + "/site/sub", 0o755)
        func write(_ path: String, _ text: String) {
            let file = fopen(path, "w")
            fputs(text, file)
            fclose(file)
        }
        write(root + "/site/index.html", "<!doctype html>")
        write(root + "/site/app.js", "1;")
        write(root + "/secret.txt", "secret")
        symlink(root + "/secret.txt", root + "/site/link.txt")
        symlink(root + "/site/app.js", root + "/site/inside.js")
        let files = try #require(StaticFiles(directory: root + "/site"))
        try body(root, files)
    }

    private func get(_ files: StaticFiles, _ path: String, method: String = "GET", headers: [HTTPField] = []) -> (HTTPResponse, String) {
        let response = files.respond(to: HTTPRequest(method: method, target: path, headers: headers))
        guard case .bytes(let body) = response.body else { return (response, "") }
        return (response, String(decoding: body, as: UTF8.self))
    }

    private func header(_ response: HTTPResponse, _ name: String) -> String? {
        response.headers.first { $0.name == name }?.value
    }

    @Test("files come with their type, no-cache, an ETag and the security headers; a matching If-None-Match is 304")
    func serving() throws {
        try withSite { _, files in
            let (index, body) = get(files, "/")
            #expect(index.status == 200 && body == "<!doctype html>")
            #expect(header(index, "content-type") == "text/html; charset=utf-8")
            #expect(header(index, "cache-control") == "no-cache")
            #expect(header(index, "x-frame-options") == "DENY")
            #expect(header(index, "content-security-policy")?.hasPrefix("default-src 'none'; script-src 'self';") == true)
            let (script, _) = get(files, "/app.js")
            #expect(header(script, "content-type") == "text/javascript; charset=utf-8")
            let etag = try #require(header(script, "etag"))
            #expect(get(files, "/app.js", headers: [HTTPField("if-none-match", etag)]).0.status == 304)
            #expect(get(files, "/app.js", headers: [HTTPField("if-none-match", "\"other\", W/\(etag)")]).0.status == 304)
            #expect(get(files, "/app.js", headers: [HTTPField("if-none-match", "\"other\"")]).0.status == 200)
            #expect(get(files, "/inside.js").0.status == 200)
            #expect(get(files, "/app.js", method: "POST").0.status == 405)
        }
    }

    @Test("a symbolic link out of the directory, a directory and a missing file are 404")
    func refusals() throws {
        try withSite { _, files in
            for path in ["/link.txt", "/sub", "/sub/", "/missing.js", "/../secret.txt"] {
                let (response, body) = get(files, path)
                #expect(response.status == 404, "\(path)")
                #expect(!body.contains("secret"), "\(path)")
                #expect(header(response, "x-content-type-options") == "nosniff", "\(path)")
            }
        }
    }

    // MARK: - Cookies

    @Test("cookies are HttpOnly and SameSite=Strict; Secure only over TLS, as the edge says")
    func cookies() {
        #expect(WebSessions.cookie("stb_access", "t", path: "/", maxAge: 600, secure: false)
            == "stb_access=t; Path=/; HttpOnly; SameSite=Strict; Max-Age=600")
        #expect(WebSessions.cookie("stb_refresh", "", path: "/auth", maxAge: -5, secure: true)
            == "stb_refresh=; Path=/auth; HttpOnly; SameSite=Strict; Max-Age=0; Secure")
        let overTLS = HTTPRequest(method: "POST", target: "/auth/login", headers: [HTTPField("x-forwarded-proto", "https")])
        #expect(WebSessions.isSecure(overTLS))
        #expect(!WebSessions.isSecure(HTTPRequest(method: "POST", target: "/auth/login")))
        #expect(WebResponses.isJSON(HTTPRequest(method: "POST", target: "/", headers: [HTTPField("content-type", "Application/JSON; charset=utf-8")])))
        #expect(!WebResponses.isJSON(HTTPRequest(method: "POST", target: "/", headers: [HTTPField("content-type", "text/plain")])))
    }

    // MARK: - Server-sent events

    @Test("Subscribe messages become events with ids and JSON data; heartbeats are comments")
    func frames() throws {
        var delta = Stb_Gateway_V1_Delta()
        delta.topic = "catalog"
        delta.upstream = "catalog"
        delta.cursor = "5:1"
        delta.entity = "module"
        delta.key = "video\"x"
        delta.action = "created"
        var change = Stb_Catalog_V1_ChangeEvent()
        change.revision = 5
        delta.event = try change.serializedBytes()
        var message = Stb_Gateway_V1_SubscribeEvent()
        message.resumeToken = "tok"
        message.kind = .delta(delta)
        #expect(ServerSentEvents.frame(message) == """
            event: delta
            id: tok
            data: {"topic":"catalog","upstream":"catalog","cursor":"5:1","entity":"module","key":"video\\"x","action":"created","event":{"revision":"5"}}


            """)
        var beat = Stb_Gateway_V1_Heartbeat()
        beat.atMs = 42
        message.kind = .heartbeat(beat)
        #expect(ServerSentEvents.frame(message) == ": heartbeat 42\n\n")
        var resync = Stb_Gateway_V1_ResyncRequired()
        resync.reason = "why"
        resync.topics = ["catalog"]
        message.kind = .resyncRequired(resync)
        #expect(ServerSentEvents.frame(message) == "event: resync\nid: tok\ndata: {\"reason\":\"why\",\"topics\":[\"catalog\"]}\n\n")
        var snapshot = Stb_Gateway_V1_Snapshot()
        snapshot.topic = "alarms"
        message.kind = .snapshot(snapshot)
        #expect(ServerSentEvents.frame(message) == "event: snapshot\nid: tok\ndata: {\"topic\":\"alarms\",\"payload\":null}\n\n")
        #expect(ServerSentEvents.error(RPCError(code: .resourceExhausted, message: "slow consumer"))
            == "event: error\ndata: {\"code\":\"resource_exhausted\",\"message\":\"slow consumer\"}\n\n")
    }
}
