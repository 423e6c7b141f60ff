import STBJSON
import STBOptionValues

/// When a stub answers: tests on the decoded request (proto3 JSON field paths such as
/// `selection.choices[0].key`) and on its metadata, combined with AND, OR and NOT.
///
/// A field at its default value is absent from proto3 JSON: it does not EXIST, and a
/// comparison with it is false (NOT_EQUALS and NOT_CONTAINS are true).
indirect enum StubCondition: Sendable {
    case all([StubCondition])
    case any([StubCondition])
    case not(StubCondition)
    case test(Subject, Operator, Expected)

    /// What a test reads.
    enum Subject: Sendable, CustomStringConvertible {
        case field([PathStep])
        case metadata(String)

        var description: String {
            switch self {
            case .field(let steps): "field " + steps.map(\.description).joined().drop { $0 == "." }
            case .metadata(let key): "metadata \(key)"
            }
        }
    }

    enum PathStep: Sendable, CustomStringConvertible {
        case key(String)
        case index(Int)

        var description: String {
            switch self {
            case .key(let key): ".\(key)"
            case .index(let index): "[\(index)]"
            }
        }
    }

    enum Operator: String, Sendable, CaseIterable {
        case equals = "EQUALS", notEquals = "NOT_EQUALS", contains = "CONTAINS", notContains = "NOT_CONTAINS"
        case greaterThan = "GREATER_THAN", lessThan = "LESS_THAN", regex = "REGEX", exists = "EXISTS"
    }

    enum Expected: Sendable {
        case none
        case value(JSONValue)
        case number(Double)
        case pattern(OptionPattern)
    }

    /// The longest field path accepted, in steps.
    static let maxPathSteps = 32
    /// The deepest AND/OR/NOT nesting accepted.
    static let maxDepth = 16

    /// Reads a condition from its JSON form; throws naming the path inside `when`.
    static func parse(_ value: JSONValue, path: String = "when", depth: Int = 0) throws(StubError) -> StubCondition {
        guard depth < maxDepth else { throw StubError(path, "nested deeper than \(maxDepth)") }
        guard case .object(let members) = value else { throw StubError(path, "a condition is an object") }
        for group in ["and", "or"] {
            guard let items = members[group] else { continue }
            guard members.count == 1 else { throw StubError(path, "\"\(group)\" stands alone in its object") }
            guard case .array(let list) = items, !list.isEmpty else { throw StubError("\(path).\(group)", "a non-empty list of conditions") }
            var parsed: [StubCondition] = []
            for (index, item) in list.enumerated() {
                parsed.append(try parse(item, path: "\(path).\(group)[\(index)]", depth: depth + 1))
            }
            return group == "and" ? .all(parsed) : .any(parsed)
        }
        if let inner = members["not"] {
            guard members.count == 1 else { throw StubError(path, "\"not\" stands alone in its object") }
            return .not(try parse(inner, path: "\(path).not", depth: depth + 1))
        }
        let subject: Subject
        switch (members["field"], members["metadata"]) {
        case (.string(let text)?, nil):
            subject = .field(try parsePath(text, at: "\(path).field"))
        case (nil, .string(let key)?):
            guard !key.isEmpty else { throw StubError("\(path).metadata", "a metadata key") }
            subject = .metadata(key.lowercased())
        default:
            throw StubError(path, "a test names one \"field\" (a JSON path) or one \"metadata\" key; or use and, or, not")
        }
        for key in members.keys where !["field", "metadata", "op", "value"].contains(key) {
            throw StubError("\(path).\(key)", "unknown member")
        }
        guard case .string(let opName)? = members["op"], let op = Operator(rawValue: opName) else {
            throw StubError("\(path).op", "one of \(Operator.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let expected: Expected
        switch op {
        case .exists:
            guard members["value"] == nil else { throw StubError("\(path).value", "EXISTS takes no value") }
            expected = .none
        case .greaterThan, .lessThan:
            guard let value = members["value"], let number = Self.number(value) else {
                throw StubError("\(path).value", "\(op.rawValue) needs a number")
            }
            expected = .number(number)
        case .regex:
            guard case .string(let source)? = members["value"] else { throw StubError("\(path).value", "REGEX needs a pattern string") }
            do {
                expected = .pattern(try OptionPattern(source))
            } catch {
                throw StubError("\(path).value", "not a pattern RE2 accepts: \(error)")
            }
        default:
            guard let value = members["value"] else { throw StubError("\(path).value", "\(op.rawValue) needs a value") }
            expected = .value(value)
        }
        return .test(subject, op, expected)
    }

    /// `a.b[0].c` → steps; refuses empty keys, bad indexes and paths that are too long.
    static func parsePath(_ text: String, at path: String) throws(StubError) -> [PathStep] {
        var steps: [PathStep] = []
        var current = ""
        var iterator = Array(text).makeIterator()
        func flush() throws(StubError) {
            if !current.isEmpty { steps.append(.key(current)); current = "" }
        }
        while let character = iterator.next() {
            switch character {
            case ".":
                guard !current.isEmpty || (steps.last.map { if case .index = $0 { true } else { false } } ?? false) else {
                    throw StubError(path, "an empty name in \(text)")
                }
                try flush()
            case "[":
                try flush()
                var digits = ""
                while let next = iterator.next(), next != "]" { digits.append(next) }
                guard let index = Int(digits), index >= 0 else { throw StubError(path, "\(text): [\(digits)] is not an index") }
                steps.append(.index(index))
            default:
                current.append(character)
            }
        }
        try flush()
        guard !steps.isEmpty else { throw StubError(path, "an empty path") }
        guard steps.count <= maxPathSteps else { throw StubError(path, "longer than \(maxPathSteps) steps") }
        return steps
    }

    /// Whether the call meets the condition. `request` is the decoded request (nil when no
    /// field is read); `metadata` maps lowercased keys to their values.
    func matches(request: JSONValue?, metadata: [String: [String]]) -> Bool {
        firstFailure(request: request, metadata: metadata) == nil
    }

    /// nil when met; else the first test that failed, for near-miss reports.
    func firstFailure(request: JSONValue?, metadata: [String: [String]]) -> String? {
        switch self {
        case .all(let items):
            for item in items {
                if let failure = item.firstFailure(request: request, metadata: metadata) { return failure }
            }
            return nil
        case .any(let items):
            var failures: [String] = []
            for item in items {
                guard let failure = item.firstFailure(request: request, metadata: metadata) else { return nil }
                failures.append(failure)
            }
            return "none of: " + failures.joined(separator: "; ")
        case .not(let inner):
            return inner.firstFailure(request: request, metadata: metadata) == nil ? "NOT held" : nil
        case .test(let subject, let op, let expected):
            let values: [JSONValue]
            switch subject {
            case .field(let steps):
                values = request.flatMap { Self.resolve(steps, in: $0) }.map { [$0] } ?? []
            case .metadata(let key):
                values = (metadata[key] ?? []).map(JSONValue.string)
            }
            let met = Self.evaluate(op, expected, values)
            return met ? nil : "\(subject) \(op.rawValue)\(Self.describe(expected))"
        }
    }

    static func resolve(_ steps: [PathStep], in value: JSONValue) -> JSONValue? {
        var current = value
        for step in steps {
            switch (step, current) {
            case (.key(let key), .object(let members)):
                guard let next = members[key] else { return nil }
                current = next
            case (.index(let index), .array(let items)):
                guard items.indices.contains(index) else { return nil }
                current = items[index]
            default:
                return nil
            }
        }
        return current
    }

    private static func evaluate(_ op: Operator, _ expected: Expected, _ values: [JSONValue]) -> Bool {
        switch op {
        case .exists:
            return !values.isEmpty
        case .equals:
            guard case .value(let wanted) = expected else { return false }
            return values.contains { same($0, wanted) }
        case .notEquals:
            guard case .value(let wanted) = expected else { return false }
            return !values.contains { same($0, wanted) }
        case .contains:
            guard case .value(let wanted) = expected else { return false }
            return values.contains { contains($0, wanted) }
        case .notContains:
            guard case .value(let wanted) = expected else { return false }
            return !values.contains { contains($0, wanted) }
        case .greaterThan, .lessThan:
            guard case .number(let limit) = expected else { return false }
            return values.contains { value in
                guard let number = number(value) else { return false }
                return op == .greaterThan ? number > limit : number < limit
            }
        case .regex:
            guard case .pattern(let pattern) = expected else { return false }
            return values.contains { value in
                guard case .string(let text) = value else { return pattern.matches(value.canonicalText) }
                return pattern.matches(text)
            }
        }
    }

    /// Equal as JSON, with proto3 JSON's forms read alike: 64-bit integers come as strings
    /// ("5" equals 5).
    static func same(_ actual: JSONValue, _ wanted: JSONValue) -> Bool {
        if actual == wanted { return true }
        if let a = number(actual), let b = number(wanted) {
            if case .string = actual, case .string = wanted { return false }
            return a == b
        }
        return false
    }

    /// A string holding the text, an array holding an equal element, an object with the key.
    private static func contains(_ actual: JSONValue, _ wanted: JSONValue) -> Bool {
        switch (actual, wanted) {
        case (.string(let text), .string(let part)):
            return part.isEmpty || text.contains(part)
        case (.array(let items), _):
            return items.contains { same($0, wanted) }
        case (.object(let members), .string(let key)):
            return members[key] != nil
        default:
            return false
        }
    }

    static func number(_ value: JSONValue) -> Double? {
        switch value {
        case .integer(let integer): Double(integer)
        case .double(let double): double
        case .string(let text): Double(text)
        default: nil
        }
    }

    private static func describe(_ expected: Expected) -> String {
        switch expected {
        case .none: ""
        case .value(let value): " \(value.canonicalText)"
        case .number(let number): " \(number)"
        case .pattern(let pattern): " \(pattern.source)"
        }
    }

    /// Whether any test reads the call's metadata (else it is not gathered).
    var readsMetadata: Bool {
        switch self {
        case .all(let items), .any(let items): items.contains { $0.readsMetadata }
        case .not(let inner): inner.readsMetadata
        case .test(.metadata, _, _): true
        case .test(.field, _, _): false
        }
    }

    /// Whether any test reads the request's fields (else the request is not decoded).
    var readsFields: Bool {
        switch self {
        case .all(let items), .any(let items): items.contains { $0.readsFields }
        case .not(let inner): inner.readsFields
        case .test(.field, _, _): true
        case .test(.metadata, _, _): false
        }
    }
}
