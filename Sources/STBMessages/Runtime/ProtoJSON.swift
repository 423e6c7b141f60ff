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

// Message types written by hand over the wire form (a reply encoded once and sent many
// times, a request made of raw bytes) have the JSON form of the generated message with
// the same proto name, through its wire encoding. Generated messages have their own.
extension ProtoMessage {
    /// Decodes the JSON form of the generated message named `protoMessageName` and
    /// takes its wire encoding.
    public init(jsonUTF8 bytes: UnsafeRawBufferPointer) throws(ProtoJSONError) {
        guard let type = _protoJSONAnyType(named: Self.protoMessageName) else {
            throw ProtoJSONError(path: "", reason: "\(Self.protoMessageName) has no JSON form")
        }
        let wire = try type._jsonWireEncoding(ofJSON: bytes)
        do {
            self = try Self(serializedBytes: wire)
        } catch {
            throw ProtoJSONError(path: "", reason: "not a valid \(Self.protoMessageName)")
        }
    }

    /// Appends the JSON form of the generated message named `protoMessageName` decoded
    /// from this value's wire encoding (`{}` if it does not decode as one).
    public func serializeJSON(into buffer: inout [UInt8]) {
        guard let type = _protoJSONAnyType(named: Self.protoMessageName),
              type._jsonWrite(wireEncoding: serializedBytes(), into: &buffer)
        else {
            buffer.append(contentsOf: "{}".utf8)
            return
        }
    }
}

extension _ProtoJSONCodable {
    static func _jsonWireEncoding(ofJSON bytes: UnsafeRawBufferPointer) throws(ProtoJSONError) -> [UInt8] {
        let message: Self = try _ProtoJSONReader.decode(bytes)
        return message.serializedBytes()
    }

    static func _jsonWrite(wireEncoding: [UInt8], into buffer: inout [UInt8]) -> Bool {
        guard let message = try? Self(serializedBytes: wireEncoding) else {
            return false
        }
        message.serializeJSON(into: &buffer)
        return true
    }
}
