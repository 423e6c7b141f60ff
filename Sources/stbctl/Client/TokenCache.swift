import Foundation
import STBJSON
import STBMessages
import STBRPC

/// The session `stbctl login` keeps: the gateway's address, the access token and the
/// refresh token, in `$XDG_CONFIG_HOME/stbctl/token.json` (else
/// `~/.config/stbctl/token.json`), readable by the user alone (mode 0600). Commands
/// present the access token and, when it expires within a minute, exchange the refresh
/// token for a new pair first. `STB_TOKEN` overrides the file.
struct TokenCache {
    var gateway: String
    var username: String
    var accessToken: String
    var accessExpiresAtMs: Int64
    var refreshToken: String
    var refreshExpiresAtMs: Int64

    /// The file's path.
    static var path: String {
        let environment = ProcessInfo.processInfo.environment
        let base = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (environment["HOME"] ?? NSHomeDirectory()) + "/.config"
        return base + "/stbctl/token.json"
    }

    init(gateway: String, reply: Stb_Gateway_V1_LoginResponse) {
        self.gateway = gateway
        self.username = reply.user?.username ?? ""
        self.accessToken = reply.accessToken
        self.accessExpiresAtMs = reply.accessExpiresAtMs
        self.refreshToken = reply.refreshToken
        self.refreshExpiresAtMs = reply.refreshExpiresAtMs
    }

    /// The stored session, or nil when there is none (or the file is not one).
    static func load() -> TokenCache? {
        guard let data = FileManager.default.contents(atPath: path),
            let document = try? JSONValue.parse(String(decoding: data, as: UTF8.self)),
            let gateway = document["gateway"]?.stringValue, let access = document["access_token"]?.stringValue,
            let refresh = document["refresh_token"]?.stringValue
        else { return nil }
        var reply = Stb_Gateway_V1_LoginResponse()
        reply.accessToken = access
        reply.accessExpiresAtMs = document["access_expires_at_ms"]?.integerValue ?? 0
        reply.refreshToken = refresh
        reply.refreshExpiresAtMs = document["refresh_expires_at_ms"]?.integerValue ?? 0
        var cache = TokenCache(gateway: gateway, reply: reply)
        cache.username = document["username"]?.stringValue ?? ""
        return cache
    }

    /// Writes the session: a new file, mode 0600 from the start, renamed over the old one.
    func save() throws {
        let path = Self.path
        let folder = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let document: JSONValue = .object([
            "gateway": .string(gateway), "username": .string(username),
            "access_token": .string(accessToken), "access_expires_at_ms": .integer(accessExpiresAtMs),
            "refresh_token": .string(refreshToken), "refresh_expires_at_ms": .integer(refreshExpiresAtMs),
        ])
        let temporary = path + ".tmp"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw CommandFailure("cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let bytes = Array((document.rendered(pretty: true) + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw CommandFailure("cannot write \(path)")
        }
    }

    /// Removes the stored session.
    static func remove() {
        unlink(path)
    }

    /// Milliseconds since 1970.
    static var nowMs: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// This session with a usable access token: refreshed at the gateway (and saved)
    /// when it expires within a minute.
    func current(timeout: Duration) async throws -> TokenCache {
        guard accessExpiresAtMs - Self.nowMs < 60_000 else { return self }
        guard refreshExpiresAtMs > Self.nowMs else {
            throw CommandFailure("the session has expired; run `stbctl login`")
        }
        let reply: Stb_Gateway_V1_LoginResponse
        do {
            reply = try await GatewayClient.call(address: gateway, timeout: timeout) { client, metadata in
                var request = Stb_Gateway_V1_RefreshRequest()
                request.refreshToken = refreshToken
                return try await client.unary(Stb_Gateway_V1_Auth.refresh, request: request, metadata: metadata, timeout: timeout)
            }
        } catch let error as RPCError where error.code == .unauthenticated {
            Self.remove()
            throw CommandFailure("the session has ended (\(error.message)); run `stbctl login`")
        }
        var refreshed = TokenCache(gateway: gateway, reply: reply)
        if refreshed.username.isEmpty { refreshed.username = username }
        try refreshed.save()
        return refreshed
    }
}

/// The metadata a command's calls carry: `STB_TOKEN` when set, else the stored session's
/// access token (refreshed when it is about to expire), else none.
func sessionMetadata(timeout: Duration) async throws -> Metadata {
    let explicit = accessTokenMetadata()
    if !explicit.isEmpty { return explicit }
    guard let cache = TokenCache.load() else { return Metadata() }
    return Metadata.bearer(try await cache.current(timeout: timeout).accessToken)
}

/// Calls to the gateway.
enum GatewayClient {
    static let fallbackAddress = "127.0.0.1:50050"

    /// Runs `body` with a client for the gateway at `address` and the metadata every
    /// gateway call carries (the client's name for the activity log).
    static func call<Value: Sendable>(
        address: String, timeout: Duration, _ body: (RPCClient, Metadata) async throws -> Value
    ) async throws -> Value {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            throw CommandFailure("the gateway address '\(address)' is not host:port")
        }
        let client: RPCClient
        do {
            client = try RPCClient(host: String(address[..<colon]), port: port)
        } catch {
            throw CommandFailure("cannot start the RPC client: \(error)")
        }
        var metadata = Metadata()
        metadata.addString("stbctl", forKey: "stb-user-agent")
        do {
            let value = try await body(client, metadata)
            await client.close()
            return value
        } catch {
            await client.close()
            throw error
        }
    }
}
