/// Thrown when bytes are not a valid encoding of the expected message.
///
/// protobuf-c reports only that unpacking failed, not where, so the error
/// carries what is known: which message was expected and how much input there was.
public struct ProtoDecodingError: Error, Hashable, Sendable {
    /// Fully qualified proto name of the message being decoded.
    public var messageName: String
    /// Length of the rejected input.
    public var byteCount: Int

    /// Creates an error for `byteCount` bytes that did not decode as `messageName`.
    public init(messageName: String, byteCount: Int) {
        self.messageName = messageName
        self.byteCount = byteCount
    }
}

extension ProtoDecodingError: CustomStringConvertible {
    /// A one-line explanation, e.g. for logs.
    public var description: String {
        "cannot decode \(messageName) from \(byteCount) byte\(byteCount == 1 ? "" : "s"): malformed protobuf data"
    }
}
