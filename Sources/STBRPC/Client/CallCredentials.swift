/// Metadata a client adds to every call it starts, asked for at each call: how a client
/// presents who it is (`authorization: Bearer <token>`) without each call site doing it.
///
/// A call whose own metadata already carries `authorization` (a service forwarding its
/// caller's token) keeps it; the credentials are not added.
public protocol CallCredentials: Sendable {
    /// The metadata for the next call; throwing fails the call before it is sent.
    func metadata() async throws -> Metadata
}

/// A fixed bearer token.
public struct BearerCredentials: CallCredentials {
    public let token: String

    public init(token: String) {
        self.token = token
    }

    public func metadata() async throws -> Metadata {
        Metadata.bearer(token)
    }
}

extension Metadata {
    /// The metadata key access tokens travel in.
    public static let authorizationKey = "authorization"

    /// `authorization: Bearer <token>`.
    public static func bearer(_ token: String) -> Metadata {
        var metadata = Metadata()
        metadata.addString("Bearer \(token)", forKey: authorizationKey)
        return metadata
    }

    /// This metadata with the caller's `authorization` from `incoming` added: a service
    /// acting for a user forwards the user's token on its own outgoing call.
    public func forwardingAuthorization(from incoming: Metadata) -> Metadata {
        var metadata = self
        for value in incoming.strings(forKey: Self.authorizationKey) where metadata.firstString(forKey: Self.authorizationKey) == nil {
            metadata.addString(value, forKey: Self.authorizationKey)
        }
        return metadata
    }
}
