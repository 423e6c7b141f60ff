import STBJSON
import STBJSONLogic
import STBMessages
import STBOptionValues

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
        // The limit first: it bounds the walk that looks for anything but spaces.
        if let problem = TextLimit.name.problem(value) { return ["\(path): \(problem)"] }
        if value.trimmingSpaces.isEmpty { return ["\(path): must not be empty"] }
        return []
    }

    /// Free text with a limit (descriptions, file names): may be empty.
    static func text(_ value: String, limit: TextLimit, at path: String) -> [String] {
        limit.problem(value).map { ["\(path): \($0)"] } ?? []
    }

    /// A `meta` JSON text: empty, or a JSON object of at most `TextLimit.json`.
    static func meta(_ text: String, at path: String) -> (JSONValue, [String]) {
        if text.isEmpty { return (.object([:]), []) }
        if let problem = TextLimit.json.problem(text) { return (.null, ["\(path): \(problem)"]) }
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

    /// Checks an option's constraints (in `meta`) and that its default fits them; gives
    /// the default's canonical text (`+5` → `5`; an enum value as its `values` spell it),
    /// which is what is stored. `metaPath` and `defaultPath` name the two fields in messages.
    static func option(
        type: Stb_Catalog_V1_OptionType, defaultValue: String, meta: JSONValue,
        typePath: String, defaultPath: String, metaPath: String
    ) -> (defaultValue: String, problems: [String]) {
        guard let valueType = valueType(type) else {
            return (defaultValue, ["\(typePath): must be one of boolean, integer, string, enum"])
        }
        let (constraints, metaProblems) = OptionConstraints.parse(type: valueType, meta: meta)
        var problems = metaProblems
        let (value, valueProblems) = constraints.check(text: defaultValue)
        problems += valueProblems
        return (value?.canonicalText ?? defaultValue, problems.map { $0.described(valuePath: defaultPath, metaPath: metaPath) })
    }

    static func valueType(_ type: Stb_Catalog_V1_OptionType) -> OptionValueType? {
        typeName(type).flatMap(OptionValueType.init(rawValue:))
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
