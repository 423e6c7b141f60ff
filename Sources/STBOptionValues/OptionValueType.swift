import STBJSON

/// The type of a catalog option's value.
public enum OptionValueType: String, Sendable, Hashable, CaseIterable {
    case boolean
    case integer
    case string
    case `enum`

    /// Reads a value's text as the catalog stores it (an option's `default_value`) and
    /// gives its canonical form, so that one value has one text everywhere it is stored,
    /// hashed or compared:
    ///
    /// - boolean: `true` or `false`, nothing else (not `True`, `1`, `yes`);
    /// - integer: decimal digits with an optional sign, within 64 bits; written back
    ///   without a `+`, leading zeros or a negative zero (`+5`, `007`, `-0` → `5`, `7`, `0`);
    ///   no spaces, no other digits, no exponent;
    /// - string and enum: the text as given, within `TextLimit.stringValue` (an enum value
    ///   takes the spelling its constraints list: `OptionConstraints.canonical`).
    public func parse(_ text: String) throws(OptionValueProblem) -> OptionValue {
        switch self {
        case .boolean:
            switch text {
            case "true": return .boolean(true)
            case "false": return .boolean(false)
            default: throw .value("\(shown(text)) is not a boolean (true or false)")
            }
        case .integer:
            return .integer(try Self.integer(text))
        case .string, .enum:
            if let problem = TextLimit.stringValue.problem(text) { throw .value(problem) }
            return .string(text)
        }
    }

    /// Reads a value given as JSON (a selection's `value_json`): a boolean, an integer (a
    /// number with no fraction, within 64 bits: `5.0` is 5), or a string, as the type needs.
    public func value(fromJSON json: JSONValue) throws(OptionValueProblem) -> OptionValue {
        switch (self, json) {
        case (.boolean, .bool(let flag)):
            return .boolean(flag)
        case (.integer, .integer(let number)):
            return .integer(number)
        case (.integer, .double(let number)):
            guard number.rounded() == number else { throw .value("\(json.canonicalText) is not an integer") }
            // Doubles hold every integer exactly only up to 2^53; beyond that the text the
            // caller wrote was rounded already.
            guard abs(number) <= 9_007_199_254_740_992 else {
                throw .value("\(json.canonicalText) is out of range (write integers of more than 53 bits as plain digits)")
            }
            return .integer(Int64(number))
        case (.string, .string(let text)), (.enum, .string(let text)):
            if let problem = TextLimit.stringValue.problem(text) { throw .value(problem) }
            return .string(text)
        default:
            let wanted = self == .enum ? "a string (one of the enum's values)" : self == .boolean ? "a boolean" : self == .integer ? "an integer" : "a string"
            throw .value("must be \(wanted), not \(json.typeName)")
        }
    }

    // Int64(text) alone accepts a leading '+' and leading zeros; those are only spellings,
    // so they are read, and the canonical text is written back.
    static func integer(_ text: String) throws(OptionValueProblem) -> Int64 {
        let bytes = text.utf8
        var digits = bytes[...]
        if let first = digits.first, first == UInt8(ascii: "+") || first == UInt8(ascii: "-") { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw .value("\(shown(text)) is not an integer")
        }
        guard let number = Int64(text) else {
            throw .value("\(shown(text)) is out of range (\(Int64.min) to \(Int64.max))")
        }
        return number
    }
}

/// A typed option value.
public enum OptionValue: Sendable, Hashable, CustomStringConvertible {
    case boolean(Bool)
    case integer(Int64)
    /// A string or enum value.
    case string(String)

    /// The text the catalog stores (`true`, `80`, `1080p`).
    public var canonicalText: String {
        switch self {
        case .boolean(let flag): flag ? "true" : "false"
        case .integer(let number): String(number)
        case .string(let text): text
        }
    }

    /// As json-logic and selections see it (`true`, `80`, `"1080p"`).
    public var json: JSONValue {
        switch self {
        case .boolean(let flag): .bool(flag)
        case .integer(let number): .integer(number)
        case .string(let text): .string(text)
        }
    }

    /// For messages: integers and booleans bare, strings quoted (and shortened).
    public var description: String {
        switch self {
        case .string(let text): shown(text)
        default: canonicalText
        }
    }
}

/// A user's text quoted for a message, cut to its first 64 characters: values and
/// patterns can be long, and a message only needs to show which one it means.
func shown(_ text: String) -> String {
    if text.utf8.count <= 64 { return quoted(text) }
    return quoted(String(text.prefix(64))) + "…"
}
