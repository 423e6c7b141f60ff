/// Something wrong with an option's value or with the constraints in its meta.
///
/// `message` names no field: the caller puts its own path in front
/// (`option.default_value: 120 is above the maximum 100`, `option.meta_json.step: must be positive`).
public struct OptionValueProblem: Error, Hashable, Sendable, CustomStringConvertible {
    /// What the problem is about.
    public enum Subject: Hashable, Sendable {
        /// The value itself.
        case value
        /// A member of the meta (`min`, `values[2]`), or the meta as a whole (`""`).
        case meta(String)
    }

    public var subject: Subject
    /// For a value outside its constraints: the constraint (`min`, `max`, `step`,
    /// `max_length`, `pattern`, `values`); nil for a value of the wrong form.
    public var constraint: String?
    public var message: String

    public init(subject: Subject, constraint: String? = nil, message: String) {
        self.subject = subject
        self.constraint = constraint
        self.message = message
    }

    static func value(_ message: String, constraint: String? = nil) -> Self {
        Self(subject: .value, constraint: constraint, message: message)
    }

    static func meta(_ member: String, _ message: String) -> Self {
        Self(subject: .meta(member), message: message)
    }

    /// `path: message`, with the path of the value or of the meta member.
    public func described(valuePath: String, metaPath: String) -> String {
        switch subject {
        case .value: "\(valuePath): \(message)"
        case .meta(""): "\(metaPath): \(message)"
        case .meta(let member): "\(metaPath).\(member): \(message)"
        }
    }

    public var description: String { message }
}
