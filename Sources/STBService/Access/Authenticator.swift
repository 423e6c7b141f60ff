import Glibc
import STBAuth
import STBRPC

/// Verifies the access tokens callers present: signature by `kid` against the key
/// source, issuer, audience and validity period (with a small leeway), through a cache so
/// that a token is verified once and then only looked up. No network call per request;
/// only a token naming an unknown `kid` asks the key source to refetch (rate-limited).
public final class Authenticator: Sendable {
    /// How many verified tokens are remembered.
    public static let defaultCacheCapacity = 10_000

    public let keySource: any VerificationKeySource
    /// Accepted clock skew for `exp` and `nbf`, in seconds.
    public let leeway: Int64
    /// How many `authorization` headers `cachedClaims` remembers by their bytes.
    public static let defaultRecentHeaderSlots = 1024

    private let cache: VerifiedTokenCache
    /// In front of `cache` for `cachedClaims`: a repeat caller's header found without
    /// digesting its token.
    private let recentHeaders: RecentHeaderCache
    private let clock: @Sendable () -> Int64

    /// `clock` gives the current time in seconds since 1970 (tests move it).
    /// `recentHeaderSlots`: how many headers `cachedClaims` remembers (rounded up to a
    /// power of two; two headers may compete for one slot).
    public init(
        keys keySource: any VerificationKeySource, leeway: Int64 = 30, cacheCapacity: Int = Authenticator.defaultCacheCapacity,
        recentHeaderSlots: Int = Authenticator.defaultRecentHeaderSlots,
        clock: @escaping @Sendable () -> Int64 = { Int64(time(nil)) }
    ) {
        self.keySource = keySource
        self.leeway = leeway
        self.cache = VerifiedTokenCache(capacity: cacheCapacity)
        self.recentHeaders = RecentHeaderCache(slotCount: recentHeaderSlots)
        self.clock = clock
    }

    /// The verified claims of `token`.
    public func verify(_ token: some StringProtocol) async throws(TokenError) -> AccessClaims {
        let now = clock()
        let digest = TokenDigest(of: token)
        if let claims = cache.claims(for: digest, now: now) { return claims }
        let text = String(token)
        let claims: AccessClaims
        do {
            claims = try AccessToken.verify(text, keys: keySource.keys, now: now, leeway: leeway)
        } catch .unknownKey {
            await keySource.refreshForUnknownKey()
            claims = try AccessToken.verify(text, keys: keySource.keys, now: now, leeway: leeway)
        }
        cache.insert(claims, for: digest, now: now)
        return claims
    }

    /// The cookie a browser's session carries its access token in (set by the gateway's
    /// `/auth/login`).
    public static let accessCookie = "stb_access"

    /// The verified claims of the bearer token in `metadata`'s `authorization`; an
    /// UNAUTHENTICATED status (saying why, never repeating the token) otherwise. With
    /// `allowingCookie` (Connect calls: a browser's `fetch`), a call without
    /// `authorization` may carry the token in the `stb_access` cookie instead; gRPC calls
    /// never do, nor can an HTML form post a Connect call.
    public func authenticate(_ metadata: Metadata, allowingCookie: Bool = false) async throws(RPCError) -> AccessClaims {
        let header = metadata.firstString(forKey: Metadata.authorizationKey)
        let token = try Self.presentedToken(header: header, metadata, allowingCookie: allowingCookie)
        do {
            return try await verify(token)
        } catch {
            throw Self.unauthenticated(Self.reason(error), error.description)
        }
    }

    /// `authenticate` without waiting: the claims of a token verified before and still
    /// valid, a cache look-up; nil when the token must be verified first. A missing or
    /// malformed token is refused as `authenticate` refuses it.
    ///
    /// A header seen here before is found by its bytes (`RecentHeaderCache`); only its
    /// first look-up digests the token.
    public func cachedClaims(_ metadata: Metadata, allowingCookie: Bool = false) throws(RPCError) -> AccessClaims? {
        let now = clock()
        let header = metadata.firstString(forKey: Metadata.authorizationKey)
        // Only a header that parsed and whose token was verified is remembered, so a hit
        // needs no parsing: a malformed header never gets here and is refused below.
        if let header, let claims = recentHeaders.claims(forHeader: header, now: now) { return claims }
        let token = try Self.presentedToken(header: header, metadata, allowingCookie: allowingCookie)
        guard let claims = cache.claims(for: TokenDigest(of: token), now: now) else { return nil }
        if let header { recentHeaders.remember(claims, forHeader: header) }
        return claims
    }

    /// The token a call presents: the bearer token of `authorization` (`header`), or (with
    /// `allowingCookie`, and no `authorization`) the `stb_access` cookie's.
    private static func presentedToken(header: String?, _ metadata: Metadata, allowingCookie: Bool) throws(RPCError) -> Substring {
        guard let header else {
            if allowingCookie, let token = HTTPCookies.value(of: Self.accessCookie, in: metadata.strings(forKey: "cookie")), !token.isEmpty {
                return Substring(token)
            }
            throw Self.unauthenticated("TOKEN_MISSING", "an access token is required (authorization: Bearer <token>)")
        }
        guard let token = Self.bearerToken(header) else {
            throw Self.unauthenticated("TOKEN_MALFORMED", "the authorization header is not `Bearer <token>`")
        }
        return token
    }

    /// The number of tokens the cache holds now.
    public var cachedTokenCount: Int { cache.count }

    /// The token of `Bearer <token>` (the scheme in any case, RFC 7235), without
    /// surrounding blanks; nil for another scheme or an empty token.
    public static func bearerToken(_ header: String) -> Substring? {
        let utf8 = header.utf8
        var index = utf8.startIndex
        for letter in "bearer".utf8 {
            guard index != utf8.endIndex, utf8[index] | 0x20 == letter else { return nil }
            index = utf8.index(after: index)
        }
        func isBlank(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        guard index != utf8.endIndex, isBlank(utf8[index]) else { return nil }
        while index != utf8.endIndex, isBlank(utf8[index]) { index = utf8.index(after: index) }
        var end = utf8.endIndex
        while end > index, isBlank(utf8[utf8.index(before: end)]) { end = utf8.index(before: end) }
        guard index < end else { return nil }
        return header[index..<end]
    }

    /// The `ErrorInfo` reason for a refused token.
    static func reason(_ error: TokenError) -> String {
        switch error {
        case .malformed: "TOKEN_MALFORMED"
        case .unsupportedAlgorithm: "TOKEN_ALGORITHM"
        case .unknownKey: "TOKEN_UNKNOWN_KEY"
        case .badSignature: "TOKEN_BAD_SIGNATURE"
        case .expired: "TOKEN_EXPIRED"
        case .notYetValid: "TOKEN_NOT_YET_VALID"
        case .wrongIssuer: "TOKEN_WRONG_ISSUER"
        case .wrongAudience: "TOKEN_WRONG_AUDIENCE"
        case .unknownRole: "TOKEN_UNKNOWN_ROLE"
        }
    }

    static func unauthenticated(_ reason: String, _ message: String) -> RPCError {
        RPCError(code: .unauthenticated, message: message, details: [.errorInfo(reason: reason)])
    }
}
