import STBJSON

/// RFC 8785 (JSON Canonicalization Scheme) text of a value, as configuration hashes and
/// the audit chain use it.
enum CanonicalJSON {
    /// The canonical text of `value`. RFC 8785 numbers are IEEE doubles: an integer beyond
    /// ±(2^53 − 1), which no JSON peer reads exactly, is written as its decimal string
    /// (option values are refused beyond that range; only an old catalog default can be).
    static func text(_ value: JSONValue) -> String {
        if let text = try? value.jcsText() { return text }
        // jcsText refuses only out-of-range integers and non-finite doubles (which the
        // JSON parser never produces).
        return (try? safe(value).jcsText()) ?? value.canonicalText
    }

    static func safe(_ value: JSONValue) -> JSONValue {
        switch value {
        case .integer(let number) where abs(number) > JSONValue.jcsMaxSafeInteger: .string(String(number))
        case .array(let items): .array(items.map(safe))
        case .object(let members): .object(members.mapValues(safe))
        default: value
        }
    }

    /// Whether `value` is written exactly by RFC 8785.
    static func isExact(_ value: JSONValue) -> Bool {
        (try? value.jcsBytes()) != nil
    }
}
