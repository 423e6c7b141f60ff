/// The proto3 canonical JSON mapping of a message.
///
/// Generated messages conform: field names in lowerCamelCase on output (the proto
/// names are accepted on input too), 64-bit integers as strings, enums by name,
/// bytes as base64, unknown fields refused.
public protocol ProtoJSONMessage {
    /// Decodes a JSON document; throws, naming the field path, on anything that is not
    /// this message's JSON form.
    init(jsonUTF8 bytes: UnsafeRawBufferPointer) throws(ProtoJSONError)

    /// Appends the compact JSON form to `buffer`.
    func serializeJSON(into buffer: inout [UInt8])
}

/// Why a JSON document is not the JSON form of the expected message.
public struct ProtoJSONError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The refused value, from the decoded message down, with proto field names and
    /// element positions (`option.default_value`, `choices[3].key`); empty when the
    /// document as a whole is refused (not JSON, not an object, too deep).
    public var path: String
    /// What is wrong, readable by the caller: never internal detail.
    public var reason: String

    /// Creates an error for the value at `path`.
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    /// `path: reason`, or the reason alone for the whole document.
    public var description: String { path.isEmpty ? reason : "\(path): \(reason)" }
}

extension ProtoJSONMessage {
    /// Decodes a JSON document held in an array.
    public init(jsonUTF8 bytes: [UInt8]) throws(ProtoJSONError) {
        let result = bytes.withUnsafeBytes { raw -> Result<Self, ProtoJSONError> in
            do throws(ProtoJSONError) {
                return .success(try Self(jsonUTF8: raw))
            } catch {
                return .failure(error)
            }
        }
        self = try result.get()
    }

    /// The compact JSON form as a new array.
    public func jsonUTF8Bytes() -> [UInt8] {
        var bytes: [UInt8] = []
        serializeJSON(into: &bytes)
        return bytes
    }

    /// The compact JSON form as a string.
    public func jsonString() -> String {
        String(decoding: jsonUTF8Bytes(), as: UTF8.self)
    }
}

// Placeholder until the generator emits the mapping for every message: every
// message already has the API, so the RPC layer can be written against it.
extension ProtoMessage {
    public init(jsonUTF8 bytes: UnsafeRawBufferPointer) throws(ProtoJSONError) {
        throw ProtoJSONError(path: "", reason: "JSON is not supported for \(Self.protoMessageName) yet")
    }

    public func serializeJSON(into buffer: inout [UInt8]) {
        buffer.append(contentsOf: "{}".utf8)
    }
}
