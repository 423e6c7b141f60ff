import Glibc
import STBJSON
import STBRPC

/// Serves the files under one directory at `/` (GET and HEAD): `/` is `index.html`; no
/// directory listings; a path that leaves the directory (`..`, an encoded slash, a
/// symbolic link pointing out) or names a hidden file is 404. Each answer carries the
/// content type by extension, `cache-control: no-cache` and a strong ETag (a hash of the
/// content), and a matching `if-none-match` gets 304.
///
/// Files are small (the dashboard's page, scripts and styles) and read whole per request,
/// from the page cache in practice.
public struct StaticFiles: Sendable {
    /// The directory served, resolved (no symbolic links).
    public let root: String
    /// Largest file served; a bigger one is 404.
    public var maximumFileSize = 8 << 20

    /// Serves `directory`; nil when it does not exist or is not a directory.
    public init?(directory: String) {
        guard let resolved = Self.realPath(directory), Self.isDirectory(resolved) else { return nil }
        root = resolved
    }

    static let contentTypes: [String: String] = [
        "html": "text/html; charset=utf-8",
        "js": "text/javascript; charset=utf-8",
        "mjs": "text/javascript; charset=utf-8",
        "css": "text/css; charset=utf-8",
        "svg": "image/svg+xml",
        "png": "image/png",
        "json": "application/json",
        "ico": "image/x-icon",
        "txt": "text/plain; charset=utf-8",
        "map": "application/json",
        "woff2": "font/woff2",
    ]

    /// Answers `request`.
    public func respond(to request: HTTPRequest) -> HTTPResponse {
        guard request.method == "GET" || request.method == "HEAD" else { return WebResponses.methodNotAllowed("GET, HEAD") }
        guard let relative = Self.relativePath(request.path) else { return WebResponses.notFound() }
        guard let file = read(relative) else { return WebResponses.notFound() }
        let dot = relative.lastIndex(of: ".")
        let ext = dot.map { String(relative[relative.index(after: $0)...]).lowercased() } ?? ""
        let etag = "\"" + String(SHA256.hex(SHA256.hash(file)).prefix(32)) + "\""
        var headers = [
            HTTPField("content-type", Self.contentTypes[ext] ?? "application/octet-stream"),
            HTTPField("cache-control", "no-cache"),
            HTTPField("etag", etag),
        ]
        headers += WebResponses.securityHeaders
        if let tags = request.header("if-none-match"), Self.matches(tags, etag) {
            return HTTPResponse(status: 304, headers: headers.filter { $0.name != "content-type" })
        }
        return HTTPResponse(status: 200, headers: headers, body: .bytes(file))
    }

    /// The file path below the root that `path` names (`index.html` for `/`); nil for
    /// anything that is not a plain relative path of visible names: a malformed or
    /// encoded-slash escape, an empty, `.` or `..` segment, a name starting with `.`, a
    /// backslash or a NUL.
    static func relativePath(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return nil }
        // %2F and %5C would turn into separators after decoding: refused outright.
        let lowered = path.lowercased()
        guard !lowered.contains("%2f"), !lowered.contains("%5c"), !lowered.contains("%00") else { return nil }
        guard let decoded = PercentDecoding.decode(path, plusIsSpace: false) else { return nil }
        if decoded == "/" { return "index.html" }
        guard !decoded.utf8.contains(0), !decoded.contains("\\") else { return nil }
        let segments = decoded.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        guard !segments.isEmpty else { return nil }
        for segment in segments {
            guard !segment.isEmpty, !segment.hasPrefix(".") else { return nil }
        }
        return segments.joined(separator: "/")
    }

    /// The bytes of the regular file at `relative` under the root, when its resolved path
    /// is still under the root.
    func read(_ relative: String) -> [UInt8]? {
        guard let resolved = Self.realPath(root + "/" + relative), resolved.hasPrefix(root + "/") else { return nil }
        let fd = open(resolved, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size <= maximumFileSize else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var filled = 0
        while filled < bytes.count {
            let count = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return nil }
            filled += count
        }
        return bytes
    }

    /// Whether an `if-none-match` value names `etag` (or is `*`); weak forms match too.
    static func matches(_ header: String, _ etag: String) -> Bool {
        for part in header.split(separator: ",") {
            var tag = part.trimmingPrefix(while: { $0 == " " || $0 == "\t" })
            while tag.last == " " || tag.last == "\t" { tag = tag.dropLast() }
            if tag == "*" { return true }
            if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }
            if tag == etag { return true }
        }
        return false
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }
}

extension Substring {
    fileprivate func trimmingPrefix(while predicate: (Character) -> Bool) -> Substring {
        var slice = self
        while let first = slice.first, predicate(first) { slice = slice.dropFirst() }
        return slice
    }
}
