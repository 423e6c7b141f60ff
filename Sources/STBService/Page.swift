import STBMessages
import STBPostgres
import STBRPC

/// One page of a list call (keyset pagination by row id): how many rows, after which id.
///
/// The page token is the last row's id in decimal, exactly as this service wrote it; any
/// other text is INVALID_ARGUMENT, never a guess.
public struct Page: Sendable, Equatable {
    /// Rows when the request names no size.
    public static let defaultSize = 100
    /// The most rows a page holds, whatever the request asks.
    public static let maxSize = 1000

    /// Rows on this page.
    public let size: Int
    /// The page starts after the row with this id (0: from the start).
    public let after: Int64

    public init(size: Int, after: Int64) {
        self.size = size
        self.after = after
    }

    /// The page a request's `page` asks for.
    public init(_ request: Stb_Common_V1_PageRequest?) throws(RPCError) {
        let requested = Int(request?.pageSize ?? 0)  // a UInt32: always fits
        let token = request?.pageToken ?? ""
        var after: Int64 = 0
        if !token.isEmpty {
            guard let parsed = Int64(token), parsed >= 0, String(parsed) == token else {
                throw invalidArgument(["page.page_token: not a token this service issued"])
            }
            after = parsed
        }
        self.init(size: requested == 0 ? Self.defaultSize : min(requested, Self.maxSize), after: after)
    }

    /// The reply's page info for `rows` (the page's rows, each with a `total` column
    /// counting every match): the total, and the next token when the page is full.
    public func info(_ rows: PostgresRows, lastID: Int64?) throws(PostgresError) -> Stb_Common_V1_PageInfo {
        var info = Stb_Common_V1_PageInfo()
        if let first = rows.first { info.total = UInt64(clamping: try first.decode("total", as: Int64.self)) }
        if rows.count == size, let lastID { info.nextPageToken = String(lastID) }
        return info
    }
}
