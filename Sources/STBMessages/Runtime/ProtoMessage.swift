/// A protobuf message value with encode/decode through protobuf-c.
///
/// Generated types conform; handler code only sees Swift values, never the
/// protobuf-c structs they are converted to and from.
public protocol ProtoMessage: ProtoMessageShape, ProtoJSONMessage, Sendable, Hashable {
    /// Creates a message with every field at its default value.
    init()

    /// Decodes wire bytes; throws on malformed input.
    init(serializedBytes: UnsafeRawBufferPointer) throws(ProtoDecodingError)

    /// Appends the wire encoding to `buffer`.
    func serialize(into buffer: inout [UInt8])
}

/// A type that names a protobuf message: every `ProtoMessage`, and the shape a
/// `ProtoEncodedMessage` holds in wire form.
public protocol ProtoMessageShape {
    /// Fully qualified proto name, e.g. "stb.testing.v1.AllKinds"; empty for a message
    /// whose type is not known here (`ProtoUntypedShape`).
    static var protoMessageName: String { get }
}

extension ProtoMessage {
    /// Decodes wire bytes held in an array; throws on malformed input.
    public init(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        // Array.withUnsafeBytes only rethrows `any Error`; a Result keeps the type.
        let result = bytes.withUnsafeBytes { raw -> Result<Self, ProtoDecodingError> in
            do throws(ProtoDecodingError) {
                return .success(try Self(serializedBytes: raw))
            } catch {
                return .failure(error)
            }
        }
        self = try result.get()
    }

    /// The wire encoding as a new array.
    public func serializedBytes() -> [UInt8] {
        var bytes: [UInt8] = []
        serialize(into: &bytes)
        return bytes
    }
}
