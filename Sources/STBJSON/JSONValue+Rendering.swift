/// JSON for people: the same sorted keys as `canonicalText`, optionally indented.
extension JSONValue {
    /// JSON text with sorted keys: `canonicalText` on one line, or two-space indented with
    /// `"key": value` when `pretty` (`{}` and `[]` when empty).
    public func rendered(pretty: Bool = false) -> String {
        guard pretty else { return canonicalText }
        var output = ""
        writeIndented(to: &output, indent: "")
        return output
    }

    /// A scalar as a person reads it: strings without quotes, everything else as JSON.
    public var plainText: String {
        if case .string(let text) = self { return text }
        return canonicalText
    }

    /// `text` re-rendered on one line with sorted keys; as given when it is not JSON.
    public static func compact(_ text: String) -> String {
        (try? parse(text))?.canonicalText ?? text
    }

    /// An integer of any width (clamped to Int64).
    public static func number(_ value: some BinaryInteger) -> JSONValue { .integer(Int64(clamping: value)) }

    private func writeIndented(to output: inout String, indent: String) {
        let inner = indent + "  "
        switch self {
        case .array(let values) where !values.isEmpty:
            output += "["
            for (index, value) in values.enumerated() {
                output += index > 0 ? ",\n" + inner : "\n" + inner
                value.writeIndented(to: &output, indent: inner)
            }
            output += "\n" + indent + "]"
        case .object(let members) where !members.isEmpty:
            output += "{"
            for (index, key) in members.keys.sorted().enumerated() {
                output += index > 0 ? ",\n" + inner : "\n" + inner
                Self.writeString(key, to: &output)
                output += ": "
                members[key]!.writeIndented(to: &output, indent: inner)
            }
            output += "\n" + indent + "}"
        default:
            output += canonicalText
        }
    }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { $1 }))
    }
}
