// Rules: the dependency and validation constraints the engine checks selections against.
//
// Rules trigger on options that are *on*: included, and for a boolean also `true` (as a
// Kconfig `bool` is on only at `y`); an option of another type is on when included.
//
// Stored payloads (the `payload` JSON of a rule row), one shape per rule type:
//   requires    {"requires": ["a", "b"]}            subject on ⇒ every listed option on
//   forbidden   {"forbidden": ["a", "b"]}           subject on ⇒ no listed option on
//   validation  {"logic": <json-logic expression>}  subject on ⇒ expression truthy
//   choice      {"choice": ["a", "b"], "optional": false}
//                                                   exactly one member on (optional: at most one);
//                                                   the subject is only a group name, the rule always applies
// A validation whose subject is "*" is global: it applies whatever is selected. Its json-logic
// reads the effective value of every included option (a boolean included at `false` reads
// `false`); an excluded option is missing.
import STBJSON
import STBJSONLogic

public enum RuleSeverity: String, Sendable, Hashable, CaseIterable {
    case error
    case warning
}

public struct Rule: Sendable {
    public enum Kind: Sendable {
        case requires([String])
        case forbidden([String])
        case validation(JSONLogic)
        case choice([String], optional: Bool)

        /// The stored type name: `requires`, `forbidden`, `validation`, `choice`.
        public var name: String {
            switch self {
            case .requires: "requires"
            case .forbidden: "forbidden"
            case .validation: "validation"
            case .choice: "choice"
            }
        }
    }

    /// The subject of a validation rule that applies whatever is selected.
    public static let globalSubject = "*"

    public var key: String
    /// An option key; for `choice` rules a group name (need not be an option).
    public var subject: String
    public var kind: Kind
    public var severity: RuleSeverity
    public var message: String
    public var active: Bool

    public init(
        key: String, subject: String, kind: Kind,
        severity: RuleSeverity = .error, message: String = "", active: Bool = true
    ) {
        self.key = key
        self.subject = subject
        self.kind = kind
        self.severity = severity
        self.message = message
        self.active = active
    }

    /// Option keys the rule names directly (not the subject), in payload order.
    public var listedOptions: [String] {
        switch kind {
        case .requires(let keys), .forbidden(let keys), .choice(let keys, _): keys
        case .validation(let logic): logic.variables.sorted()
        }
    }

    /// Builds a rule from its stored type name and JSON payload (shapes in the file header).
    /// Errors carry a path into the payload: `payload.requires[1]: must be an option key string`.
    public static func parse(
        key: String, subject: String, type: String, payload: JSONValue,
        severity: RuleSeverity = .error, message: String = "", active: Bool = true
    ) throws(RuleParseError) -> Rule {
        guard case .object(let members) = payload else {
            throw RuleParseError(path: "payload", message: "must be an object, not \(payload.typeName)")
        }
        func allowOnly(_ allowed: Set<String>) throws(RuleParseError) {
            for name in members.keys.sorted() where !allowed.contains(name) {
                throw RuleParseError(path: "payload.\(name)", message: "unknown member for a \(type) rule")
            }
        }
        func keyList(_ name: String) throws(RuleParseError) -> [String] {
            guard let raw = members[name] else {
                throw RuleParseError(path: "payload.\(name)", message: "is required")
            }
            guard case .array(let items) = raw else {
                throw RuleParseError(path: "payload.\(name)", message: "must be an array of option keys, not \(raw.typeName)")
            }
            var keys: [String] = []
            var seen = Set<String>()
            for (index, item) in items.enumerated() {
                guard case .string(let optionKey) = item, !optionKey.isEmpty else {
                    throw RuleParseError(path: "payload.\(name)[\(index)]", message: "must be an option key string")
                }
                guard seen.insert(optionKey).inserted else {
                    throw RuleParseError(path: "payload.\(name)[\(index)]", message: "duplicate option key '\(optionKey)'")
                }
                keys.append(optionKey)
            }
            if keys.isEmpty {
                throw RuleParseError(path: "payload.\(name)", message: "must name at least one option")
            }
            return keys
        }
        if subject.isEmpty {
            throw RuleParseError(path: "subject", message: "must not be empty")
        }
        let kind: Kind
        switch type {
        case "requires":
            try allowOnly(["requires"])
            kind = .requires(try keyList("requires"))
        case "forbidden":
            try allowOnly(["forbidden"])
            kind = .forbidden(try keyList("forbidden"))
        case "validation":
            try allowOnly(["logic"])
            guard let expression = members["logic"] else {
                throw RuleParseError(path: "payload.logic", message: "is required")
            }
            do {
                kind = .validation(try JSONLogic(expression))
            } catch {
                throw RuleParseError(path: Self.joinPath("payload.logic", error.path), message: error.message)
            }
        case "choice":
            try allowOnly(["choice", "optional"])
            let keys = try keyList("choice")
            var optional = false
            if let raw = members["optional"] {
                guard case .bool(let flag) = raw else {
                    throw RuleParseError(path: "payload.optional", message: "must be a boolean, not \(raw.typeName)")
                }
                optional = flag
            }
            kind = .choice(keys, optional: optional)
        default:
            throw RuleParseError(path: "type", message: "unknown rule type '\(type)' (requires, forbidden, validation, choice)")
        }
        return Rule(key: key, subject: subject, kind: kind, severity: severity, message: message, active: active)
    }

    static func joinPath(_ base: String, _ sub: String) -> String {
        var sub = sub
        if sub.hasPrefix("$") { sub.removeFirst() }
        if sub.isEmpty { return base }
        if sub.hasPrefix("[") || sub.hasPrefix(".") { return base + sub }
        return base + "." + sub
    }
}

public struct RuleParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public let path: String
    public let message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// A change to the rule set, for impact analysis.
public enum RuleChange: Sendable {
    case add(Rule)
    case remove(String)
    case replace(Rule)

    /// The rule list after the change: `add` appends; `replace` takes the place of the first
    /// rule with the key (dropping later ones), or appends; `remove` drops every rule with the key.
    public func apply(to rules: [Rule]) -> [Rule] {
        switch self {
        case .add(let rule): return rules + [rule]
        case .remove(let key): return rules.filter { $0.key != key }
        case .replace(let rule):
            var replaced = false
            var result: [Rule] = []
            for existing in rules {
                if existing.key == rule.key {
                    if !replaced { result.append(rule); replaced = true }
                } else {
                    result.append(existing)
                }
            }
            if !replaced { result.append(rule) }
            return result
        }
    }
}
