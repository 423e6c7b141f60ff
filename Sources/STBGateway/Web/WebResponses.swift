import STBJSON
import STBMessages
import STBRPC

/// What every response of the gateway's web routes has in common: the security headers,
/// and errors as JSON `{"code","message"}` with Connect's code names.
enum WebResponses {
    /// Sent with every response of the web routes (static files, `/auth/*`, `/events`).
    static let securityHeaders: [HTTPField] = [
        HTTPField(
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
                + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
        HTTPField("x-content-type-options", "nosniff"),
        HTTPField("referrer-policy", "no-referrer"),
        HTTPField("x-frame-options", "DENY"),
    ]

    /// A JSON response with `body`, never cached.
    static func json(_ status: Int, _ body: JSONValue, headers: [HTTPField] = []) -> HTTPResponse {
        json(status, text: body.canonicalText, headers: headers)
    }

    static func json(_ status: Int, text: String, headers: [HTTPField] = []) -> HTTPResponse {
        HTTPResponse(
            status: status,
            headers: [HTTPField("content-type", "application/json"), HTTPField("cache-control", "no-store")] + securityHeaders + headers,
            body: .bytes(Array(text.utf8)))
    }

    /// An error: the HTTP status Connect gives its code, `{"code","message"}`, and for
    /// RESOURCE_EXHAUSTED with a retry delay, `retry-after`.
    static func error(_ error: RPCError, headers: [HTTPField] = []) -> HTTPResponse {
        var extra = headers
        for detail in error.details {
            if case .retryInfo(let info) = detail, let delay = info.retryDelay {
                let seconds = max(1, delay.seconds + (delay.nanos > 0 ? 1 : 0))
                extra.append(HTTPField("retry-after", String(seconds)))
            }
        }
        return json(error.connectHTTPStatus, errorBody(code: error.connectCodeName, message: error.message), headers: extra)
    }

    /// An error with an HTTP status of its own (415, 405, 400).
    static func error(_ status: Int, code: String, _ message: String, headers: [HTTPField] = []) -> HTTPResponse {
        json(status, errorBody(code: code, message: message), headers: headers)
    }

    static func errorBody(code: String, message: String) -> JSONValue {
        ["code": .string(code), "message": .string(message)]
    }

    /// 404 as plain text.
    static func notFound() -> HTTPResponse {
        .text(404, "not found\n", headers: securityHeaders)
    }

    /// 405 naming the methods allowed.
    static func methodNotAllowed(_ allowed: String) -> HTTPResponse {
        .text(405, "method not allowed\n", headers: securityHeaders + [HTTPField("allow", allowed)])
    }

    /// Whether the request's content type is `application/json` (parameters allowed).
    static func isJSON(_ request: HTTPRequest) -> Bool {
        guard let type = request.header("content-type") else { return false }
        let bare = type.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: " \t") } ?? ""
        return bare.lowercased() == "application/json"
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var slice = self
        while let first = slice.first, set.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}
