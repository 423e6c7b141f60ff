import STBMessages
import STBRPC
import Testing

@testable import STBService

@Suite("INVALID_ARGUMENT with a field violation per problem")
struct InvalidArgumentTests {
    @Test(
        "a problem splits into its field path and what is wrong, at the first ': ' of the path",
        arguments: [
            ("option.default_value: \"abc\" is not an integer", "option.default_value", "\"abc\" is not an integer"),
            ("modules[2].groups[0].options[5].default: required", "modules[2].groups[0].options[5].default", "required"),
            ("selections[\"a: b\"].options[0].key: unknown option \"x: y\"", "selections[\"a: b\"].options[0].key", "unknown option \"x: y\""),
            ("meta[\"q\\\": r\"]: must be a string", "meta[\"q\\\": r\"]", "must be a string"),
            ("invalid JSON at line 1, column 43: \\u0000 (NUL) is not allowed in a string", "", "invalid JSON at line 1, column 43: \\u0000 (NUL) is not allowed in a string"),
            ("no path here", "", "no path here"),
            ("ref:required", "", "ref:required"),
        ]
    )
    func split(problem: String, field: String, description: String) {
        let violation = fieldViolation(problem)
        #expect(violation.field == field)
        #expect(violation.description == description)
    }

    @Test("check lists the first problems in the message and in the details; the message is as before")
    func check() throws {
        let problems = (0..<25).map { "options[\($0)].key: is required" }
        do {
            try STBService.check(problems)
            Issue.record("check passed problems")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument)
            #expect(error.message == problems.prefix(20).joined(separator: "; ") + "; and 5 more")
            #expect(error.fieldViolations.map(\.field) == (0..<20).map { "options[\($0)].key" })
            #expect(error.fieldViolations.allSatisfy { $0.description_p == "is required" })
            #expect(error.errorInfo == Google_Rpc_ErrorInfo(reason: "INVALID_ARGUMENT", domain: "stb", metadata: ["problems": "25"]))
        }
        try STBService.check([])
    }
}
