import STBJSON
import Glibc
import STBMessages
import STBOptionValues

// MARK: - The document

extension SeedImporter {
    /// A valid seed document: the entities it describes, as they would be stored (no ids,
    /// no timestamps), in document order. Meta and conditions hold canonical JSON text,
    /// option defaults their canonical text ("true", "80", "1080p").
    struct Document: Equatable, Sendable {
        var modules: [Module] = []
        var groups: [Group] = []
        var options: [Option] = []
        var states: [State] = []
        var transitions: [Transition] = []
    }

    /// Everything wrong with a document, each as `path: problem`, in document order.
    struct Invalid: Error, Equatable {
        var problems: [String]
    }

    /// Parses and validates a seed document; throws every problem found.
    static func parse(_ text: String) throws(Invalid) -> Document {
        let root: JSONValue
        do {
            root = try JSONValue.parse(text)
        } catch {
            throw Invalid(problems: [error.description])
        }
        var reader = DocumentReader()
        let document = reader.document(root)
        // The only way to a NUL in a parsed string is the \u0000 escape; Postgres text
        // and jsonb cannot hold one.
        if Self.mentionsNUL(text) { reader.findNUL(in: root) }
        guard reader.problems.isEmpty else { throw Invalid(problems: reader.problems) }
        return document
    }
}

extension SeedImporter {
    /// Whether the text may hold the escape `\u0000` (a quick scan from backslash to
    /// backslash; `\\u0000` counts too, and the walk that follows sorts it out).
    static func mentionsNUL(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            guard let start = bytes.baseAddress else { return false }
            var offset = 0
            while offset < bytes.count, let found = memchr(start + offset, Int32(UInt8(ascii: "\\")), bytes.count - offset) {
                let at = start.distance(to: found.assumingMemoryBound(to: UInt8.self))
                if bytes.count - at < 6 { return false }
                if bytes[at + 1] == UInt8(ascii: "u") && bytes[at + 2] == UInt8(ascii: "0") && bytes[at + 3] == UInt8(ascii: "0")
                    && bytes[at + 4] == UInt8(ascii: "0") && bytes[at + 5] == UInt8(ascii: "0")
                {
                    return true
                }
                offset = at + 1
            }
            return false
        }
    }
}

/// Top-level members other than `modules`: ignored here (`rules` is the rules service's).
private let documentFields = ["modules", "rules", "$schema", "version", "description"]
private let moduleFields = ["key", "name", "description", "active", "initial_state", "meta", "states", "transitions", "groups"]
private let stateFields = ["name", "meta"]
private let transitionFields = ["from", "event", "to", "condition", "meta"]
private let groupFields = ["key", "name", "description", "position", "meta", "options"]
private let optionFields = ["key", "name", "description", "type", "default", "editable", "included_by_default", "meta"]

/// Where an object sits in the document; spelled out only for messages.
private enum Where: CustomStringConvertible {
    case document
    case module(Int)
    case state(Int, Int)
    case transition(Int, Int)
    case group(Int, Int)
    case option(Int, Int, Int)

    var description: String {
        switch self {
        case .document: ""
        case .module(let m): "modules[\(m)]"
        case .state(let m, let s): "modules[\(m)].states[\(s)]"
        case .transition(let m, let t): "modules[\(m)].transitions[\(t)]"
        case .group(let m, let g): "modules[\(m)].groups[\(g)]"
        case .option(let m, let g, let o): "modules[\(m)].groups[\(g)].options[\(o)]"
        }
    }
}

/// One JSON object being read, and where it is.
private struct Fields {
    let members: [String: JSONValue]
    let at: Where
    let known: [String]

    subscript(name: String) -> JSONValue? { members[name] }

    /// The path of one of its fields: `modules[0].name`.
    func path(_ name: String) -> String {
        let base = at.description
        return base.isEmpty ? name : "\(base).\(name)"
    }
}

/// Reads a document into entities, collecting problems as it goes. Paths are spelled out
/// only when there is a problem to report (a 10,000-option document has none, usually).
private struct DocumentReader {
    var problems: [String] = []
    private var document = SeedImporter.Document()
    /// Option keys are one namespace across the catalog: key → where first seen.
    private var optionPaths: [String: Where] = [:]

    mutating func document(_ root: JSONValue) -> SeedImporter.Document {
        guard let top = fields(root, at: .document, known: documentFields) else { return document }
        if let schema = string(top, "$schema") { checkText(schema, .fileName, top, "$schema") }
        if let description = string(top, "description") { checkText(description, .description, top, "description") }
        if let version = top["version"], version.stringValue == nil, version.integerValue == nil {
            problems.append("version: must be an integer or a string, not \(version.typeName)")
        } else if let version = top["version"]?.stringValue {
            checkText(version, .fileName, top, "version")
        }
        if let modules = top["modules"] {
            guard case .array(let values) = modules else {
                problems.append("modules: must be an array, not \(modules.typeName)")
                unknownFields(top)
                return document
            }
            document.modules.reserveCapacity(values.count)
            var modulePaths: [String: Where] = [:]
            for (index, value) in values.enumerated() {
                module(value, at: index, modulePaths: &modulePaths)
            }
        } else {
            problems.append("modules: required")
        }
        unknownFields(top)
        return document
    }

    private mutating func module(_ value: JSONValue, at index: Int, modulePaths: inout [String: Where]) {
        guard let f = fields(value, at: .module(index), known: moduleFields) else { return }
        var module = Module()
        module.key = uniqueKey(f, "key", in: &modulePaths) { "duplicate module key \(quoted($0))" } ?? ""
        module.name = name(f) ?? ""
        module.description_p = description(f)
        module.active = bool(f, "active", default: true)
        let initialState = string(f, "initial_state") ?? ""
        module.initialState = initialState
        module.metaJson = meta(f).canonicalText

        // States, then what refers to them.
        var statePaths: [String: Where] = [:]
        for (position, value) in array(f, "states").enumerated() {
            state(value, at: .state(index, position), module: module.key, statePaths: &statePaths)
        }
        if !initialState.isEmpty, statePaths[initialState] == nil {
            problems.append("\(f.path("initial_state")): state \(quoted(initialState)) is not one of the module's states")
        }
        var transitionPaths: [String: Where] = [:]
        for (position, value) in array(f, "transitions").enumerated() {
            transition(value, at: .transition(index, position), module: module.key, statePaths: statePaths, transitionPaths: &transitionPaths)
        }
        document.modules.append(module)

        var groupPaths: [String: Where] = [:]
        for (position, value) in array(f, "groups").enumerated() {
            group(value, at: (index, position), module: module.key, groupPaths: &groupPaths)
        }
        unknownFields(f)
    }

    private mutating func state(_ value: JSONValue, at place: Where, module: String, statePaths: inout [String: Where]) {
        guard let f = fields(value, at: place, known: stateFields) else { return }
        var state = State()
        state.moduleKey = module
        state.name = uniqueKey(f, "name", in: &statePaths) { "duplicate state \(quoted($0))" } ?? ""
        state.metaJson = meta(f).canonicalText
        unknownFields(f)
        document.states.append(state)
    }

    private mutating func transition(
        _ value: JSONValue, at place: Where, module: String, statePaths: [String: Where], transitionPaths: inout [String: Where]
    ) {
        guard let f = fields(value, at: place, known: transitionFields) else { return }
        var transition = Transition()
        transition.moduleKey = module
        let from = string(f, "from", required: true)
        let event = string(f, "event", required: true)
        let to = string(f, "to", required: true)
        for (field, name) in [("from", from), ("to", to)] {
            if let name, statePaths[name] == nil {
                problems.append("\(f.path(field)): state \(quoted(name)) is not one of the module's states")
            }
        }
        if let event, !Validation.event(event, at: "").isEmpty { problems += Validation.event(event, at: f.path("event")) }
        if let from, let event {
            let key = "\(from)/\(event)"
            if let first = transitionPaths[key] {
                problems.append("\(place): duplicate transition from \(quoted(from)) on \(quoted(event)) (first at \(first))")
            } else {
                transitionPaths[key] = place
            }
        }
        transition.fromState = from ?? ""
        transition.event = event ?? ""
        transition.toState = to ?? ""
        if let condition = f["condition"], condition != .null {
            transition.conditionJson = SeedImporter.normalized(condition).canonicalText
            problems += Validation.condition(transition.conditionJson, at: f.path("condition"))
        }
        transition.metaJson = meta(f).canonicalText
        unknownFields(f)
        document.transitions.append(transition)
    }

    private mutating func group(_ value: JSONValue, at place: (module: Int, group: Int), module: String, groupPaths: inout [String: Where]) {
        guard let f = fields(value, at: .group(place.module, place.group), known: groupFields) else { return }
        var group = Group()
        group.moduleKey = module
        group.key = uniqueKey(f, "key", in: &groupPaths) { "duplicate group key \(quoted($0)) in module \(quoted(module))" } ?? ""
        group.name = name(f) ?? ""
        group.description_p = description(f)
        group.position = Int32(clamping: place.group)
        if let position = f["position"] {
            if let number = position.integerValue, let value = Int32(exactly: number) {
                group.position = value
            } else if position.integerValue != nil {
                problems.append("\(f.path("position")): \(position.canonicalText) is out of range")
            } else if position.numberValue != nil {
                problems.append("\(f.path("position")): \(position.canonicalText) is not an integer")
            } else {
                problems.append("\(f.path("position")): must be an integer, not \(position.typeName)")
            }
        }
        group.metaJson = meta(f).canonicalText
        document.groups.append(group)
        for (index, value) in array(f, "options").enumerated() {
            option(value, at: .option(place.module, place.group, index), module: module, group: group.key)
        }
        unknownFields(f)
    }

    private mutating func option(_ value: JSONValue, at place: Where, module: String, group: String) {
        guard let f = fields(value, at: place, known: optionFields) else { return }
        var option = Option()
        option.moduleKey = module
        option.groupKey = group
        var paths = optionPaths
        option.key = uniqueKey(f, "key", in: &paths, note: "; option keys are unique across the catalog") { "duplicate option key \(quoted($0))" } ?? ""
        optionPaths = paths
        option.name = name(f) ?? ""
        option.description_p = description(f)
        let typeName = string(f, "type", required: true)
        let defaultValue = f["default"]
        option.editable = bool(f, "editable", default: true)
        option.includedByDefault = bool(f, "included_by_default", default: false)
        let (meta, metaValid) = metaChecked(f)
        option.metaJson = meta.canonicalText

        guard let typeName else {
            if defaultValue == nil { problems.append("\(f.path("default")): required") }
            unknownFields(f)
            document.options.append(option)
            return
        }
        if let type = Validation.optionType(named: typeName) {
            option.type = type
            var typeProblem: String?
            if let defaultValue {
                let (text, problem) = Self.defaultText(defaultValue, type: type, at: f)
                option.defaultValue = text ?? ""
                typeProblem = problem
            } else {
                typeProblem = "\(f.path("default")): required"
            }
            // The shared rules, first without paths: they are spelled out only for problems.
            let checked = metaValid ? Validation.option(type: type, defaultValue: option.defaultValue, meta: meta, typePath: "", defaultPath: "", metaPath: "") : nil
            if typeProblem == nil, let checked { option.defaultValue = checked.defaultValue }
            if let checked, !checked.problems.isEmpty {
                let defaultPath = f.path("default")
                var optionProblems = Validation.option(
                    type: type, defaultValue: option.defaultValue, meta: meta,
                    typePath: f.path("type"), defaultPath: defaultPath, metaPath: f.path("meta")).problems
                if typeProblem != nil {
                    // The default's own problem replaces what the rules say of its text.
                    optionProblems.removeAll { $0.hasPrefix("\(defaultPath):") }
                }
                if let typeProblem { problems.append(typeProblem) }
                problems += optionProblems
            } else if let typeProblem {
                problems.append(typeProblem)
            }
        } else {
            problems.append("\(f.path("type")): \(quoted(typeName)) is not one of boolean, integer, string, enum")
            if defaultValue == nil { problems.append("\(f.path("default")): required") }
        }
        unknownFields(f)
        document.options.append(option)
    }

    private mutating func checkKey(_ value: String, _ f: Fields, _ name: String) {
        if !isValidKey(value) { problems += Validation.key(value, at: f.path(name)) }
    }

    private mutating func checkName(_ value: String, _ f: Fields, _ name: String) {
        if !Validation.name(value, at: "").isEmpty { problems += Validation.name(value, at: f.path(name)) }
    }

    private mutating func checkText(_ value: String, _ limit: TextLimit, _ f: Fields, _ name: String) {
        if let problem = limit.problem(value) { problems.append("\(f.path(name)): \(problem)") }
    }

    /// An option default's canonical text, or why the JSON value does not suit the type.
    static func defaultText(_ value: JSONValue, type: Stb_Catalog_V1_OptionType, at f: Fields) -> (String?, String?) {
        var path: String { f.path("default") }
        switch type {
        case .boolean:
            switch value {
            case .bool(let flag): return (flag ? "true" : "false", nil)
            case .string(let text) where text == "true" || text == "false":
                return (nil, "\(path): \(quoted(text)) is a string; write \(text) without quotes")
            case .string(let text): return (nil, "\(path): \(quoted(text)) is not a boolean (true or false)")
            default: return (nil, "\(path): must be a boolean, not \(value.typeName)")
            }
        case .integer:
            switch value {
            case .integer(let number): return (String(number), nil)
            case .double:
                if let number = value.integerValue { return (String(number), nil) }
                return (nil, "\(path): \(value.canonicalText) is not an integer")
            case .string(let text) where Int64(text) != nil:
                return (nil, "\(path): \(quoted(text)) is a string; write the integer without quotes")
            case .string(let text): return (nil, "\(path): \(quoted(text)) is not an integer")
            default: return (nil, "\(path): must be an integer, not \(value.typeName)")
            }
        default:  // string, enum
            if case .string(let text) = value { return (text, nil) }
            return (nil, "\(path): must be a string, not \(value.typeName)")
        }
    }

    // MARK: Fields every entity has

    /// The required key-like field `name` (a key, or a state's name), refused when another
    /// entity in `paths` already has it; nil when missing.
    private mutating func uniqueKey(
        _ f: Fields, _ name: String, in paths: inout [String: Where], note: String = "", duplicate: (String) -> String
    ) -> String? {
        guard let key = string(f, name, required: true) else { return nil }
        checkKey(key, f, name)
        if let first = paths[key] {
            problems.append("\(f.path(name)): \(duplicate(key)) (first at \(first))\(note)")
        } else {
            paths[key] = f.at
        }
        return key
    }

    /// The required `name`, checked; nil when missing.
    private mutating func name(_ f: Fields) -> String? {
        guard let name = string(f, "name", required: true) else { return nil }
        checkName(name, f, "name")
        return name
    }

    /// The optional `description` (empty when absent), checked.
    private mutating func description(_ f: Fields) -> String {
        let text = string(f, "description") ?? ""
        checkText(text, .description, f, "description")
        return text
    }

    // MARK: Field readers

    private mutating func fields(_ value: JSONValue, at place: Where, known: [String]) -> Fields? {
        guard case .object(let members) = value else {
            let path = place.description
            problems.append("\(path.isEmpty ? "document" : path): must be an object, not \(value.typeName)")
            return nil
        }
        return Fields(members: members, at: place, known: known)
    }

    private mutating func unknownFields(_ f: Fields) {
        guard f.members.keys.contains(where: { !f.known.contains($0) }) else { return }
        for name in f.members.keys.sorted() where !f.known.contains(name) {
            problems.append("\(f.path(name)): unknown field (known: \(f.known.joined(separator: ", ")))")
        }
    }

    private mutating func string(_ f: Fields, _ name: String, required: Bool = false) -> String? {
        guard let value = f[name] else {
            if required { problems.append("\(f.path(name)): required") }
            return nil
        }
        guard case .string(let text) = value else {
            problems.append("\(f.path(name)): must be a string, not \(value.typeName)")
            return nil
        }
        return text
    }

    private mutating func bool(_ f: Fields, _ name: String, default defaultValue: Bool) -> Bool {
        guard let value = f[name] else { return defaultValue }
        guard case .bool(let flag) = value else {
            problems.append("\(f.path(name)): must be a boolean, not \(value.typeName)")
            return defaultValue
        }
        return flag
    }

    private mutating func array(_ f: Fields, _ name: String) -> [JSONValue] {
        guard let value = f[name] else { return [] }
        guard case .array(let values) = value else {
            problems.append("\(f.path(name)): must be an array, not \(value.typeName)")
            return []
        }
        return values
    }

    private mutating func meta(_ f: Fields) -> JSONValue { metaChecked(f).0 }

    /// `meta`, normalized ({} when absent), and whether it was a usable object.
    private mutating func metaChecked(_ f: Fields) -> (JSONValue, Bool) {
        guard let value = f["meta"] else { return (.object([:]), true) }
        guard case .object = value else {
            problems.append("\(f.path("meta")): must be an object, not \(value.typeName)")
            return (.object([:]), false)
        }
        let normalized = SeedImporter.normalized(value)
        // Limited as stored: the canonical text, as `meta_json` is in the CRUD calls.
        if let problem = TextLimit.json.problem(normalized.canonicalText) {
            problems.append("\(f.path("meta")): \(problem)")
            return (.object([:]), false)
        }
        return (normalized, true)
    }

    /// Reports strings and member names holding NUL (ignoring `rules`).
    mutating func findNUL(in root: JSONValue) {
        func walk(_ value: JSONValue, _ path: String, _ problems: inout [String]) {
            switch value {
            case .string(let text) where text.unicodeScalars.contains("\u{0}"):
                problems.append("\(path.isEmpty ? "document" : path): contains a NUL character (\\u0000), which the catalog cannot store")
            case .array(let values):
                for (index, element) in values.enumerated() { walk(element, "\(path)[\(index)]", &problems) }
            case .object(let members):
                for name in members.keys.sorted() where !(path.isEmpty && name == "rules") {
                    let child = path.isEmpty ? name : "\(path).\(name)"
                    if name.unicodeScalars.contains("\u{0}") {
                        problems.append("\(child): the member name contains a NUL character (\\u0000), which the catalog cannot store")
                    }
                    walk(members[name]!, child, &problems)
                }
            default:
                break
            }
        }
        walk(root, "", &problems)
    }
}

extension SeedImporter {
    /// `value` with every whole number as an integer (`2.0` → `2`), so what is stored
    /// (jsonb, read back as text) compares equal to what the document says.
    static func normalized(_ value: JSONValue) -> JSONValue {
        switch value {
        case .double(let number) where number.rounded() == number && abs(number) < 9.0e18:
            return .integer(Int64(number))
        case .array(let values):
            return .array(values.map(normalized))
        case .object(let members):
            return .object(members.mapValues(normalized))
        default:
            return value
        }
    }
}
