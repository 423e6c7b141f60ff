import STBMessages

/// One header field of a plain HTTP request or response; names are lowercase.
public struct HTTPField: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// A plain HTTP request (not gRPC, not Connect) that a registered `HTTPRoutes` route
/// serves, with its whole body (up to `HTTPRoutes.maxBodySize`).
public struct HTTPRequest: Sendable {
    /// `GET`, `HEAD`, `POST`, …
    public var method: String
    /// The path without the query, as sent (percent-encoding kept).
    public var path: String
    /// What followed `?` in the request target, as sent; empty when nothing did.
    public var query: String
    /// The request's header fields (the content type among them), in order; pseudo-headers
    /// and the transport's own fields (`content-length`, `te`) are not listed.
    public var headers: [HTTPField]
    public var body: [UInt8]
    /// The peer's address, `host:port`.
    public var peer: String

    public init(method: String, target: String, headers: [HTTPField] = [], body: [UInt8] = [], peer: String = "") {
        self.method = method
        if let mark = target.firstIndex(of: "?") {
            path = String(target[..<mark])
            query = String(target[target.index(after: mark)...])
        } else {
            path = target
            query = ""
        }
        self.headers = headers
        self.body = body
        self.peer = peer
    }

    /// The first value of header `name` (lowercase), or nil.
    public func header(_ name: String) -> String? {
        headers.first { $0.name == name }?.value
    }

    /// Every value of header `name` (lowercase), in order.
    public func headers(_ name: String) -> [String] {
        headers.compactMap { $0.name == name ? $0.value : nil }
    }

    /// The query's `name=value` pairs, percent-decoded (`+` reads as a space); a pair that
    /// does not decode is left out.
    public var queryItems: [(name: String, value: String)] {
        query.split(separator: "&").compactMap { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = PercentDecoding.decode(parts[0]),
                let value = parts.count > 1 ? PercentDecoding.decode(parts[1]) : ""
            else { return nil }
            return (name, value)
        }
    }

    /// The value of query parameter `name`, or nil.
    public func queryItem(_ name: String) -> String? {
        queryItems.first { $0.name == name }?.value
    }

    /// The value of cookie `name` from the `cookie` header(s), or nil.
    public func cookie(_ name: String) -> String? {
        HTTPCookies.value(of: name, in: headers("cookie"))
    }
}

/// Percent-decoding of URL components.
public enum PercentDecoding {
    /// `text` with `%XX` decoded (and `+` as a space when `plusIsSpace`); nil when an escape
    /// is malformed or the result is not UTF-8.
    public static func decode(_ text: some StringProtocol, plusIsSpace: Bool = true) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(Hex.digit), let low = iterator.next().flatMap(Hex.digit) else { return nil }
                bytes.append(high << 4 | low)
            case UInt8(ascii: "+") where plusIsSpace:
                bytes.append(UInt8(ascii: " "))
            default:
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

}

/// Reading the `cookie` request header (RFC 6265 §5.4: `name=value` pairs separated by
/// `; `; HTTP/2 may split them over several fields).
public enum HTTPCookies {
    /// The value of the first cookie called `name` in `fields`, or nil.
    public static func value(of name: String, in fields: [String]) -> String? {
        for field in fields {
            for pair in field.split(separator: ";") {
                let trimmed = pair.drop { $0 == " " || $0 == "\t" }
                guard let equals = trimmed.firstIndex(of: "=") else { continue }
                if trimmed[..<equals].elementsEqual(name) {
                    var value = trimmed[trimmed.index(after: equals)...]
                    while value.last == " " || value.last == "\t" { value = value.dropLast() }
                    if value.count >= 2, value.first == "\"", value.last == "\"" { value = value.dropFirst().dropLast() }
                    return String(value)
                }
            }
        }
        return nil
    }
}
