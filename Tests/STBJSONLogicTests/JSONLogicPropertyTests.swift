import Foundation
import STBJSON
import STBJSONLogic
import STBTestSupport
import Testing

/// Random expression trees over every operator, extreme literals, strings and arrays: none may
/// stop the process, and each either evaluates or fails with a `JSONLogicError`, quickly.
/// The seed is fixed so a failure reproduces; `STB_JSONLOGIC_SEED` picks another.
@Suite("JSONLogic random expressions")
struct JSONLogicPropertyTests {
    /// SplitMix64: small, fast and the same on every platform.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let seed: UInt64 = ProcessInfo.processInfo.environment["STB_JSONLOGIC_SEED"].flatMap { UInt64($0) } ?? 20_240_917
    static let trees = 6_000

    /// Every operator, with the argument counts it accepts (nil: any); other counts are tried too.
    static let operators: [(String, ClosedRange<Int>)] = [
        ("if", 1...5), ("?:", 3...3), ("==", 2...2), ("===", 2...2), ("!=", 2...2), ("!==", 2...2), ("!", 1...1),
        ("!!", 1...1), ("or", 1...4), ("and", 1...4), ("<", 2...3), ("<=", 2...3), (">", 2...2), (">=", 2...2),
        ("max", 1...4), ("min", 1...4), ("+", 1...4), ("-", 1...2), ("*", 1...4), ("/", 2...2), ("%", 2...2),
        ("map", 2...2), ("filter", 2...2), ("reduce", 2...3), ("all", 2...2), ("none", 2...2), ("some", 2...2),
        ("merge", 0...4), ("in", 2...2), ("cat", 0...4), ("substr", 2...3), ("missing", 0...3), ("missing_some", 2...2),
        ("var", 0...2),
    ]

    static let literals: [JSONValue] = [
        .integer(.min), .integer(.max), .integer(-1), .integer(0), .integer(1), .integer(2), .integer(30),
        .integer(9007199254740993), .integer(-9007199254740993), .double(1e308), .double(-1e308), .double(.leastNonzeroMagnitude),
        .double(-0.0), .double(0.5), .string("9223372036854775808"), .string("-0"), .string("1e400"), .string(""),
        .string("abc"), .string("a.b"), .string("xs"), .string("0x1F"), .string("héllo"), .string("current"),
        .string("accumulator"), .bool(true), .bool(false), .null, .array([]), .object([:]),
        .array([.integer(1), .integer(2), .integer(3)]), .array([.string("a"), .null, .integer(.min)]),
    ]

    static let extremes: [JSONValue] = [.integer(.min), .integer(.max), .integer(-1), .integer(0), .integer(1), .double(-0.0)]

    static let names: [JSONValue] = [
        .string("a"), .string("s"), .string("xs"), .string("big"), .string("nested"), .string("a.b"), .string("xs.1"),
        .string(""), .string("current"), .string("accumulator"), .string("current.0"), .integer(0), .null,
    ]

    static let data: JSONValue = .object([
        "a": .integer(.min), "s": .string("9223372036854775807"), "a.b": .double(-0.0),
        "xs": .array([.integer(-1), .integer(.max), .string("x"), .array([.integer(1), .integer(2)]), .null]),
        "big": .array((0..<64).map { .integer(Int64($0)) }),
        "nested": .object(["0": .array([.object([:])])]),
    ])

    static func pick<T>(_ values: [T], _ generator: inout Generator) -> T {
        values[Int(generator.next() % UInt64(values.count))]
    }

    static func expression(depth: Int, _ generator: inout Generator) -> JSONValue {
        let roll = generator.next() % 100
        if depth >= 7 || roll < 25 {
            if roll < 5 { return .array((0..<Int(generator.next() % 4)).map { _ in expression(depth: depth + 1, &generator) }) }
            // Half the literals from the extremes, so pairs like Int64.min and -1 meet often.
            return pick(generator.next() % 2 == 0 ? extremes : literals, &generator)
        }
        let (name, accepted) = pick(operators, &generator)
        // Mostly argument counts the operator takes, so most trees compile and run.
        let count = generator.next() % 25 == 0 ? Int(generator.next() % 5) : accepted.lowerBound + Int(generator.next() % UInt64(accepted.count))
        if name == "var" {
            var arguments: [JSONValue] = count == 0 ? [] : [generator.next() % 12 == 0 ? expression(depth: depth + 1, &generator) : pick(names, &generator)]
            if count >= 2 { arguments.append(expression(depth: depth + 1, &generator)) }
            return .object(["var": .array(arguments)])
        }
        return .object([name: .array((0..<count).map { _ in expression(depth: depth + 1, &generator) })])
    }

    @Test("thousands of random trees: nothing traps, every failure is a JSONLogicError, each evaluation is quick")
    func randomTrees() throws {
        var generator = Generator(state: Self.seed)
        var compiled = 0
        var evaluated = 0
        var failed = 0
        var slowest = Duration.zero
        var slowestExpression = ""
        let clock = ContinuousClock()
        for index in 0..<Self.trees {
            let expression = Self.expression(depth: 0, &generator)
            let logic: JSONLogic
            do {
                logic = try JSONLogic(expression)
            } catch {
                #expect(!error.message.isEmpty)
                continue
            }
            compiled += 1
            let start = clock.now
            do {
                _ = try logic.evaluate(data: Self.data)
                evaluated += 1
            } catch {
                #expect(!error.message.isEmpty, "seed \(Self.seed), tree \(index): \(expression.canonicalText)")
                failed += 1
            }
            do {
                _ = try logic.evaluate { name in Self.data[name] }
            } catch {
                #expect(!error.message.isEmpty, "seed \(Self.seed), tree \(index): \(expression.canonicalText)")
            }
            let elapsed = clock.now - start
            if elapsed > slowest {
                slowest = elapsed
                slowestExpression = expression.canonicalText
            }
        }
        print("json-logic random trees (seed \(Self.seed)): \(compiled) of \(Self.trees) compiled, \(evaluated) evaluated, \(failed) evaluation errors; slowest \(slowest): \(slowestExpression.prefix(300))")
        // The generator must mostly produce trees that run, or the test proves little.
        #expect(compiled > Self.trees / 2)
        #expect(evaluated > compiled / 2)
        #expect(slowest < .seconds(10), "seed \(Self.seed): \(slowestExpression)")
    }
}
