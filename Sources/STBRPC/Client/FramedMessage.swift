/// A request message already in gRPC's Length-Prefixed-Message framing: a request sent many
/// times (by a load generator, say) is framed once, and each call sends these bytes as they are.
public struct FramedMessage: Sendable {
    /// The 5-byte prefix followed by the message.
    let bytes: [UInt8]

    /// Frames `message` (a protobuf encoding).
    public init(_ message: [UInt8]) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(message.count + 5)
        appendFramedMessage(message, to: &bytes)
        self.bytes = bytes
    }

    /// The message's size, without the prefix.
    public var messageCount: Int { bytes.count - 5 }
}
