/// A message of type `Shape` kept in its wire form: a reply encoded once and sent many
/// times, or a request read straight from its bytes. Its name, and so its JSON form, are
/// `Shape`'s (see `ProtoMessage.serializeJSON`); with `ProtoUntypedShape` it is a
/// `ProtoWireMessage`, whose type only the method knows.
public struct ProtoEncodedMessage<Shape: ProtoMessageShape>: ProtoMessage {
    /// The wire encoding.
    public var bytes: [UInt8] = []

    /// An empty message (every field at its default).
    public init() {}

    /// A message with the wire encoding `bytes`.
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// Keeps the bytes as they are; they are decoded only where their type is known.
    public init(serializedBytes: UnsafeRawBufferPointer) throws(ProtoDecodingError) {
        bytes = Array(serializedBytes)
    }

    /// Appends the bytes as they are; into an empty buffer (`serializedBytes()`), shares
    /// them without a copy.
    public func serialize(into buffer: inout [UInt8]) {
        if buffer.isEmpty {
            buffer = bytes
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    public static var protoMessageName: String { Shape.protoMessageName }
}
