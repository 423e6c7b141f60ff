import STBJSON
import STBMessages
import STBRPC
import Testing

/// Transition conditions are compiled when they are written, with the compiler the rules
/// service evaluates them with: a condition it could not compile is refused here, with the
/// compiler's path under the field's, and nothing is written.
@Suite("Transition conditions against a real Postgres")
struct TransitionConditionTests {
    /// A `!` nested `levels` deep around `true` (single arguments written bare, one JSON level each).
    static func nested(_ levels: Int) -> String {
        String(repeating: #"{"!": "#, count: levels) + "true" + String(repeating: "}", count: levels)
    }

    /// Conditions the rules service cannot compile, and the compiler's error for each.
    static let refused: [(condition: String, error: String)] = [
        (#"{"nosuchop": [1]}"#, #"unknown operator "nosuchop""#),
        (#"{"and": [true, {"nosuchop": [1]}]}"#, #"and[1]: unknown operator "nosuchop""#),
        (#"{"log": "x"}"#, #"operator "log" is not allowed (it has side effects)"#),
        (nested(40), String(repeating: "![0].", count: 31) + "![0]: expression is nested deeper than 32 levels"),
        (#"{"==": [1]}"#, "==: needs at least 2 arguments, got 1"),
        (#"{"a": 1, "b": 2}"#, "an operation must have exactly one key, found 2: a, b"),
    ]

    static func transition(condition: String) -> Stb_Catalog_V1_CreateTransitionRequest {
        var transition = Stb_Catalog_V1_Transition()
        transition.moduleKey = "video"
        transition.fromState = "idle"
        transition.event = "ENABLE_4K"
        transition.toState = "uhd"
        transition.conditionJson = condition
        var request = Stb_Catalog_V1_CreateTransitionRequest()
        request.transition = transition
        return request
    }

    @Test("CreateTransition and UpdateTransition refuse a condition the rules service cannot compile")
    func crud() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("video")
            try await catalog.createState("video", "idle")
            try await catalog.createState("video", "uhd")
            let writes = "SELECT (SELECT count(*) FROM transitions) + 1000 * (SELECT count(*) FROM audit_log)"
            let before = try await catalog.count(writes)
            for (condition, expected) in Self.refused {
                let error = await expectStatus(.invalidArgument) {
                    _ = try await catalog.client.unary(API.createTransition, request: Self.transition(condition: condition))
                }
                #expect(error?.message == "transition.condition_json: \(expected)")
            }
            #expect(try await catalog.count(writes) == before)

            let good = #"{"==": [{"var": "hdmi_version"}, "2.1"]}"#
            _ = try await catalog.client.unary(API.createTransition, request: Self.transition(condition: good))
            // "null" is no condition, as in a seed.
            var unconditional = Self.transition(condition: "null")
            unconditional.transition?.event = "RESET"
            _ = try await catalog.client.unary(API.createTransition, request: unconditional)
            let created = try await catalog.count(writes)

            var ref = Stb_Catalog_V1_TransitionRef()
            ref.moduleKey = "video"
            ref.fromState = "idle"
            ref.event = "ENABLE_4K"
            for (condition, expected) in Self.refused {
                var update = Stb_Catalog_V1_UpdateTransitionRequest()
                update.ref = ref
                update.conditionJson = condition
                let error = await expectStatus(.invalidArgument) {
                    _ = try await catalog.client.unary(API.updateTransition, request: update)
                }
                #expect(error?.message == "condition_json: \(expected)")
            }
            #expect(try await catalog.count(writes) == created)
            let stored = try await catalog.client.unary(API.getTransition, request: ref)
            #expect(try JSONValue.parse(stored.conditionJson) == JSONValue.parse(good))
        }
    }

    /// A one-module seed whose third transition has `condition`.
    static func seed(condition: String) -> String {
        """
        {"modules": [{"key": "video", "name": "Video", "initial_state": "idle",
          "states": [{"name": "idle"}, {"name": "uhd"}, {"name": "hdr"}],
          "transitions": [
            {"from": "idle", "event": "ENABLE_4K", "to": "uhd", "condition": {"==": [{"var": "hdmi_version"}, "2.1"]}},
            {"from": "uhd", "event": "RESET", "to": "idle", "condition": null},
            {"from": "uhd", "event": "ENABLE_HDR", "to": "hdr", "condition": \(condition)}],
          "groups": []}]}
        """
    }

    @Test("ImportSeed refuses a condition the rules service cannot compile, with the seed path, also in a dry run")
    func seedImport() async throws {
        try await CatalogHarness.with { catalog in
            for dryRun in [true, false] {
                for (condition, expected) in Self.refused {
                    var request = Stb_Catalog_V1_ImportSeedRequest()
                    request.documentJson = Self.seed(condition: condition)
                    request.dryRun = dryRun
                    let error = await expectStatus(.invalidArgument) {
                        _ = try await catalog.client.unary(API.importSeed, request: request)
                    }
                    #expect(error?.message == "seed document is invalid: modules[0].transitions[2].condition: \(expected)", "dry run: \(dryRun)")
                }
            }
            #expect(try await catalog.count("SELECT (SELECT count(*) FROM modules) + (SELECT count(*) FROM transitions)") == 0)

            var request = Stb_Catalog_V1_ImportSeedRequest()
            request.documentJson = Self.seed(condition: #"{"!!": [{"var": "display_supports_hdr"}]}"#)
            let imported = try await catalog.client.unary(API.importSeed, request: request)
            #expect(imported.applied)
            #expect(try await catalog.count("SELECT count(*) FROM transitions") == 3)
        }
    }
}
