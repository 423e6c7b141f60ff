/// One .proto file as server reflection hands it out: its serialized
/// `google.protobuf.FileDescriptorProto` and the names it defines.
///
/// `scripts/gen-messages` embeds one for every file the messages come from
/// (`ProtoFileDescriptor.generated`); `ProtoDescriptorIndex` finds them by name and
/// symbol.
public struct ProtoFileDescriptor: Sendable, Hashable {
    /// An extension field a file defines.
    public struct Extension: Sendable, Hashable {
        /// The fully qualified message type it extends, without a leading dot.
        public var extendee: String
        /// Its field number.
        public var number: Int32

        /// Creates an extension entry; generated code is the usual caller.
        public init(extendee: String, number: Int32) {
            self.extendee = extendee
            self.number = number
        }
    }

    /// The file's name as imports spell it, e.g. `stb/catalog/v1/catalog.proto`.
    public let name: String
    /// The files it imports, by name.
    public let dependencies: [String]
    /// Fully qualified names of its messages, nested ones included.
    public let messageTypes: [String]
    /// Fully qualified names of everything else it defines: enums and their values,
    /// fields, oneofs, services, methods, extensions.
    public let otherSymbols: [String]
    /// The extensions it defines.
    public let extensions: [Extension]
    /// The serialized `google.protobuf.FileDescriptorProto`.
    public let serializedBytes: [UInt8]

    /// Creates a descriptor from its serialized bytes.
    public init(
        name: String, dependencies: [String], messageTypes: [String], otherSymbols: [String],
        extensions: [Extension], serializedBytes: [UInt8]
    ) {
        self.name = name
        self.dependencies = dependencies
        self.messageTypes = messageTypes
        self.otherSymbols = otherSymbols
        self.extensions = extensions
        self.serializedBytes = serializedBytes
    }

    /// Creates a descriptor from base64 text (line breaks allowed), as generated code
    /// embeds it. The text is the generator's output, so bad base64 is a defect.
    public init(
        name: String, dependencies: [String], messageTypes: [String], otherSymbols: [String],
        extensions: [Extension], base64: String
    ) {
        guard let bytes = decodeBase64(base64) else {
            preconditionFailure("the embedded descriptor of \(name) is not base64")
        }
        self.init(
            name: name, dependencies: dependencies, messageTypes: messageTypes, otherSymbols: otherSymbols,
            extensions: extensions, serializedBytes: bytes)
    }
}

/// Decodes standard base64, skipping line breaks and spaces; nil for anything else
/// outside the alphabet.
private func decodeBase64(_ text: String) -> [UInt8]? {
    var out: [UInt8] = []
    out.reserveCapacity(text.utf8.count * 3 / 4)
    var accumulator: UInt32 = 0
    var bits = 0
    for byte in text.utf8 {
        let value: UInt8
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): value = 62
        case UInt8(ascii: "/"): value = 63
        case UInt8(ascii: "="), UInt8(ascii: "\n"), UInt8(ascii: " "): continue
        default: return nil
        }
        accumulator = accumulator << 6 | UInt32(value)
        bits += 6
        if bits >= 8 {
            bits -= 8
            out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
        }
    }
    return out
}
