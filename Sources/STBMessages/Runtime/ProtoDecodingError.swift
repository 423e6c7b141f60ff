/// Thrown when bytes are not a valid encoding of the expected message.
///
/// protobuf-c reports only that unpacking failed, not where, so a malformed
/// input carries what is known: which message was expected and how much input
/// there was. A `string` field that is not valid UTF-8 or holds a NUL character
/// is refused by the Swift glue, which knows the field: `fieldPath` names it.
public struct ProtoDecodingError: Error, Hashable, Sendable {
    /// What was wrong with the input. Extensible: more codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// A short name for logs, e.g. `invalidUTF8`.
        public let name: String

        private init(_ name: String) { self.name = name }

        /// Not protobuf wire format for the message (truncated, bad tags, wrong wire types).
        public static let malformed = Code("malformed")
        /// A `string` field whose bytes are not valid UTF-8 (proto3 requires it).
        public static let invalidUTF8 = Code("invalidUTF8")
        /// A `string` field containing U+0000, which nothing downstream keeps intact.
        public static let nulCharacter = Code("nulCharacter")

        /// The code's name.
        public var description: String { name }
    }

    /// What was wrong.
    public var code: Code
    /// Fully qualified proto name of the message being decoded.
    public var messageName: String
    /// Length of the rejected input.
    public var byteCount: Int
    /// The refused field, from the decoded message down, with proto field names and
    /// element positions: `option.name`, `selection.choices[3].key`. Nil when the
    /// input is malformed.
    public var fieldPath: String?

    /// Creates an error for `byteCount` bytes that did not decode as `messageName`.
    public init(messageName: String, byteCount: Int) {
        self.init(code: .malformed, messageName: messageName, byteCount: byteCount, fieldPath: nil)
    }

    /// Creates an error with a specific code, naming the refused field when known.
    public init(code: Code, messageName: String, byteCount: Int, fieldPath: String?) {
        self.code = code
        self.messageName = messageName
        self.byteCount = byteCount
        self.fieldPath = fieldPath
    }
}

extension ProtoDecodingError: CustomStringConvertible {
    /// A one-line explanation that is safe to show a caller: the field and the problem
    /// (`option.key: contains a NUL character`), or that the data is malformed.
    public var description: String {
        switch code {
        case .invalidUTF8:
            "\(fieldPath ?? messageName): not valid UTF-8"
        case .nulCharacter:
            "\(fieldPath ?? messageName): contains a NUL character"
        default:
            "cannot decode \(messageName) from \(byteCount) byte\(byteCount == 1 ? "" : "s"): malformed protobuf data"
        }
    }
}
