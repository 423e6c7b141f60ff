import Foundation
import STBJSON
import STBJSONLogic
import Testing

/// Every arithmetic and comparison operator over extreme operands: no operand may stop the
/// process, and each result is what json-logic-js gives or, where JS has no finite number,
/// an evaluation error.
@Suite("JSONLogic arithmetic with extreme operands")
struct JSONLogicArithmeticTests {
    /// An operand with what JS makes of it: `Number(x)`, `parseFloat(x)` (what `+` and `*`
    /// use) and, for strings, arrays and objects, `String(x)` (what comparisons use).
    struct Operand: CustomStringConvertible {
        let json: JSONValue
        let number: Double
        let parsed: Double
        let text: String?

        init(_ json: JSONValue, number: Double, parsed: Double? = nil, text: String? = nil) {
            self.json = json
            self.number = number
            self.parsed = parsed ?? number
            self.text = text
        }

        var description: String { json.canonicalText }

        /// Integers beyond 2^53 stay exact here, where JS would have rounded the literal.
        var isExactBeyondDouble: Bool {
            if case .integer(let value) = json { return value.magnitude > 1 << 53 }
            return false
        }
    }

    static let operands: [Operand] = [
        Operand(.integer(.min), number: -9223372036854775808),
        Operand(.integer(.max), number: Double(Int64.max)),
        Operand(.integer(-1), number: -1),
        Operand(.integer(0), number: 0),
        Operand(.integer(1), number: 1),
        Operand(.integer(9007199254740991), number: 9007199254740991),
        Operand(.integer(9007199254740993), number: Double(9007199254740993 as Int64)),
        Operand(.integer(-9007199254740991), number: -9007199254740991),
        Operand(.integer(-9007199254740993), number: Double(-9007199254740993 as Int64)),
        Operand(.double(1e308), number: 1e308),
        Operand(.double(-1e308), number: -1e308),
        Operand(.double(.leastNonzeroMagnitude), number: .leastNonzeroMagnitude),
        Operand(.double(-0.0), number: -0.0),
        Operand(.string("9223372036854775808"), number: 9223372036854775808, text: "9223372036854775808"),
        Operand(.string("-9223372036854775809"), number: -0x1p63, text: "-9223372036854775809"),
        Operand(.string("-0"), number: -0.0, text: "-0"),
        Operand(.string("1e400"), number: .infinity, text: "1e400"),
        Operand(.string(""), number: 0, parsed: .nan, text: ""),
        Operand(.string("abc"), number: .nan, text: "abc"),
        Operand(.string(" 12 "), number: 12, text: " 12 "),
        Operand(.bool(true), number: 1, parsed: .nan),
        Operand(.bool(false), number: 0, parsed: .nan),
        Operand(.null, number: 0, parsed: .nan),
        Operand(.array([]), number: 0, parsed: .nan, text: ""),
        Operand(.array([.integer(7)]), number: 7, text: "7"),
        Operand(.array([.integer(1), .integer(2)]), number: .nan, parsed: 1, text: "1,2"),
        Operand(.object([:]), number: .nan, text: "[object Object]"),
    ]

    static func run(_ op: String, _ arguments: [JSONValue]) -> Result<JSONValue, JSONLogicError> {
        Result { () throws(JSONLogicError) -> JSONValue in
            try JSONLogic(.object([op: .array(arguments)])).evaluate(data: .null)
        }
    }

    /// The result matches JS's number: equal, or within `tolerance` (where our integers were
    /// exact and JS's rounded); a non-finite JS result must be an error.
    static func matches(_ result: Result<JSONValue, JSONLogicError>, _ expected: Double, tolerance: Double) -> Bool {
        switch result {
        case .failure: return !expected.isFinite
        case .success(let value):
            guard expected.isFinite, let number = value.numberValue else { return false }
            return number == expected || abs(number - expected) <= tolerance
        }
    }

    /// How far exact integer arithmetic may land from JS's rounded operands.
    static func tolerance(_ expected: Double, _ operands: Operand...) -> Double {
        guard operands.contains(where: \.isExactBeyondDouble) else { return 0 }
        return 0x1p-50 * Swift.max(abs(expected), operands.reduce(0) { $0 + abs($1.number) })
    }

    @Test("+ - * / % min max, binary and unary, over every pair of extreme operands")
    func arithmetic() {
        var failures: [String] = []
        for a in Self.operands {
            let unary: [(String, Double)] = [("+", a.parsed), ("*", a.parsed), ("-", -a.number), ("min", a.number), ("max", a.number)]
            for (op, expected) in unary {
                let result = Self.run(op, [a.json])
                if !Self.matches(result, expected, tolerance: Self.tolerance(expected, a)) {
                    failures.append("{\"\(op)\": [\(a)]} gave \(result), JS: \(expected)")
                }
            }
            for b in Self.operands {
                let binary: [(String, Double)] = [
                    ("+", a.parsed + b.parsed), ("*", a.parsed * b.parsed), ("-", a.number - b.number),
                    ("/", a.number / b.number), ("%", fmod(a.number, b.number)),
                    ("min", a.number.isNaN || b.number.isNaN ? .nan : Swift.min(a.number, b.number)),
                    ("max", a.number.isNaN || b.number.isNaN ? .nan : Swift.max(a.number, b.number)),
                ]
                for (op, expected) in binary {
                    let result = Self.run(op, [a.json, b.json])
                    // A remainder of exact integers past 2^53 has no JS counterpart (JS rounds
                    // the operands first, and a remainder does not round smoothly).
                    if op == "%", a.isExactBeyondDouble || b.isExactBeyondDouble {
                        if case .success(.integer) = result { continue }
                    }
                    if !Self.matches(result, expected, tolerance: Self.tolerance(expected, a, b)) {
                        failures.append("{\"\(op)\": [\(a), \(b)]} gave \(result), JS: \(expected)")
                    }
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.count) mismatches:\n\(failures.prefix(40).joined(separator: "\n"))")
    }

    /// JS `a < b` after ToPrimitive: two strings compare by code units, anything else as numbers.
    static func jsLess(_ a: Operand, _ b: Operand, orEqual: Bool) -> Bool {
        if case .integer(let x) = a.json, case .integer(let y) = b.json { return orEqual ? x <= y : x < y }
        if let x = a.text, let y = b.text {
            if orEqual { return !y.utf16.lexicographicallyPrecedes(x.utf16) }
            return x.utf16.lexicographicallyPrecedes(y.utf16)
        }
        return orEqual ? a.number <= b.number : a.number < b.number
    }

    /// JS `==` for these operands (no `undefined`; arrays and objects by identity, so never equal to each other).
    static func jsLooseEqual(_ a: Operand, _ b: Operand) -> Bool {
        func isComposite(_ value: JSONValue) -> Bool {
            switch value {
            case .array, .object: true
            default: false
            }
        }
        switch (a.json, b.json) {
        case (.null, .null): return true
        case (.null, _), (_, .null): return false
        case (.integer(let x), .integer(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.bool(let x), .bool(let y)): return x == y
        default: break
        }
        if isComposite(a.json) && isComposite(b.json) { return false }
        if isComposite(a.json), case .string(let y) = b.json { return a.text == y }
        if isComposite(b.json), case .string(let x) = a.json { return b.text == x }
        return a.number == b.number
    }

    static func jsStrictEqual(_ a: Operand, _ b: Operand) -> Bool {
        switch (a.json, b.json) {
        case (.null, .null): return true
        case (.integer(let x), .integer(let y)): return x == y
        case (.integer, .double), (.double, .integer), (.double, .double): return a.number == b.number
        case (.string(let x), .string(let y)): return x == y
        case (.bool(let x), .bool(let y)): return x == y
        default: return false
        }
    }

    @Test("< <= > >= == != === !== over every pair of extreme operands")
    func comparisons() {
        var failures: [String] = []
        for a in Self.operands {
            for b in Self.operands {
                let expected: [(String, Bool)] = [
                    ("<", Self.jsLess(a, b, orEqual: false)), ("<=", Self.jsLess(a, b, orEqual: true)),
                    (">", Self.jsLess(b, a, orEqual: false)), (">=", Self.jsLess(b, a, orEqual: true)),
                    ("==", Self.jsLooseEqual(a, b)), ("!=", !Self.jsLooseEqual(a, b)),
                    ("===", Self.jsStrictEqual(a, b)), ("!==", !Self.jsStrictEqual(a, b)),
                ]
                for (op, value) in expected {
                    let result = Self.run(op, [a.json, b.json])
                    if case .success(.bool(value)) = result { continue }
                    failures.append("{\"\(op)\": [\(a), \(b)]} gave \(result), JS: \(value)")
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.count) mismatches:\n\(failures.prefix(40).joined(separator: "\n"))")
    }

    /// JS ToIntegerOrInfinity.
    static func integerOrInfinity(_ number: Double) -> Double { number.isNaN ? 0 : number.rounded(.towardZero) }

    /// json-logic-js `substr` on a string of code units, for numeric start and length.
    static func jsSubstr(_ units: [UInt16], _ start: Double, _ length: Double?) -> [UInt16] {
        let count = Double(units.count)
        var from = integerOrInfinity(start)
        from = from < 0 ? Swift.max(count + from, 0) : Swift.min(from, count)
        let rest = Array(units[Int(from)...])
        guard let length else { return rest }
        let size = integerOrInfinity(length)
        let end = length < 0 ? Swift.max(Double(rest.count) + size, 0) : Swift.min(Swift.max(size, 0), Double(rest.count))
        return Array(rest[..<Int(end)])
    }

    @Test("substr, cat and in with extreme numbers as indices and values")
    func strings() throws {
        let source = "héllo wörld"
        let units = Array(source.utf16)
        let numeric = Self.operands.filter { if case .string = $0.json { return false } else { return true } }
        var failures: [String] = []
        for start in numeric {
            let two = Self.run("substr", [.string(source), start.json])
            if case .success(.string(let text)) = two, Array(text.utf16) == Self.jsSubstr(units, start.number, nil) {} else {
                failures.append("substr(\(start)) gave \(two)")
            }
            for length in numeric {
                let three = Self.run("substr", [.string(source), start.json, length.json])
                if case .success(.string(let text)) = three, Array(text.utf16) == Self.jsSubstr(units, start.number, length.number) { continue }
                failures.append("substr(\(start), \(length)) gave \(three)")
            }
            // `cat` and `in` stringify the operand; only that nothing traps matters for the exact ints.
            _ = Self.run("cat", [start.json, .string("|")])
            _ = Self.run("in", [start.json, .string(source)])
            _ = Self.run("in", [start.json, .array(Self.operands.map(\.json))])
        }
        #expect(failures.isEmpty, "\(failures.count) mismatches:\n\(failures.prefix(40).joined(separator: "\n"))")
        #expect(Self.run("cat", [.double(1e308), .string(" "), .double(-1e308), .string(" "), .double(.leastNonzeroMagnitude), .string(" "), .double(-0.0)])
            == .success(.string("1e+308 -1e+308 5e-324 0")))
    }

    @Test("the division that used to stop the process")
    func minDividedByMinusOne() throws {
        #expect(Self.run("/", [.integer(.min), .integer(-1)]) == .success(.double(9223372036854775808)))
        #expect(Self.run("%", [.integer(.min), .integer(-1)]) == .success(.integer(0)))
        #expect(Self.run("*", [.integer(.min), .integer(-1)]) == .success(.double(9223372036854775808)))
        #expect(Self.run("-", [.integer(.min)]) == .success(.double(9223372036854775808)))
        #expect(Self.run("-", [.integer(0), .integer(.min)]) == .success(.double(9223372036854775808)))
        #expect(Self.run("/", [.integer(.min), .integer(1)]) == .success(.integer(.min)))
        #expect(Self.run("/", [.integer(.max), .integer(-1)]) == .success(.integer(-.max)))
    }
}
