import STBJSON

/// A compiled, validated json-logic expression: the strict dialect the rules service evaluates
/// and the catalog checks transition conditions with.
///
/// Compilation resolves every operator to an enum case, pre-builds literals and checks arity,
/// depth (≤ 32) and size (≤ 2,000 nodes). Operators with side effects or open-ended behaviour
/// (`log`, `method`) and custom operators are refused.
///
/// Semantics follow json-logic-js (loose `==`, string-to-number coercions, `and`/`or` returning
/// the deciding operand, JS number formatting in `cat`), with these deliberate choices:
/// - Numeric results that are not finite (division or modulo by zero, `NaN` from a failed
///   string conversion, overflow to infinity) are evaluation errors, not `Infinity`/`NaN`/`null`.
/// - `if` needs at least 1 argument and `?:` exactly 3; `and`, `or`, `+`, `*`, `min`, `max` at least 1.
/// - An object that is not `{}` must have exactly one key (its operator); json-logic-js would
///   pass a multi-key object through as data.
/// - `*` with a single argument converts it to a number (json-logic-js returns it unchanged).
/// - Arrays and objects are never `==`/`===` to each other (JS compares them by identity).
/// - `var` does not read `length` or characters of strings.
/// - Strings compare, and `in` searches them, by code units, as JS does (not by Swift's
///   canonical equivalence).
/// Numbers stay `.integer` when exact, `.double` otherwise; integer arithmetic that has no
/// 64-bit result (`-9223372036854775808 / -1`, sums past the range) continues in doubles.
///
/// One evaluation is bounded, so that no expression or data can make it run long or grow large;
/// past a bound it fails with an error at the operation that crossed it:
/// - a string it builds (`cat`, `substr`, the string form of an array) is at most
///   `maxStringBytes` (1 MiB) of UTF-8;
/// - an array it builds (`merge`, `map`, `filter`, computed arrays) has at most `maxArrayLength`
///   (100,000) elements;
/// - `map`, `filter`, `reduce`, `all`, `none`, `some` refuse arrays longer than
///   `maxIterationArray` (10,000) elements;
/// - `reduce`, the one operation that feeds its result back, may not nest its result deeper
///   than `maxValueDepth` (128) levels;
/// - in all, it builds or reads at most `maxBytesPerEvaluation` (16 MiB): the UTF-8 bytes of
///   every string built, converted or searched, and 16 bytes per array element built;
/// - in all, it takes at most `maxStepsPerEvaluation` (1,000,000) steps: one per node
///   evaluated, per loop iteration, and per array element copied, searched or stringified.
/// Realistic rules use a tiny part of each (the public conformance suite and the demo rules
/// at most a few hundred steps).
public struct JSONLogic: Sendable, Hashable {
    /// The source expression (equality and hashing use it).
    public let expression: JSONValue
    /// Every variable name read with a constant name at the top level of the data
    /// (names read inside `map`/`filter`/`reduce`/`all`/`none`/`some` bodies refer to the element and are not listed).
    public let variables: Set<String>
    /// True when a variable name is computed at evaluation time (or the whole data is read with `{"var": ""}`),
    /// so `variables` is not the complete set of names read.
    public let usesDynamicVariables: Bool

    let root: LogicNode

    /// Deepest nesting of an expression.
    public static let maxDepth = 32
    /// Most nodes in an expression.
    public static let maxNodes = 2_000
    /// Longest array `map`, `filter`, `reduce`, `all`, `none`, `some` iterate over.
    public static let maxIterationArray = 10_000
    /// Most steps (nodes evaluated, iterations, elements copied or searched) in one evaluation.
    public static let maxStepsPerEvaluation = 1_000_000
    /// Longest string, in UTF-8 bytes, an evaluation builds.
    public static let maxStringBytes = 1 << 20
    /// Longest array an evaluation builds.
    public static let maxArrayLength = 100_000
    /// Most bytes one evaluation builds or reads (strings, and 16 bytes per array element built).
    public static let maxBytesPerEvaluation = 16 << 20
    /// Deepest nesting of arrays and objects in a `reduce` result.
    public static let maxValueDepth = 128
    /// What an array element built counts towards `maxBytesPerEvaluation`.
    static let bytesPerArrayElement = 16

    public init(_ expression: JSONValue) throws(JSONLogicError) {
        var compiler = LogicCompiler()
        root = try compiler.compile(expression, path: "", depth: 1, scoped: false)
        self.expression = expression
        variables = compiler.variables
        usesDynamicVariables = compiler.dynamic
    }

    public static func == (lhs: JSONLogic, rhs: JSONLogic) -> Bool { lhs.expression == rhs.expression }
    public func hash(into hasher: inout Hasher) { hasher.combine(expression) }

    /// Evaluates against data given as a lookup from a top-level variable name to its value (nil = absent).
    ///
    /// `{"var": "a.b"}` first asks for `"a.b"`, then for `"a"` and walks into it. `{"var": ""}` (the whole data)
    /// is an error with a lookup.
    public func evaluate(_ lookup: (String) -> JSONValue?) throws(JSONLogicError) -> JSONValue {
        var state = EvalState()
        return try LogicEvaluator.eval(root, .top(whole: nil), &state, lookup)
    }

    /// Evaluates against a JSON value; `var "a.b.0"` walks objects and arrays, an exact top-level key
    /// (which may contain dots) is tried first.
    public func evaluate(data: JSONValue) throws(JSONLogicError) -> JSONValue {
        var state = EvalState()
        return try LogicEvaluator.eval(root, .top(whole: data), &state) { name in
            LogicEvaluator.member(of: data, key: name, index: LogicPath.index(name))
        }
    }

    /// json-logic truthiness: `[]`, `0`, `""`, `null`, `false` are falsy; `"0"`, `{}` and the rest truthy.
    public static func isTruthy(_ value: JSONValue) -> Bool {
        switch value {
        case .null: false
        case .bool(let value): value
        case .integer(let value): value != 0
        case .double(let value): value != 0 && !value.isNaN
        case .string(let value): !value.isEmpty
        case .array(let values): !values.isEmpty
        case .object: true
        }
    }
}

public struct JSONLogicError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Where the problem is, e.g. `and[1].<=[0]`; empty for the expression's root.
    public let path: String
    public let message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

// MARK: - Compiled tree

enum LogicOp: Sendable {
    case ifThen, equal, strictEqual, notEqual, strictNotEqual, not, notNot, or, and
    case less, lessOrEqual, greater, greaterOrEqual, max, min
    case add, subtract, multiply, divide, modulo
    case map, filter, reduce, all, none, some
    case merge, inArray, cat, substr, missing, missingSome

    static let byName: [String: LogicOp] = [
        "if": .ifThen, "?:": .ifThen, "==": .equal, "===": .strictEqual, "!=": .notEqual, "!==": .strictNotEqual,
        "!": .not, "!!": .notNot, "or": .or, "and": .and, "<": .less, "<=": .lessOrEqual, ">": .greater,
        ">=": .greaterOrEqual, "max": .max, "min": .min, "+": .add, "-": .subtract, "*": .multiply, "/": .divide,
        "%": .modulo, "map": .map, "filter": .filter, "reduce": .reduce, "all": .all, "none": .none, "some": .some,
        "merge": .merge, "in": .inArray, "cat": .cat, "substr": .substr, "missing": .missing,
        "missing_some": .missingSome,
    ]

    /// Inclusive argument count bounds (nil: no upper bound).
    func arity(name: String) -> (Int, Int?) {
        switch self {
        case .ifThen: name == "?:" ? (3, 3) : (1, nil)
        case .equal, .strictEqual, .notEqual, .strictNotEqual, .greater, .greaterOrEqual: (2, 2)
        case .not, .notNot: (1, 1)
        case .or, .and, .max, .min, .add, .multiply: (1, nil)
        case .less, .lessOrEqual: (2, 3)
        case .subtract: (1, 2)
        case .divide, .modulo, .inArray: (2, 2)
        case .map, .filter, .all, .none, .some: (2, 2)
        case .reduce: (2, 3)
        case .merge, .cat, .missing: (0, nil)
        case .substr: (2, 3)
        case .missingSome: (2, 2)
        }
    }
}

struct LogicPath: Sendable {
    struct Component: Sendable {
        let key: String
        let index: Int?
    }

    /// "" means the whole data.
    let name: String
    let components: [Component]

    init(_ name: String) {
        self.name = name
        components = name.isEmpty ? [] : name.split(separator: ".", omittingEmptySubsequences: false).map {
            Component(key: String($0), index: LogicPath.index(String($0)))
        }
    }

    /// An array index written canonically ("0", "12"; not "01", "-1", "+1").
    static func index(_ key: String) -> Int? {
        guard let value = Int(key), value >= 0, String(value) == key else { return nil }
        return value
    }
}

indirect enum LogicNode: Sendable {
    case literal(JSONValue)
    /// An array with computed elements.
    case array([LogicNode])
    /// `var` with a constant name; the default (if any) is evaluated only when needed.
    case variable(LogicPath, LogicNode?)
    /// `var` with a computed name.
    case dynamicVariable(LogicNode, LogicNode?, path: String)
    case operation(LogicOp, [LogicNode], path: String)
}

// MARK: - Compiler

struct LogicCompiler {
    var variables: Set<String> = []
    var dynamic = false
    var nodes = 0

    static let refused: [String: String] = [
        "log": "operator \"log\" is not allowed (it has side effects)",
        "method": "operator \"method\" is not allowed (it calls arbitrary methods)",
    ]

    mutating func count(_ path: String, depth: Int) throws(JSONLogicError) {
        nodes += 1
        guard nodes <= JSONLogic.maxNodes else {
            throw JSONLogicError(path: path, message: "expression has more than \(JSONLogic.maxNodes) nodes")
        }
        guard depth <= JSONLogic.maxDepth else {
            throw JSONLogicError(path: path, message: "expression is nested deeper than \(JSONLogic.maxDepth) levels")
        }
    }

    mutating func compile(_ value: JSONValue, path: String, depth: Int, scoped: Bool) throws(JSONLogicError) -> LogicNode {
        try count(path, depth: depth)
        switch value {
        case .array(let elements):
            var compiled: [LogicNode] = []
            compiled.reserveCapacity(elements.count)
            for (index, element) in elements.enumerated() {
                compiled.append(try compile(element, path: "\(path)[\(index)]", depth: depth + 1, scoped: scoped))
            }
            return Self.foldArray(compiled)
        case .object(let members):
            if members.isEmpty { return .literal(value) }
            guard members.count == 1, let (name, argument) = members.first else {
                throw JSONLogicError(
                    path: path,
                    message: "an operation must have exactly one key, found \(members.count): \(members.keys.sorted().joined(separator: ", "))")
            }
            return try compileOperation(name, argument, path: path, depth: depth, scoped: scoped)
        default:
            return .literal(value)
        }
    }

    static func foldArray(_ compiled: [LogicNode]) -> LogicNode {
        var literals: [JSONValue] = []
        literals.reserveCapacity(compiled.count)
        for node in compiled {
            guard case .literal(let value) = node else { return .array(compiled) }
            literals.append(value)
        }
        return .literal(.array(literals))
    }

    mutating func compileOperation(
        _ name: String, _ argument: JSONValue, path: String, depth: Int, scoped: Bool
    ) throws(JSONLogicError) -> LogicNode {
        if let reason = Self.refused[name] { throw JSONLogicError(path: path, message: reason) }
        if name == "var" { return try compileVariable(argument, path: path, depth: depth, scoped: scoped) }
        guard let op = LogicOp.byName[name] else {
            throw JSONLogicError(path: path, message: "unknown operator \(JSONValue.string(name).canonicalText)")
        }
        let opPath = path.isEmpty ? name : "\(path).\(name)"
        let rawArguments: [JSONValue]
        if case .array(let values) = argument { rawArguments = values } else { rawArguments = [argument] }

        let (minimum, maximum) = op.arity(name: name)
        if rawArguments.count < minimum {
            throw JSONLogicError(path: opPath, message: "needs at least \(minimum) argument\(minimum == 1 ? "" : "s"), got \(rawArguments.count)")
        }
        if let maximum, rawArguments.count > maximum {
            throw JSONLogicError(path: opPath, message: "takes at most \(maximum) argument\(maximum == 1 ? "" : "s"), got \(rawArguments.count)")
        }

        var arguments: [LogicNode] = []
        arguments.reserveCapacity(rawArguments.count)
        for (index, raw) in rawArguments.enumerated() {
            // The body of an iterating operator reads the current element, not the data.
            let bodyScoped: Bool
            switch op {
            case .map, .filter, .reduce, .all, .none, .some: bodyScoped = scoped || index == 1
            default: bodyScoped = scoped
            }
            arguments.append(try compile(raw, path: "\(opPath)[\(index)]", depth: depth + 1, scoped: bodyScoped))
        }

        if !scoped {
            switch op {
            case .missing:
                noteNames(arguments, allowNestedFirstArray: true)
            case .missingSome:
                noteNames([arguments[1]], allowNestedFirstArray: true)
            default: break
            }
        }
        return .operation(op, arguments, path: opPath)
    }

    /// Records the constant names of `missing` / `missing_some`, or marks the expression dynamic.
    mutating func noteNames(_ arguments: [LogicNode], allowNestedFirstArray: Bool) {
        var keys: [JSONValue] = []
        if let first = arguments.first, case .literal(.array(let list)) = first {
            keys = list  // `missing` uses a first argument that is an array as the list
        } else {
            for argument in arguments {
                guard case .literal(let key) = argument else {
                    dynamic = true
                    return
                }
                keys.append(key)
            }
        }
        for key in keys {
            if let name = LogicEvaluator.variableName(key) { note(name) } else { dynamic = true }
        }
    }

    mutating func note(_ name: String) {
        if name.isEmpty { dynamic = true } else { variables.insert(name) }
    }
}

extension LogicCompiler {
    /// `var` is compiled apart: `{"var": name}`, `{"var": [name]}`, `{"var": [name, default]}`, `{"var": []}`.
    mutating func compileVariable(_ argument: JSONValue, path: String, depth: Int, scoped: Bool) throws(JSONLogicError) -> LogicNode {
        let opPath = path.isEmpty ? "var" : "\(path).var"
        let rawArguments: [JSONValue]
        if case .array(let values) = argument { rawArguments = values } else { rawArguments = [argument] }
        guard rawArguments.count <= 2 else {
            throw JSONLogicError(path: opPath, message: "takes at most 2 arguments, got \(rawArguments.count)")
        }
        var fallback: LogicNode?
        if rawArguments.count == 2 {
            fallback = try compile(rawArguments[1], path: "\(opPath)[1]", depth: depth + 1, scoped: scoped)
        }
        guard let rawName = rawArguments.first else {
            if !scoped { dynamic = true }
            return .variable(LogicPath(""), fallback)
        }
        let name = try compile(rawName, path: "\(opPath)[0]", depth: depth + 1, scoped: scoped)
        guard case .literal(let constant) = name else {
            if !scoped { dynamic = true }
            return .dynamicVariable(name, fallback, path: opPath)
        }
        guard let text = LogicEvaluator.variableName(constant) else {
            throw JSONLogicError(path: "\(opPath)[0]", message: "a variable name must be a string, a number or null, not \(constant.typeName)")
        }
        if !scoped { note(text) }
        return .variable(LogicPath(text), fallback)
    }
}
