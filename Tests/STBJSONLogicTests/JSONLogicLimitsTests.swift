import Foundation
import STBJSON
import STBJSONLogic
import Testing

/// One evaluation is bounded in the size of every value it builds, in the bytes it builds or
/// reads in all, and in its work: expressions that grow without bound fail quickly with an error
/// naming the operator, and the process stays small.
@Suite("JSONLogic size and work limits")
struct JSONLogicLimitsTests {
    /// `[1, 2, …, count]`.
    static func range(_ count: Int) -> String {
        "[" + (1...count).map(String.init).joined(separator: ",") + "]"
    }

    static func failure(_ rule: String, data: JSONValue = .null) throws -> JSONLogicError {
        let logic = try JSONLogic(JSONValue.parse(rule))
        let clock = ContinuousClock()
        let start = clock.now
        let error = try #require(throws: JSONLogicError.self, "\(rule.prefix(200))") { try logic.evaluate(data: data) }
        // Generous for a debug build on loaded shared cores; without the bounds these run for minutes.
        #expect(clock.now - start < .seconds(30), "\(rule.prefix(200))")
        return error
    }

    static let stringLimit = "string longer than \(JSONLogic.maxStringBytes) bytes"
    static let arrayLimit = "array longer than \(JSONLogic.maxArrayLength) elements"
    static let bytesLimit = "evaluation builds or reads more than \(JSONLogic.maxBytesPerEvaluation) bytes"
    static let stepsLimit = "evaluation takes more than \(JSONLogic.maxStepsPerEvaluation) steps"

    @Test("a reduce whose cat doubles a string 30 times fails at the string limit")
    func doublingString() throws {
        let error = try Self.failure(#"{"reduce": [\#(Self.range(30)), {"cat": [{"var": "accumulator"}, {"var": "accumulator"}]}, "abcdefgh"]}"#)
        #expect(error.description == "reduce[1].cat: \(Self.stringLimit)")
    }

    @Test("doubling through merge, map, substr and a nested reduce fails at a limit too")
    func doublingVariants() throws {
        let merge = try Self.failure(#"{"reduce": [\#(Self.range(30)), {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]}, [1]]}"#)
        #expect(merge.description == "reduce[1].merge: \(Self.arrayLimit)")

        let substr = try Self.failure(#"{"reduce": [\#(Self.range(30)), {"substr": [{"cat": [{"var": "accumulator"}, {"var": "accumulator"}, "x"]}, 1]}, "ab"]}"#)
        #expect(substr.description == "reduce[1].substr[0].cat: \(Self.stringLimit)")

        let nested = try Self.failure(#"{"reduce": [\#(Self.range(6)), {"reduce": [\#(Self.range(10)), {"cat": [{"var": "accumulator"}, {"var": "accumulator"}]}, {"var": "accumulator"}]}, "x"]}"#)
        #expect(nested.description == "reduce[1].reduce[1].cat: \(Self.stringLimit)")

        // Each string stays under the limit; together they pass the bytes an evaluation may build.
        let chunk = String(repeating: "x", count: 100_000)
        let map = try Self.failure(#"{"map": [\#(Self.range(1_000)), {"cat": [{"var": ""}, "\#(chunk)"]}]}"#)
        #expect(map.description == "map[1].cat: \(Self.bytesLimit)")

        // An array of 10,000 shared 1 KB strings is small; its string form is not.
        let kilobyte = JSONValue.string(String(repeating: "y", count: 1_000))
        let shared = JSONValue.object(["xs": .array(Array(repeating: kilobyte, count: 10_000))])
        let stringForm = try Self.failure(#"{"==": [{"merge": [{"var": "xs"}, {"var": "xs"}]}, 1]}"#, data: shared)
        #expect(stringForm.description == "==: \(Self.stringLimit)")
    }

    @Test("a reduce that wraps its accumulator fails at the nesting limit")
    func nesting() throws {
        let error = try Self.failure(#"{"reduce": [\#(Self.range(1_000)), [{"var": "accumulator"}], 0]}"#)
        #expect(error.description == "reduce: result nested deeper than \(JSONLogic.maxValueDepth) levels")
        let scope = try Self.failure(#"{"reduce": [\#(Self.range(1_000)), {"var": ""}, 0]}"#)
        #expect(scope.description == "reduce: result nested deeper than \(JSONLogic.maxValueDepth) levels")
    }

    @Test("nested loops are bounded in total work")
    func work() throws {
        let doubled = #"{"reduce": [\#(Self.range(13)), {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]}, [1]]}"#
        let error = try Self.failure(#"{"map": [\#(doubled), {"map": [\#(doubled), 1]}]}"#)
        #expect(error.description.hasSuffix(Self.stepsLimit))
        // A long scan through a big string in a loop is work too.
        let scans = try Self.failure(#"{"some": [\#(Self.range(1_000)), {"in": ["b", "\#(String(repeating: "a", count: 100_000))"]}]}"#)
        #expect(scans.description == "some[1].in: \(Self.bytesLimit)")
    }

    @Test("realistic expressions stay well inside the limits")
    func realistic() throws {
        let logic = try JSONLogic(JSONValue.parse(#"""
            {"and": [
                {"<=": [{"reduce": [{"var": "bitrates"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 0]}, 100000000]},
                {"all": [{"var": "bitrates"}, {">": [{"var": ""}, 0]}]},
                {"in": [{"var": "codec"}, {"merge": [["h264", "h265"], {"map": [{"var": "extra"}, {"cat": ["x-", {"var": ""}]}]}]}]},
                {"==": [{"substr": [{"var": "model"}, 0, 3]}, "stb"]}
            ]}
            """#))
        let data = try JSONValue.parse(#"""
            {"bitrates": \#(Self.range(5_000)), "codec": "x-av1", "extra": ["vp9", "av1"], "model": "stb-4k"}
            """#)
        #expect(try logic.evaluate(data: data) == .bool(true))
    }

    /// The process's peak resident size so far (VmHWM), in bytes.
    static func peakResidentBytes() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") })
        let kilobytes = try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? ""))
        return kilobytes * 1024
    }

    @Test("evaluating the growing expressions keeps the process small")
    func memory() throws {
        let before = try Self.peakResidentBytes()
        for rule in [
            #"{"reduce": [\#(Self.range(30)), {"cat": [{"var": "accumulator"}, {"var": "accumulator"}]}, "abcdefgh"]}"#,
            #"{"reduce": [\#(Self.range(40)), {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]}, ["abcdefgh"]]}"#,
            #"{"reduce": [\#(Self.range(6)), {"reduce": [\#(Self.range(10)), {"cat": [{"var": "accumulator"}, {"var": "accumulator"}]}, {"var": "accumulator"}]}, "x"]}"#,
        ] {
            _ = try Self.failure(rule)
        }
        let grown = try Self.peakResidentBytes() - before
        // Limits allow at most 16 MiB built per evaluation; other suites run beside this one.
        #expect(grown < 96 << 20, "peak resident size grew by \(grown >> 20) MiB")
    }
}
