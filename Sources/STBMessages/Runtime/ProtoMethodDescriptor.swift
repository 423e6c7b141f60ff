/// A method of a proto `service` known by its path at run time, with its message types
/// by proto name: for tools that pick a method from input (a load generator, a stub
/// server) rather than from a generated constant.
public struct ProtoMethodDescriptor: Sendable, Hashable {
    /// Whether each side sends one message or a stream of them.
    public enum Kind: String, Sendable, Hashable {
        /// One request, one response.
        case unary
        /// One request, a stream of responses.
        case serverStreaming
        /// A stream of requests, one response.
        case clientStreaming
        /// Streams both ways.
        case bidirectionalStreaming
    }

    /// The HTTP/2 `:path`, e.g. "/stb.testing.v1.Echo/Get".
    public let path: String
    /// How many messages each side sends.
    public let kind: Kind
    /// The request message's fully qualified proto name.
    public let requestType: String
    /// The response message's fully qualified proto name.
    public let responseType: String

    /// Creates a descriptor; generated code is the usual caller.
    public init(path: String, kind: Kind, requestType: String, responseType: String) {
        self.path = path
        self.kind = kind
        self.requestType = requestType
        self.responseType = responseType
    }

    /// The fully qualified service name: the path's first segment.
    public var serviceName: String {
        let trimmed = path.drop { $0 == "/" }
        return String(trimmed.prefix { $0 != "/" })
    }

    /// The method's name: the path's last segment.
    public var methodName: String {
        String(path[(path.lastIndex(of: "/").map(path.index(after:)) ?? path.startIndex)...])
    }

    /// The generated method with this path, if any.
    public static func named(path: String) -> ProtoMethodDescriptor? {
        byPath[path]
    }

    /// The generated methods of the service `name` (e.g. "stb.catalog.v1.Catalog").
    public static func methods(ofService name: String) -> [ProtoMethodDescriptor] {
        generated.filter { $0.serviceName == name }
    }

    private static let byPath: [String: ProtoMethodDescriptor] = Dictionary(
        generated.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
}

/// Conversions between the wire form and proto3 JSON for a message type chosen by name at
/// run time (`stb.catalog.v1.GetConfigRequest`): any message of `Protos/`.
public enum ProtoDynamicMessage {
    /// Whether the generated code has a message type named `name`.
    public static func isKnown(_ name: String) -> Bool {
        _protoJSONAnyType(named: name) != nil
    }

    /// The wire encoding of the JSON form of message type `name`; throws, naming the path
    /// and reason, for JSON that is not that type's, or for an unknown type.
    public static func wireEncoding(ofJSON json: [UInt8], type name: String) throws(ProtoJSONError) -> [UInt8] {
        guard let type = _protoJSONAnyType(named: name) else {
            throw ProtoJSONError(path: "", reason: "unknown message type \(name)")
        }
        // Array.withUnsafeBytes only rethrows `any Error`; a Result keeps the type.
        let result = json.withUnsafeBytes { raw -> Result<[UInt8], ProtoJSONError> in
            do throws(ProtoJSONError) {
                return .success(try type._jsonWireEncoding(ofJSON: raw))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// The compact JSON form of a wire encoding of message type `name`; nil when the bytes
    /// do not decode as one (or the type is unknown).
    public static func json(ofWireEncoding wire: [UInt8], type name: String) -> [UInt8]? {
        guard let type = _protoJSONAnyType(named: name) else { return nil }
        var buffer: [UInt8] = []
        return type._jsonWrite(wireEncoding: wire, into: &buffer) ? buffer : nil
    }
}

/// A message held in wire form, of whatever type the method says: requests and replies of
/// tools that carry messages they only know by name. JSON conversions go through
/// `ProtoDynamicMessage` with the method's type names.
public typealias ProtoWireMessage = ProtoEncodedMessage<ProtoUntypedShape>

/// The shape of a message whose type is not known here (see `ProtoWireMessage`): it has
/// no name, and so no JSON form of its own.
public enum ProtoUntypedShape: ProtoMessageShape {
    public static var protoMessageName: String { "" }
}
