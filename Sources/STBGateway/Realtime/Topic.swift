import STBRPC

/// What a `Subscribe` stream asks for.
public enum Topic: Sendable, Hashable, CustomStringConvertible {
    case catalog
    case rules
    /// One project, by key.
    case project(String)
    /// Every project the caller may see.
    case projects
    case alarms

    /// Parses a topic name; nil for anything else.
    public init?(_ text: String) {
        switch text {
        case "catalog": self = .catalog
        case "rules": self = .rules
        case "projects": self = .projects
        case "alarms": self = .alarms
        default:
            guard text.hasPrefix("project:") else { return nil }
            let key = String(text.dropFirst("project:".count))
            guard Self.isProjectKey(key) else { return nil }
            self = .project(key)
        }
    }

    public var description: String {
        switch self {
        case .catalog: "catalog"
        case .rules: "rules"
        case .project(let key): "project:\(key)"
        case .projects: "projects"
        case .alarms: "alarms"
        }
    }

    /// The feed the topic's deltas come from.
    public var upstream: Upstream {
        switch self {
        case .catalog: .catalog
        case .rules: .rules
        case .project, .projects: .project
        case .alarms: .alarms
        }
    }

    /// The request's topics, each once, in order; INVALID_ARGUMENT naming what is wrong.
    public static func parse(_ names: [String], maximum: Int) throws(RPCError) -> [Topic] {
        guard !names.isEmpty else { throw RPCError(code: .invalidArgument, message: "topics: name at least one topic") }
        guard names.count <= maximum else {
            throw RPCError(code: .invalidArgument, message: "topics: at most \(maximum) topics in one stream (got \(names.count))")
        }
        var topics: [Topic] = []
        var problems: [String] = []
        for (index, name) in names.enumerated() {
            guard let topic = Topic(name) else {
                let shown = name.utf8.count > 80 ? String(name.prefix(80)) + "…" : name
                problems.append("topics[\(index)]: unknown topic \"\(shown)\" (catalog, rules, project:<key>, projects, alarms)")
                if problems.count == 5 { break }
                continue
            }
            if !topics.contains(topic) { topics.append(topic) }
        }
        guard problems.isEmpty else { throw RPCError(code: .invalidArgument, message: problems.joined(separator: "; ")) }
        return topics
    }

    /// The project service's key form: lowercase letters, digits, `_`, `.`, `-`, 1–64.
    static func isProjectKey(_ key: String) -> Bool {
        guard let first = key.utf8.first, key.utf8.count <= 64,
              (first >= 97 && first <= 122) || (first >= 48 && first <= 57) else { return false }
        return key.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 46 || $0 == 45 }
    }
}
