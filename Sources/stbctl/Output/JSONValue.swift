import Foundation

/// A JSON value, read with `JSONDecoder` and written by hand so the output is stable:
/// keys sorted, two-space indentation, `"key": value`, and `{}` / `[]` when empty.
enum JSONValue: Sendable, Equatable, Decodable {
    case null
    case bool(Bool)
    case integer(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// The value of a JSON text; nil when it is not JSON.
    static func parse(_ text: String) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    /// A JSON text re-rendered on one line with sorted keys; as given when it is not JSON.
    static func compact(_ text: String) -> String {
        parse(text)?.rendered() ?? text
    }

    /// The members, when this is an object.
    var members: [String: JSONValue]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// JSON text: on one line without spaces, or indented when `pretty`.
    func rendered(pretty: Bool = false) -> String {
        var out = ""
        write(to: &out, pretty: pretty, indent: "")
        return out
    }

    /// A scalar as a person reads it: strings without quotes, everything else as JSON.
    var plainText: String {
        if case .string(let text) = self { return text }
        return rendered()
    }

    private func write(to out: inout String, pretty: Bool, indent: String) {
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .integer(let value): out += String(value)
        case .double(let value): out += value.isFinite ? "\(value)" : "null"
        case .string(let value): Self.quote(value, into: &out)
        case .array(let items):
            writeContainer(
                items.map { item in { (out: inout String, indent: String) in item.write(to: &out, pretty: pretty, indent: indent) } },
                open: "[", close: "]", to: &out, pretty: pretty, indent: indent)
        case .object(let members):
            writeContainer(
                members.keys.sorted().map { key in
                    { (out: inout String, indent: String) in
                        Self.quote(key, into: &out)
                        out += pretty ? ": " : ":"
                        members[key]!.write(to: &out, pretty: pretty, indent: indent)
                    }
                },
                open: "{", close: "}", to: &out, pretty: pretty, indent: indent)
        }
    }

    private func writeContainer(
        _ elements: [(inout String, String) -> Void], open: String, close: String,
        to out: inout String, pretty: Bool, indent: String
    ) {
        out += open
        guard !elements.isEmpty else {
            out += close
            return
        }
        let inner = indent + "  "
        for (index, element) in elements.enumerated() {
            if index > 0 { out += "," }
            if pretty { out += "\n" + inner }
            element(&out, inner)
        }
        if pretty { out += "\n" + indent }
        out += close
    }

    private static func quote(_ text: String, into out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { $1 }))
    }

    /// An integer of any width (clamped to Int64).
    static func number(_ value: some BinaryInteger) -> JSONValue { .integer(Int64(clamping: value)) }
}
