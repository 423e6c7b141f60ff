import STBJSON
import Testing
@testable import STBStubs

@Suite("stub definitions: checked when read, matched by condition")
struct StubDefinitionTests {
    private func stub(_ text: String) throws -> StubDefinition {
        try StubDefinition(try JSONValue.parse(text))
    }

    private func refusal(_ text: String) -> String? {
        do {
            _ = try stub(text)
            return nil
        } catch let error as StubError {
            return error.description
        } catch {
            return "\(error)"
        }
    }

    @Test("a message that is not the output type is refused with its path")
    func outputTypeChecked() {
        #expect(refusal(#"{"id": "a", "service": "stb.testing.v1.Echo", "method": "Get", "response": {"message": {"index": "x"}}}"#)?
            .hasPrefix("response.message.index: not a stb.testing.v1.EchoResponse") == true)
        #expect(refusal(#"{"id": "a", "service": "stb.testing.v1.Echo", "method": "Nope", "response": {"message": {}}}"#)
            == "method: stb.testing.v1.Echo has no method Nope in Protos/")
        #expect(refusal(#"{"service": "stb.testing.v1.Echo", "method": "Get", "response": {"message": {}}}"#)
            == "id: a stub in a file needs a stable id")
        #expect(refusal(#"{"id": "a", "service": "stb.testing.v1.Echo", "method": "Get", "response": {"messages": [{"message": {}}]}}"#)
            == "response.messages: /stb.testing.v1.Echo/Get answers with one message: use \"message\"")
        #expect(refusal(#"{"id": "a", "service": "stb.testing.v1.Echo", "method": "Get", "response": {"status": {"code": "NOPE"}}}"#)
            == "response.status.code: NOPE is not a gRPC status name")
    }

    @Test("conditions: bad operators, patterns and paths are refused where they are")
    func conditionsChecked() {
        let base = #"{"id": "a", "service": "stb.testing.v1.Echo", "method": "Get", "response": {"message": {}}, "when": "#
        #expect(refusal(base + #"{"field": "text", "op": "REGEX", "value": "(a"}}"#)?.hasPrefix("when.value: not a pattern RE2 accepts") == true)
        #expect(refusal(base + #"{"field": "text", "op": "LIKE", "value": "a"}}"#)?.hasPrefix("when.op: one of EQUALS") == true)
        #expect(refusal(base + #"{"and": [{"field": "a[x]", "op": "EXISTS"}]}}"#) == "when.and[0].field: a[x]: [x] is not an index")
        #expect(refusal(base + #"{"field": "count", "op": "GREATER_THAN", "value": "many"}}"#) == "when.value: GREATER_THAN needs a number")
    }

    @Test("conditions read field paths, metadata, numbers in proto3 JSON's string form, and groups")
    func matching() throws {
        let condition = try StubCondition.parse(try JSONValue.parse(#"""
            {"and": [
              {"field": "options[1].key", "op": "EQUALS", "value": "hdr"},
              {"field": "revision", "op": "GREATER_THAN", "value": 5},
              {"or": [{"metadata": "x-tenant", "op": "REGEX", "value": "t-[0-9]+"}, {"field": "note", "op": "CONTAINS", "value": "vip"}]},
              {"not": {"field": "dryRun", "op": "EXISTS"}}
            ]}
            """#))
        let request = try JSONValue.parse(#"{"options": [{"key": "a"}, {"key": "hdr"}], "revision": "7", "note": "a vip call"}"#)
        #expect(condition.matches(request: request, metadata: [:]))
        #expect(condition.matches(request: try JSONValue.parse(#"{"options": [{"key": "a"}, {"key": "hdr"}], "revision": "7"}"#), metadata: ["x-tenant": ["t-42"]]))
        #expect(!condition.matches(request: try JSONValue.parse(#"{"options": [{"key": "a"}, {"key": "hdr"}], "revision": "7"}"#), metadata: ["x-tenant": ["t-x"]]))
        #expect(!condition.matches(request: try JSONValue.parse(#"{"options": [{"key": "hdr"}], "revision": "7", "note": "vip"}"#), metadata: [:]))
        #expect(!condition.matches(request: try JSONValue.parse(#"{"options": [{"key": "a"}, {"key": "hdr"}], "revision": "3", "note": "vip"}"#), metadata: [:]))
        #expect(!condition.matches(request: try JSONValue.parse(#"{"options": [{"key": "a"}, {"key": "hdr"}], "revision": "9", "note": "vip", "dryRun": true}"#), metadata: [:]))
        #expect(condition.firstFailure(request: try JSONValue.parse(#"{}"#), metadata: [:]) == #"field options[1].key EQUALS "hdr""#)
    }

    @Test("priority: higher first, then id order")
    func order() throws {
        let registry = StubRegistry()
        let make = { (id: String, priority: Int) in
            try self.stub(#"{"id": "\#(id)", "service": "stb.testing.v1.Echo", "method": "Get", "priority": \#(priority), "response": {"message": {}}}"#)
        }
        try registry.replaceFileStubs([try make("b", 1), try make("a", 1), try make("z", 9), try make("low", -3)], file: "f.json")
        #expect(registry.candidates(for: "/stb.testing.v1.Echo/Get", service: "stb.testing.v1.Echo").stubs.map(\.id) == ["z", "a", "b", "low"])
        #expect(throws: StubError.self) { try registry.put(try make("a", 100)) }
        #expect(throws: StubError.self) { try registry.replaceFileStubs([try make("x", 1), try make("x", 2)], file: "f.json") }
        // The refused file changed nothing.
        #expect(registry.candidates(for: "/stb.testing.v1.Echo/Get", service: "stb.testing.v1.Echo").stubs.map(\.id) == ["z", "a", "b", "low"])
    }

    @Test("a mock's delay and fault: set, kept to their service, refused when bad, removed")
    func mockSettings() throws {
        let registry = StubRegistry()
        let echo = (path: "/stb.testing.v1.Echo/Get", service: "stb.testing.v1.Echo")
        try registry.setMockDelay(service: echo.service, delay: try JSONValue.parse(#"{"fixedMs": 40}"#))
        try registry.setMockFault(service: echo.service, fault: try JSONValue.parse(#"{"kind": "GOAWAY", "probability": 0.25}"#))
        let set = registry.candidates(for: echo.path, service: echo.service)
        #expect(set.mockDelay.map(StubDefinition.draw) == 40_000_000)
        #expect(set.mockFault?.probability == 0.25)
        let other = registry.candidates(for: "/stb.rules.v1.Rules/Evaluate", service: "stb.rules.v1.Rules")
        #expect(other.mockDelay == nil && other.mockFault == nil)
        #expect(throws: StubError("delay.fixedMs", "milliseconds from 0 to 3600000")) {
            try registry.setMockDelay(service: echo.service, delay: try JSONValue.parse(#"{"fixedMs": -1}"#))
        }
        // The refused delay changed nothing.
        #expect(registry.candidates(for: echo.path, service: echo.service).mockDelay.map(StubDefinition.draw) == 40_000_000)
        try registry.setMockDelay(service: echo.service, delay: nil)
        try registry.setMockFault(service: echo.service, fault: nil)
        let cleared = registry.candidates(for: echo.path, service: echo.service)
        #expect(cleared.mockDelay == nil && cleared.mockFault == nil)
    }
}
