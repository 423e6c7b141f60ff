import STBJSON

/// RFC 8785 (JSON Canonicalization Scheme) text of a value.
enum CanonicalJSON {
    static func text(_ value: JSONValue) -> String {
        value.canonicalText
    }
}
