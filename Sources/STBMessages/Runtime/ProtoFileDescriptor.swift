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
        guard let bytes = Base64.decode(base64.filter { $0 != "\n" && $0 != " " }) else {
            preconditionFailure("the embedded descriptor of \(name) is not base64")
        }
        self.init(
            name: name, dependencies: dependencies, messageTypes: messageTypes, otherSymbols: otherSymbols,
            extensions: extensions, serializedBytes: bytes)
    }
}
