import STBJSON

/// The constraints an option's meta puts on its values, read once and then applied to
/// any number of values.
///
/// By type: integer `min`, `max`, `step` (values are `min + k·step`, or `k·step` without
/// a `min`); string `max_length` (characters) and `pattern` (`OptionPattern`, a full
/// match); enum `values` (the list of allowed strings). Other meta members are not
/// constraints and are left alone.
public struct OptionConstraints: Sendable, Hashable {
    /// The most values an enum may list.
    public static let maxEnumValues = 1000

    public let type: OptionValueType
    public private(set) var minimum: Int64?
    public private(set) var maximum: Int64?
    public private(set) var step: Int64?
    public private(set) var maxLength: Int?
    public private(set) var pattern: OptionPattern?
    /// The enum's values, as listed.
    public private(set) var values: [String] = []
    /// Each listed value by itself: Swift compares strings by canonical equivalence, so a
    /// value spelled in another Unicode normal form finds its listed spelling.
    private var listed: [String: String] = [:]

    /// No constraints.
    public init(type: OptionValueType) {
        self.type = type
    }

    /// Reads the constraints of `meta` (a JSON object) for `type`. Problems name the meta
    /// member; what could not be read is left out of the constraints.
    public static func parse(type: OptionValueType, meta: JSONValue) -> (OptionConstraints, [OptionValueProblem]) {
        var constraints = OptionConstraints(type: type)
        var problems: [OptionValueProblem] = []
        switch type {
        case .boolean:
            break
        case .integer:
            func bound(_ name: String) -> Int64? {
                guard let value = meta[name] else { return nil }
                if let number = value.integerValue { return number }
                if case .double(let number) = value, number.rounded() == number {
                    problems.append(.meta(name, "\(value.canonicalText) is not an integer from \(Int64.min) to \(Int64.max) written in digits"))
                } else {
                    problems.append(.meta(name, "must be an integer, not \(value.typeName)"))
                }
                return nil
            }
            constraints.minimum = bound("min")
            constraints.maximum = bound("max")
            let step = bound("step")
            if let low = constraints.minimum, let high = constraints.maximum, low > high {
                problems.append(.meta("", "min \(low) is greater than max \(high)"))
                constraints.minimum = nil
                constraints.maximum = nil
            }
            if let step {
                if step <= 0 { problems.append(.meta("step", "must be positive")) } else { constraints.step = step }
            }
        case .string:
            if let value = meta["max_length"] {
                if let limit = value.integerValue, limit >= 0 {
                    if limit > TextLimit.stringValue.characters {
                        problems.append(.meta("max_length", "\(limit) is more than the longest string value, \(TextLimit.stringValue.characters) characters"))
                    } else {
                        constraints.maxLength = Int(limit)
                    }
                } else {
                    problems.append(.meta("max_length", "must be a non-negative integer"))
                }
            }
            if let value = meta["pattern"] {
                if let text = value.stringValue {
                    do {
                        constraints.pattern = try OptionPattern(text)
                    } catch {
                        problems.append(.meta("pattern", text.utf8.count > OptionPattern.maxBytes ? error.message : "\(shown(text)) is not a valid pattern: \(error.message)"))
                    }
                } else {
                    problems.append(.meta("pattern", "must be a string, not \(value.typeName)"))
                }
            }
        case .enum:
            guard let list = meta["values"] else {
                problems.append(.meta("values", "an enum needs a list of values"))
                break
            }
            guard let values = list.arrayValue else {
                problems.append(.meta("values", "an enum needs a list of values, not \(list.typeName)"))
                break
            }
            if values.isEmpty { problems.append(.meta("values", "must not be empty")) }
            if values.count > maxEnumValues {
                problems.append(.meta("values", "lists \(values.count) values; at most \(maxEnumValues)"))
                break
            }
            for (index, value) in values.enumerated() {
                guard let text = value.stringValue else {
                    problems.append(.meta("values[\(index)]", "must be a string, not \(value.typeName)"))
                    continue
                }
                if text.isEmpty {
                    problems.append(.meta("values[\(index)]", "must not be empty"))
                } else if let tooLong = TextLimit.enumValue.problem(text) {
                    problems.append(.meta("values[\(index)]", tooLong))
                } else if constraints.listed[text] != nil {
                    problems.append(.meta("values[\(index)]", "\(shown(text)) is listed twice"))
                } else {
                    constraints.listed[text] = text
                    constraints.values.append(text)
                }
            }
        }
        return (constraints, problems)
    }

    /// Whether there is anything to check.
    public var isEmpty: Bool {
        minimum == nil && maximum == nil && step == nil && maxLength == nil && pattern == nil && values.isEmpty
    }

    /// `value` in canonical form: an enum value takes its listed spelling.
    public func canonical(_ value: OptionValue) -> OptionValue {
        if type == .enum, case .string(let text) = value, let spelled = listed[text] { return .string(spelled) }
        return value
    }

    /// Every constraint `value` breaks, each naming its constraint (`OptionValueProblem.constraint`).
    public func violations(of value: OptionValue) -> [OptionValueProblem] {
        var problems: [OptionValueProblem] = []
        switch value {
        case .boolean:
            break
        case .integer(let number):
            if let low = minimum, number < low {
                problems.append(.value("\(number) is below the minimum \(low)", constraint: "min"))
            }
            if let high = maximum, number > high {
                problems.append(.value("\(number) is above the maximum \(high)", constraint: "max"))
            }
            if let step {
                // In 128 bits: the distance between two 64-bit numbers can need 65.
                let base = minimum ?? 0
                if (Int128(number) - Int128(base)) % Int128(step) != 0 {
                    problems.append(.value("\(number) is not a multiple of the step \(step) from \(base)", constraint: "step"))
                }
            }
        case .string(let text):
            if type == .enum {
                if !values.isEmpty, listed[text] == nil {
                    problems.append(.value("\(shown(text)) is not one of the values \(Self.listText(values))", constraint: "values"))
                }
                break
            }
            if let maxLength, text.count > maxLength {
                problems.append(.value("longer than max_length \(maxLength)", constraint: "max_length"))
            }
            if let pattern, !pattern.matches(text) {
                problems.append(.value("\(shown(text)) does not match the pattern \(shown(pattern.source))", constraint: "pattern"))
            }
        }
        return problems
    }

    /// Parses a value's stored text (`OptionValueType.parse`), checks it against the
    /// constraints, and returns its canonical form with every problem found.
    public func check(text: String) -> (OptionValue?, [OptionValueProblem]) {
        do {
            let value = canonical(try type.parse(text))
            return (value, violations(of: value))
        } catch {
            return (nil, [error])
        }
    }

    // A long list is shortened: the message is for a person.
    static func listText(_ values: [String]) -> String {
        let listed = values.prefix(20).map { shown($0) }.joined(separator: ", ")
        return values.count > 20 ? listed + ", … (\(values.count) values)" : listed
    }
}
