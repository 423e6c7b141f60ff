/// The answer to a plain HTTP request: a status, header fields and either a whole body or
/// a stream of body chunks (server-sent events).
public struct HTTPResponse: Sendable {
    public enum Body: Sendable {
        /// The whole body; `content-length` is added when the headers do not have it.
        case bytes([UInt8])
        /// A body written in chunks as `produce` runs; the response ends when it returns
        /// or throws. The headers go first, before the first chunk. `produce` is cancelled
        /// when the client goes away (its writes then throw).
        case stream(@Sendable (HTTPBodyWriter) async throws -> Void)
    }

    public var status: Int
    /// Lowercase names; `:status` and `content-length` of a stream are the server's.
    public var headers: [HTTPField]
    public var body: Body

    public init(status: Int, headers: [HTTPField] = [], body: Body = .bytes([])) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A `text/plain; charset=utf-8` response.
    public static func text(_ status: Int, _ text: String, headers: [HTTPField] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [HTTPField("content-type", "text/plain; charset=utf-8")] + headers, body: .bytes(Array(text.utf8)))
    }
}

/// Writes the chunks of a streamed response body. Suspends while too much is queued for
/// a slow client (backpressure); throws once the response has ended (the client reset the
/// stream, or the connection closed).
public struct HTTPBodyWriter: Sendable {
    let write: @Sendable ([UInt8]) async throws -> Void

    /// A writer handing chunks to `write` (tests, adapters).
    public init(_ write: @escaping @Sendable ([UInt8]) async throws -> Void) {
        self.write = write
    }

    public func write(_ bytes: [UInt8]) async throws {
        try await write(bytes)
    }

    public func write(_ text: String) async throws {
        try await write(Array(text.utf8))
    }
}
