import STBJSON
import STBJSONLogic
import STBMessages
import STBService

/// The catalog's validation rules, shared by the CRUD calls and seed imports. Each check
/// returns problems as `path: problem` sentences; `path` is the caller's name for the
/// field (`option.default_value`, or `modules[2].groups[0].options[5].default`).
enum Validation {
    /// Keys of modules, groups, options and names of states.
    static func key(_ value: String, at path: String) -> [String] {
        isValidKey(value) ? [] : ["\(path): \(quoted(value)) is not a valid key (lowercase letters, digits, '_', '.', '-'; starts with a letter or digit; at most 64 characters)"]
    }

    /// Transition events: like keys, upper case allowed (`ENABLE_4K`).
    static func event(_ value: String, at path: String) -> [String] {
        let bytes = Array(value.utf8)
        let valid = !bytes.isEmpty && bytes.count <= 64 && isAlnum(bytes[0])
            && bytes.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
        return valid ? [] : ["\(path): \(quoted(value)) is not a valid event name (letters, digits, '_', '.', '-'; at most 64 characters)"]
    }

    static func name(_ value: String, at path: String) -> [String] {
        if value.trimmingSpaces.isEmpty { return ["\(path): must not be empty"] }
        if value.count > 200 { return ["\(path): longer than 200 characters"] }
        return []
    }

    /// A `meta` JSON text: empty, or a JSON object.
    static func meta(_ text: String, at path: String) -> (JSONValue, [String]) {
        if text.isEmpty { return (.object([:]), []) }
        do {
            let value = try JSONValue.parse(text)
            guard case .object = value else { return (value, ["\(path): must be a JSON object, not \(value.typeName)"]) }
            return (value, [])
        } catch {
            return (.null, ["\(path): \(error)"])
        }
    }

    /// A json-logic condition: empty (always), or an expression the rules service can compile.
    /// Compiled here with the same compiler and options as the rules service, which would
    /// otherwise leave out a transition whose condition it cannot compile.
    static func condition(_ text: String, at path: String) -> [String] {
        if text.isEmpty { return [] }
        let expression: JSONValue
        do {
            expression = try JSONValue.parse(text)
        } catch {
            return ["\(path): \(error)"]
        }
        // null is how a seed says "no condition"; the rules service treats it as unconditional.
        if expression == .null { return [] }
        do {
            _ = try JSONLogic(expression)
            return []
        } catch {
            return ["\(path): \(error)"]
        }
    }

    // MARK: - Options

    static func typeName(_ type: Stb_Catalog_V1_OptionType) -> String? {
        switch type {
        case .boolean: "boolean"
        case .integer: "integer"
        case .string: "string"
        case .enum: "enum"
        default: nil
        }
    }

    static func optionType(named name: String) -> Stb_Catalog_V1_OptionType? {
        switch name {
        case "boolean": .boolean
        case "integer": .integer
        case "string": .string
        case "enum": .enum
        default: nil
        }
    }

    /// Checks an option's constraints (in `meta`) and that its default fits them.
    /// `metaPath` and `defaultPath` name the two fields in messages.
    static func option(
        type: Stb_Catalog_V1_OptionType, defaultValue: String, meta: JSONValue,
        typePath: String, defaultPath: String, metaPath: String
    ) -> [String] {
        guard let typeName = typeName(type) else {
            return ["\(typePath): must be one of boolean, integer, string, enum"]
        }
        var problems: [String] = []
        switch typeName {
        case "boolean":
            if defaultValue != "true" && defaultValue != "false" {
                problems.append("\(defaultPath): \(quoted(defaultValue)) is not a boolean (true or false)")
            }
        case "integer":
            let minimum = meta["min"]
            let maximum = meta["max"]
            let step = meta["step"]
            for (name, bound) in [("min", minimum), ("max", maximum), ("step", step)] {
                if let bound, bound.integerValue == nil {
                    problems.append("\(metaPath).\(name): must be an integer, not \(bound.typeName)")
                }
            }
            if let low = minimum?.integerValue, let high = maximum?.integerValue, low > high {
                problems.append("\(metaPath): min \(low) is greater than max \(high)")
            }
            if let stepValue = step?.integerValue, stepValue <= 0 {
                problems.append("\(metaPath).step: must be positive")
            }
            guard let value = Int64(defaultValue) else {
                problems.append("\(defaultPath): \(quoted(defaultValue)) is not an integer")
                break
            }
            if let low = minimum?.integerValue, value < low {
                problems.append("\(defaultPath): \(value) is below the minimum \(low)")
            }
            if let high = maximum?.integerValue, value > high {
                problems.append("\(defaultPath): \(value) is above the maximum \(high)")
            }
            if let stepValue = step?.integerValue, stepValue > 0 {
                let base = minimum?.integerValue ?? 0
                if (value - base) % stepValue != 0 {
                    problems.append("\(defaultPath): \(value) is not a multiple of the step \(stepValue) from \(base)")
                }
            }
        case "string":
            if let maxLength = meta["max_length"] {
                if let limit = maxLength.integerValue, limit >= 0 {
                    if defaultValue.count > limit {
                        problems.append("\(defaultPath): longer than max_length \(limit)")
                    }
                } else {
                    problems.append("\(metaPath).max_length: must be a non-negative integer")
                }
            }
            if let pattern = meta["pattern"] {
                if let text = pattern.stringValue {
                    do {
                        let regex = try Regex(text)
                        if (try? regex.wholeMatch(in: defaultValue)) == nil {
                            problems.append("\(defaultPath): \(quoted(defaultValue)) does not match the pattern \(quoted(text))")
                        }
                    } catch {
                        problems.append("\(metaPath).pattern: \(quoted(text)) is not a valid regular expression")
                    }
                } else {
                    problems.append("\(metaPath).pattern: must be a string")
                }
            }
        default:  // enum
            guard let values = meta["values"]?.arrayValue else {
                problems.append("\(metaPath).values: an enum needs a list of values")
                break
            }
            if values.isEmpty { problems.append("\(metaPath).values: must not be empty") }
            var seen = Set<String>()
            for (index, value) in values.enumerated() {
                guard let text = value.stringValue else {
                    problems.append("\(metaPath).values[\(index)]: must be a string, not \(value.typeName)")
                    continue
                }
                if text.isEmpty { problems.append("\(metaPath).values[\(index)]: must not be empty") }
                if !seen.insert(text).inserted { problems.append("\(metaPath).values[\(index)]: \(quoted(text)) is listed twice") }
            }
            if !values.isEmpty, !seen.contains(defaultValue) {
                problems.append("\(defaultPath): \(quoted(defaultValue)) is not one of the values \(values.compactMap(\.stringValue).map(quoted).joined(separator: ", "))")
            }
        }
        return problems
    }

    private static func isLowerAlnum(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }

    private static func isAlnum(_ byte: UInt8) -> Bool {
        isLowerAlnum(byte) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }
}

extension String {
    var trimmingSpaces: Substring {
        drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed().isEmpty ? "" : Substring(self)
    }
}
