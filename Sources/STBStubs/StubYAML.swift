internal import CYAML
import STBJSON

/// Reads a stub file written in YAML (libyaml's parser) into the same JSON value a JSON
/// stub file gives, so both go through one check.
///
/// Strict on purpose: one document of mappings, sequences and scalars. Plain scalars take
/// the YAML 1.2 core schema's types (`null`, `~` and nothing are null; `true`/`false`;
/// decimal, `0x` and `0o` integers; decimals with an optional exponent), so `yes`, `on`
/// and `NO` stay strings; quoted and block scalars are strings. Refused, with the file,
/// the line and the reason: anchors and aliases, tags, merge keys (`<<`), keys that are
/// not scalars, keys given twice, more than one document, `.inf` and `.nan` (JSON has
/// neither), and nesting deeper than 100.
enum StubYAML {
    static let maximumDepth = 100

    static func parse(_ text: String, path: String) throws(StubError) -> JSONValue {
        let bytes = Array(text.utf8)
        let result: Result<JSONValue, StubError> = bytes.withUnsafeBufferPointer { buffer in
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) == 1 else { return .failure(StubError(path, "the YAML parser could not start")) }
            defer { yaml_parser_delete(&parser) }
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var reader = Reader(path: path)
            return Result { () throws(StubError) in try reader.read(&parser) }
        }
        return try result.get()
    }

    /// Builds the value from the parser's events.
    private struct Reader {
        enum Frame {
            case sequence([JSONValue])
            case mapping([String: JSONValue], key: String?)
        }

        let path: String
        var stack: [Frame] = []
        var root: JSONValue?
        var documents = 0

        init(path: String) { self.path = path }

        func error(_ line: Int, _ reason: String) -> StubError {
            StubError("\(path):\(line)", reason)
        }

        mutating func read(_ parser: inout yaml_parser_t) throws(StubError) -> JSONValue {
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    let problem = parser.problem.map { String(cString: $0) } ?? "not YAML"
                    throw error(Int(parser.problem_mark.line) + 1, "not YAML: \(problem)")
                }
                defer { yaml_event_delete(&event) }
                let line = Int(event.start_mark.line) + 1
                switch event.type {
                case YAML_STREAM_START_EVENT, YAML_DOCUMENT_END_EVENT, YAML_NO_EVENT:
                    continue
                case YAML_STREAM_END_EVENT:
                    return root ?? .null
                case YAML_DOCUMENT_START_EVENT:
                    documents += 1
                    guard documents == 1 else { throw error(line, "one document per stub file (a second starts here)") }
                case YAML_ALIAS_EVENT:
                    throw error(line, "aliases (*name) are not supported: write the value out")
                case YAML_SCALAR_EVENT:
                    let scalar = event.data.scalar
                    try refuseAnchorAndTag(scalar.anchor, scalar.tag, line: line)
                    let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: Int(scalar.length)), as: UTF8.self)
                    let value = scalar.style == YAML_PLAIN_SCALAR_STYLE ? try Self.resolve(text, line: line, reader: self) : .string(text)
                    try add(value, key: text, line: line)
                case YAML_SEQUENCE_START_EVENT:
                    try refuseAnchorAndTag(event.data.sequence_start.anchor, event.data.sequence_start.tag, line: line)
                    try push(.sequence([]), line: line)
                case YAML_MAPPING_START_EVENT:
                    try refuseAnchorAndTag(event.data.mapping_start.anchor, event.data.mapping_start.tag, line: line)
                    try push(.mapping([:], key: nil), line: line)
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    switch stack.removeLast() {
                    case .sequence(let items): try add(.array(items), key: nil, line: line)
                    case .mapping(let members, _): try add(.object(members), key: nil, line: line)
                    }
                default:
                    throw error(line, "an unexpected YAML event")
                }
            }
        }

        func refuseAnchorAndTag(_ anchor: UnsafeMutablePointer<yaml_char_t>?, _ tag: UnsafeMutablePointer<yaml_char_t>?, line: Int) throws(StubError) {
            if anchor != nil { throw error(line, "anchors (&name) are not supported: write the value out") }
            if let tag {
                throw error(line, "tags (\(String(cString: tag))) are not supported: a value's type comes from how it is written")
            }
        }

        mutating func push(_ frame: Frame, line: Int) throws(StubError) {
            if case .mapping(_, nil)? = stack.last { throw error(line, "a key must be a scalar, not a list or a mapping") }
            guard stack.count < StubYAML.maximumDepth else { throw error(line, "nested deeper than \(StubYAML.maximumDepth)") }
            stack.append(frame)
        }

        /// Adds a finished value to the collection being read; `key` is a scalar's text (a
        /// mapping key keeps it as written).
        mutating func add(_ value: JSONValue, key: String?, line: Int) throws(StubError) {
            guard let top = stack.popLast() else {
                root = value
                return
            }
            switch top {
            case .sequence(var items):
                items.append(value)
                stack.append(.sequence(items))
            case .mapping(let members, nil):
                guard let key else { throw error(line, "a key must be a scalar, not a list or a mapping") }
                if key == "<<" { throw error(line, "merge keys (<<) are not supported: write the members out") }
                if members[key] != nil { throw error(line, "the key \(key) is given twice in this mapping") }
                stack.append(.mapping(members, key: key))
            case .mapping(var members, let pending?):
                members[pending] = value
                stack.append(.mapping(members, key: nil))
            }
        }

        /// A plain scalar's value under the YAML 1.2 core schema.
        static func resolve(_ text: String, line: Int, reader: Reader) throws(StubError) -> JSONValue {
            switch text {
            case "", "~", "null", "Null", "NULL": return .null
            case "true", "True", "TRUE": return .bool(true)
            case "false", "False", "FALSE": return .bool(false)
            case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN":
                throw reader.error(line, "\(text) has no JSON form")
            default: break
            }
            let utf8 = Array(text.utf8)
            let isDigit = { (byte: UInt8) in byte >= 0x30 && byte <= 0x39 }
            let unsigned = utf8.first == 0x2B || utf8.first == 0x2D ? Array(utf8.dropFirst()) : utf8
            if !unsigned.isEmpty, unsigned.allSatisfy(isDigit) {
                guard let number = Int64(text.hasPrefix("+") ? String(text.dropFirst()) : text) else {
                    throw reader.error(line, "\(text) is out of the 64-bit integer range")
                }
                return .integer(number)
            }
            if text.hasPrefix("0x") || text.hasPrefix("0o"), utf8.count > 2 {
                if let number = Int64(String(text.dropFirst(2)), radix: text.hasPrefix("0x") ? 16 : 8) { return .integer(number) }
            }
            if Self.isDecimal(unsigned), let number = Double(text) { return .double(number) }
            return .string(text)
        }

        /// `1.5`, `.5`, `2.`, `1e3`, `1.5E-3`: the core schema's floats (no sign here).
        static func isDecimal(_ bytes: [UInt8]) -> Bool {
            var index = 0
            var digits = 0
            while index < bytes.count, bytes[index] >= 0x30 && bytes[index] <= 0x39 { index += 1; digits += 1 }
            if index < bytes.count, bytes[index] == 0x2E {
                index += 1
                while index < bytes.count, bytes[index] >= 0x30 && bytes[index] <= 0x39 { index += 1; digits += 1 }
            }
            guard digits > 0 else { return false }
            if index < bytes.count, bytes[index] == 0x65 || bytes[index] == 0x45 {
                index += 1
                if index < bytes.count, bytes[index] == 0x2B || bytes[index] == 0x2D { index += 1 }
                let start = index
                while index < bytes.count, bytes[index] >= 0x30 && bytes[index] <= 0x39 { index += 1 }
                guard index > start else { return false }
            }
            return index == bytes.count
        }
    }
}
