// A validation rule's json-logic compiled against the catalog: each `var` resolved to its
// option slot once, constants converted once, the tree kept in flat arrays of plain
// values. Checking a rule then reads the selection's arrays by slot, with no variable name
// looked up, no closure per variable and no `JSONValue` boxed per number.
//
// It covers the operators realistic validations use (`var` of a plain option key, `and`,
// `or`, `!`, `!!`, `if`, the comparisons, `==`/`===` and their negations, `in` over an
// array) on null, booleans, numbers and strings. Anything else, or an operand it cannot
// decide exactly as `JSONLogic` does (a loose comparison of a number with a string, say),
// gives no answer, and the rule is checked by `JSONLogic.evaluate` as before: the outcome
// is always the one `JSONLogic` gives.
import STBJSON
import STBJSONLogic

/// The option values a `SlotLogic` reads, by slot.
protocol SlotValues {
    /// The value of the option in `slot` when it is included; nil when it is absent.
    func includedValue(_ slot: Int) -> JSONValue?
}

/// A json-logic expression over option slots; see the file header for what it covers.
struct SlotLogic: Sendable {
    enum Op: UInt8, Sendable {
        case literal, variable, and, or, not, notNot, ifThen
        case less, lessOrEqual, greater, greaterOrEqual
        case equal, notEqual, strictEqual, strictNotEqual, inArray
    }

    /// One node: `first..<first + count` in `children` are its arguments; a literal's value
    /// is `literals[first]`; a variable reads slot `first` (-1: not in the catalog) and
    /// falls back to `literals[count]` when absent (-1: null).
    struct Node: Sendable {
        var op: Op
        var first: Int32
        var count: Int32
    }

    /// A value as the evaluator sees it: numbers unboxed; strings and anything larger
    /// through `JSONValue`.
    enum Value {
        case null
        case bool(Bool)
        case integer(Int64)
        case double(Double)
        case string(String)
        /// An array or object (only `in` reads an array's elements).
        case composite(JSONValue)

        init(_ value: JSONValue) {
            switch value {
            case .null: self = .null
            case .bool(let flag): self = .bool(flag)
            case .integer(let number): self = .integer(number)
            case .double(let number): self = .double(number)
            case .string(let text): self = .string(text)
            case .array, .object: self = .composite(value)
            }
        }

        /// `JSONLogic.isTruthy`.
        var isTruthy: Bool {
            switch self {
            case .null: false
            case .bool(let flag): flag
            case .integer(let number): number != 0
            case .double(let number): number != 0 && !number.isNaN
            case .string(let text): !text.isEmpty
            case .composite(let value): JSONLogic.isTruthy(value)
            }
        }
    }

    let nodes: [Node]
    let children: [Int32]
    let literals: [Value]

    /// Strings longer than this are left to `JSONLogic` (whose per-evaluation byte budget
    /// a comparison of long strings could reach).
    static let longestString = 1 << 16

    /// The compiled form of `expression` (a `JSONLogic`'s source) with option keys
    /// resolved through `indexOf`; nil when it uses anything outside the covered subset.
    init?(_ expression: JSONValue, indexOf: [String: Int]) {
        var builder = Builder(indexOf: indexOf)
        guard builder.node(expression) != nil else { return nil }
        // The root is the last node built.
        nodes = builder.nodes
        children = builder.children
        literals = builder.literals
    }

    /// Whether the expression is truthy for a selection whose option in slot `s` reads
    /// `values.includedValue(s)` (nil: absent, i.e. excluded); nil when this form cannot
    /// tell exactly.
    @inline(__always)
    func passes<Values: SlotValues>(_ values: Values) -> Bool? {
        guard let result = evaluate(Int32(nodes.count - 1), values) else { return nil }
        return result.isTruthy
    }

    /// `passes` for a selection whose option in slot `s` reads `read(s)`.
    func passes(_ read: (Int) -> JSONValue?) -> Bool? {
        withoutActuallyEscaping(read) { passes(ReadBySlot(read: $0)) }
    }

    /// A reader made of a function, for callers that have no `SlotValues` of their own.
    private struct ReadBySlot: SlotValues {
        let read: (Int) -> JSONValue?
        func includedValue(_ slot: Int) -> JSONValue? { read(slot) }
    }

    // Generic over the reader rather than taking a closure: a closure capturing the
    // selection's state made each call of this recursion copy that state (a retain and a
    // release of each of its arrays per node), the most of a check's time.
    private func evaluate<Values: SlotValues>(_ index: Int32, _ read: Values) -> Value? {
        let node = nodes[Int(index)]
        let first = Int(node.first)
        let count = Int(node.count)
        switch node.op {
        case .literal:
            return literals[first]
        case .variable:
            if first >= 0, let value = read.includedValue(first) { return Value(value) }
            return count >= 0 ? literals[count] : .null
        case .and, .or:
            var current = Value.null
            for position in first..<first + count {
                guard let value = evaluate(children[position], read) else { return nil }
                current = value
                if current.isTruthy != (node.op == .and) { return current }
            }
            return current
        case .not, .notNot:
            guard let value = evaluate(children[first], read) else { return nil }
            return .bool(value.isTruthy == (node.op == .notNot))
        case .ifThen:
            var position = first
            let end = first + count
            while position < end - 1 {
                guard let condition = evaluate(children[position], read) else { return nil }
                if condition.isTruthy { return evaluate(children[position + 1], read) }
                position += 2
            }
            return position == end - 1 ? evaluate(children[position], read) : .null
        case .less, .lessOrEqual:
            let orEqual = node.op == .lessOrEqual
            guard let a = evaluate(children[first], read), let b = evaluate(children[first + 1], read),
                  let ab = Self.less(a, b, orEqual: orEqual)
            else { return nil }
            guard ab else { return .bool(false) }
            if count == 3 {
                guard let c = evaluate(children[first + 2], read), let bc = Self.less(b, c, orEqual: orEqual) else { return nil }
                return .bool(bc)
            }
            return .bool(true)
        case .greater, .greaterOrEqual:
            guard let a = evaluate(children[first], read), let b = evaluate(children[first + 1], read),
                  let ba = Self.less(b, a, orEqual: node.op == .greaterOrEqual)
            else { return nil }
            return .bool(ba)
        case .equal, .notEqual:
            guard let a = evaluate(children[first], read), let b = evaluate(children[first + 1], read),
                  let same = Self.looseEquals(a, b)
            else { return nil }
            return .bool(same == (node.op == .equal))
        case .strictEqual, .strictNotEqual:
            guard let a = evaluate(children[first], read), let b = evaluate(children[first + 1], read),
                  let same = Self.strictEquals(a, b)
            else { return nil }
            return .bool(same == (node.op == .strictEqual))
        case .inArray:
            guard let needle = evaluate(children[first], read), let haystack = evaluate(children[first + 1], read) else { return nil }
            switch haystack {
            case .composite(.array(let elements)):
                for element in elements {
                    guard let same = Self.strictEquals(needle, Value(element)) else { return nil }
                    if same { return .bool(true) }
                }
                return .bool(false)
            case .string:
                // A search inside a string: left to JSONLogic.
                return nil
            default:
                return .bool(false)
            }
        }
    }

    /// JS `a < b` (`<=`) where it is plain: two numbers, or null and booleans read as numbers.
    @inline(__always)
    static func less(_ a: Value, _ b: Value, orEqual: Bool) -> Bool? {
        if case .integer(let x) = a, case .integer(let y) = b { return orEqual ? x <= y : x < y }
        guard let x = number(a), let y = number(b) else { return nil }
        return orEqual ? x <= y : x < y
    }

    /// JS ToNumber of null, a boolean or a number; nil for the rest.
    @inline(__always)
    static func number(_ value: Value) -> Double? {
        switch value {
        case .null: 0
        case .bool(let flag): flag ? 1 : 0
        case .integer(let number): Double(number)
        case .double(let number): number
        case .string, .composite: nil
        }
    }

    /// JS `===` (nil for a string too long to compare here).
    static func strictEquals(_ a: Value, _ b: Value) -> Bool? {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.string(let x), .string(let y)): return sameString(x, y)
        case (.integer(let x), .integer(let y)): return x == y
        case (.integer, .double), (.double, .integer), (.double, .double): return number(a) == number(b)
        default: return false
        }
    }

    /// JS `==` where it needs no conversion through strings; nil otherwise.
    static func looseEquals(_ a: Value, _ b: Value) -> Bool? {
        switch (a, b) {
        case (.null, .null): return true
        case (.null, _), (_, .null): return false
        case (.integer(let x), .integer(let y)): return x == y
        case (.integer, .double), (.double, .integer), (.double, .double): return number(a) == number(b)
        case (.string(let x), .string(let y)): return sameString(x, y)
        case (.bool(let x), .bool(let y)): return x == y
        case (.bool(let x), .integer), (.bool(let x), .double): return looseEquals(.integer(x ? 1 : 0), b)
        case (.integer, .bool(let y)), (.double, .bool(let y)): return looseEquals(a, .integer(y ? 1 : 0))
        default: return nil
        }
    }

    /// The same UTF-8 (JS compares code units, not canonical equivalence).
    @inline(__always)
    static func sameString(_ x: String, _ y: String) -> Bool? {
        let count = x.utf8.count
        guard count == y.utf8.count else { return false }
        if count > longestString { return nil }
        return x.utf8.elementsEqual(y.utf8)
    }

    /// Builds the flat form, children before their parent.
    private struct Builder {
        let indexOf: [String: Int]
        var nodes: [Node] = []
        var children: [Int32] = []
        var literals: [Value] = []

        mutating func literal(_ value: Value) -> Int32 {
            literals.append(value)
            return Int32(literals.count - 1)
        }

        mutating func add(_ node: Node) -> Int32 {
            nodes.append(node)
            return Int32(nodes.count - 1)
        }

        /// A literal as `JSONLogic` compiles it: a scalar, `{}`, or an array of scalars.
        func literalValue(_ value: JSONValue) -> Value? {
            switch value {
            case .null, .bool, .integer, .double: return Value(value)
            case .string(let text): return text.utf8.count > SlotLogic.longestString ? nil : .string(text)
            case .object(let members): return members.isEmpty ? .composite(value) : nil
            case .array(let elements):
                for element in elements {
                    switch element {
                    case .null, .bool, .integer, .double, .string: continue
                    default: return nil
                    }
                }
                return .composite(value)
            }
        }

        mutating func node(_ value: JSONValue) -> Int32? {
            if let constant = literalValue(value) { return add(Node(op: .literal, first: literal(constant), count: 0)) }
            guard case .object(let members) = value, members.count == 1, let (name, argument) = members.first else { return nil }
            let arguments: [JSONValue]
            if case .array(let values) = argument { arguments = values } else { arguments = [argument] }
            if name == "var" { return variable(arguments) }
            let op: Op
            switch name {
            case "and": op = .and
            case "or": op = .or
            case "!": op = .not
            case "!!": op = .notNot
            case "if", "?:": op = .ifThen
            case "<": op = .less
            case "<=": op = .lessOrEqual
            case ">": op = .greater
            case ">=": op = .greaterOrEqual
            case "==": op = .equal
            case "!=": op = .notEqual
            case "===": op = .strictEqual
            case "!==": op = .strictNotEqual
            case "in": op = .inArray
            default: return nil
            }
            // The arities `JSONLogic` enforced when the rule was compiled.
            switch op {
            case .and, .or, .ifThen: guard !arguments.isEmpty else { return nil }
            case .not, .notNot: guard arguments.count == 1 else { return nil }
            case .less, .lessOrEqual: guard arguments.count == 2 || arguments.count == 3 else { return nil }
            default: guard arguments.count == 2 else { return nil }
            }
            var built: [Int32] = []
            for argument in arguments {
                guard let child = node(argument) else { return nil }
                built.append(child)
            }
            let first = Int32(children.count)
            children.append(contentsOf: built)
            return add(Node(op: op, first: first, count: Int32(built.count)))
        }

        /// `{"var": name}` or `{"var": [name, default]}` for a plain option key (no dot) and
        /// a literal default.
        mutating func variable(_ arguments: [JSONValue]) -> Int32? {
            guard arguments.count == 1 || arguments.count == 2, case .string(let name) = arguments[0], !name.isEmpty,
                  !name.utf8.contains(UInt8(ascii: "."))
            else { return nil }
            var fallback: Int32 = -1
            if arguments.count == 2 {
                guard let constant = literalValue(arguments[1]) else { return nil }
                fallback = literal(constant)
            }
            let slot = indexOf[name].map { Int32($0) } ?? -1
            return add(Node(op: .variable, first: slot, count: fallback))
        }
    }
}
