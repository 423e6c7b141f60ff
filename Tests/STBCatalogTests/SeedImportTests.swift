import STBJSON
import Foundation
import STBService
import Testing
import STBMessages
import STBRPC
@testable import STBCatalog

/// Seed documents: parsing, validation (exact messages and paths) and planning against an
/// in-memory catalog. No database.
@Suite struct SeedImportTests {
    typealias Importer = SeedImporter

    static let example = """
        {"modules": [{"key": "video", "name": "Video", "description": "Video output", "active": true, "initial_state": "idle", "meta": {},
          "states": [{"name": "idle", "meta": {}}, {"name": "4k_enabled"}],
          "transitions": [{"from": "idle", "event": "ENABLE_4K", "to": "4k_enabled", "condition": {"==": [{"var": "hdmi_version"}, "2.1"]}, "meta": {}}],
          "groups": [{"key": "output", "name": "Output", "description": "", "position": 1, "meta": {},
             "options": [{"key": "hdr", "name": "HDR", "description": "", "type": "boolean", "default": true, "editable": true, "included_by_default": true, "meta": {}},
                         {"key": "resolution", "name": "Resolution", "type": "enum", "default": "1080p", "meta": {"values": ["720p","1080p","2160p"]}},
                         {"key": "volume_max", "name": "Max volume", "type": "integer", "default": 80, "meta": {"min": 0, "max": 100, "step": 1}},
                         {"key": "device_name", "name": "Device name", "type": "string", "default": "stb", "meta": {"max_length": 32, "pattern": "[a-z0-9-]+"}}]}]}],
         "rules": [{"anything": "goes"}], "$schema": "seed.schema.json", "version": 1, "description": "example"}
        """

    /// The problems of an invalid document (fails the test when it is valid).
    func problems(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [String] {
        do {
            _ = try Importer.parse(text)
            Issue.record("the document was accepted", sourceLocation: sourceLocation)
            return []
        } catch {
            return error.problems
        }
    }

    /// A one-module document with `options` (JSON objects) in group `output`.
    func document(options: String, module extra: String = "") -> String {
        """
        {"modules": [{"key": "video", "name": "Video"\(extra), "groups": [{"key": "output", "name": "Output", "options": [\(options)]}]}]}
        """
    }

    // MARK: - Parsing

    @Test func parsesTheExample() throws {
        let document = try Importer.parse(Self.example)
        #expect(document.modules.count == 1)
        let module = document.modules[0]
        #expect(module.key == "video" && module.name == "Video" && module.description_p == "Video output")
        #expect(module.active && module.initialState == "idle" && module.metaJson == "{}")

        #expect(document.states.map(\.entityKey) == ["video/idle", "video/4k_enabled"])
        #expect(document.transitions.map(\.entityKey) == ["video/idle/ENABLE_4K"])
        #expect(document.transitions[0].toState == "4k_enabled")
        #expect(document.transitions[0].conditionJson == #"{"==":[{"var":"hdmi_version"},"2.1"]}"#)

        #expect(document.groups.map(\.entityKey) == ["video/output"])
        #expect(document.groups[0].position == 1)

        let options = document.options
        #expect(options.map(\.key) == ["hdr", "resolution", "volume_max", "device_name"])
        #expect(options.allSatisfy { $0.moduleKey == "video" && $0.groupKey == "output" })
        #expect(options.map(\.type) == [.boolean, .enum, .integer, .string])
        #expect(options.map(\.defaultValue) == ["true", "1080p", "80", "stb"])
        #expect(options.map(\.includedByDefault) == [true, false, false, false])
        #expect(options.allSatisfy { $0.editable })
        #expect(options[1].metaJson == #"{"values":["720p","1080p","2160p"]}"#)
        #expect(options[2].metaJson == #"{"max":100,"min":0,"step":1}"#)
    }

    @Test func appliesDefaults() throws {
        let document = try Importer.parse("""
            {"modules": [{"key": "ui", "name": "UI",
              "states": [{"name": "boot"}], "transitions": [{"from": "boot", "event": "READY", "to": "boot"}],
              "groups": [{"key": "a", "name": "A", "options": [{"key": "x", "name": "X", "type": "boolean", "default": false}]},
                         {"key": "b", "name": "B"}, {"key": "c", "name": "C", "position": 7}]}]}
            """)
        let module = document.modules[0]
        #expect(module.description_p == "" && module.active && module.initialState == "" && module.metaJson == "{}")
        // Position: explicit, else the index in the array.
        #expect(document.groups.map(\.position) == [0, 1, 7])
        #expect(document.groups.map(\.description_p) == ["", "", ""])
        let option = document.options[0]
        #expect(option.editable && !option.includedByDefault && option.description_p == "" && option.metaJson == "{}")
        #expect(option.defaultValue == "false")
        #expect(document.states[0].metaJson == "{}")
        #expect(document.transitions[0].conditionJson == "" && document.transitions[0].metaJson == "{}")
    }

    @Test func normalizesWholeNumbersAndNullConditions() throws {
        let document = try Importer.parse("""
            {"modules": [{"key": "m", "name": "M", "meta": {"b": [1.0, 2.5], "a": {"z": -0.0}},
              "states": [{"name": "s"}], "transitions": [{"from": "s", "event": "E", "to": "s", "condition": null}],
              "groups": [{"key": "g", "name": "G", "position": 3.0, "options": [
                {"key": "i", "name": "I", "type": "integer", "default": 40.0, "meta": {"min": 0.0, "max": 100, "step": 2e1}}]}]}]}
            """)
        #expect(document.modules[0].metaJson == #"{"a":{"z":0},"b":[1,2.5]}"#)
        #expect(document.transitions[0].conditionJson == "")
        #expect(document.groups[0].position == 3)
        #expect(document.options[0].defaultValue == "40")
        #expect(document.options[0].metaJson == #"{"max":100,"min":0,"step":20}"#)
    }

    @Test func parsesTheDemoSeed() throws {
        let path = String(#filePath.split(separator: "/Tests/").dropLast().joined(separator: "/Tests/")) + "/services/catalog/seeds/demo.json"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let document = try Importer.parse(text)
        #expect(document.modules.map(\.key) == ["video", "audio", "network", "drm", "ui"])
        #expect(document.options.count >= 90 && document.options.count <= 110)
        #expect(Set(document.options.map(\.type)) == [.boolean, .integer, .string, .enum])
        #expect(document.transitions.contains { $0.entityKey == "video/idle/ENABLE_4K" && $0.toState == "4k_enabled" && !$0.conditionJson.isEmpty })
        #expect(document.transitions.contains { $0.entityKey == "network/offline/CONNECT" && $0.toState == "connecting" })
        #expect(document.transitions.contains { $0.entityKey == "network/connecting/CONNECTED" && $0.toState == "online" })
        let mtu = try #require(document.options.first { $0.key == "mtu" })
        #expect(mtu.defaultValue == "1500" && mtu.metaJson.contains(#""max":9000"#) && mtu.metaJson.contains(#""min":576"#))
    }

    // MARK: - Validation

    @Test func reportsJSONSyntaxErrors() {
        #expect(problems("{\"modules\": [}") == ["invalid JSON at line 1, column 14: unexpected character"])
        #expect(problems("") == ["invalid JSON at line 1, column 1: unexpected end of input"])
    }

    @Test func reportsTheDocumentShape() {
        #expect(problems("[]") == ["document: must be an object, not an array"])
        #expect(problems("{}") == ["modules: required"])
        #expect(problems(#"{"modules": {}}"#) == ["modules: must be an array, not an object"])
        #expect(problems(#"{"modules": [3]}"#) == ["modules[0]: must be an object, not a number"])
        #expect(problems(#"{"modules": [], "version": true, "$schema": 1, "modlues": []}"#) == [
            "$schema: must be a string, not a number",
            "version: must be an integer or a string, not a boolean",
            "modlues: unknown field (known: modules, rules, $schema, version, description)",
        ])
    }

    @Test func acceptsIgnoredTopLevelMembers() throws {
        let document = try Importer.parse(#"{"modules": [], "rules": {"whatever": [1, 2]}, "$schema": "x", "version": "2024-05", "description": "d"}"#)
        #expect(document == Importer.Document())
    }

    @Test func reportsWrongTypesAndMissingFields() {
        #expect(problems(#"{"modules": [{"name": 5, "active": "yes", "meta": [], "states": {}, "groups": [{"key": "g"}]}]}"#) == [
            "modules[0].key: required",
            "modules[0].name: must be a string, not a number",
            "modules[0].active: must be a boolean, not a string",
            "modules[0].meta: must be an object, not an array",
            "modules[0].states: must be an array, not an object",
            "modules[0].groups[0].name: required",
        ])
        #expect(problems(document(options: #"{"name": "", "description": 1, "editable": 0}"#)) == [
            "modules[0].groups[0].options[0].key: required",
            "modules[0].groups[0].options[0].name: must not be empty",
            "modules[0].groups[0].options[0].description: must be a string, not a number",
            "modules[0].groups[0].options[0].type: required",
            "modules[0].groups[0].options[0].editable: must be a boolean, not a number",
            "modules[0].groups[0].options[0].default: required",
        ])
        #expect(problems(#"{"modules": [{"key": "m", "name": "M", "states": [{}], "transitions": [{"event": 1}]}]}"#) == [
            "modules[0].states[0].name: required",
            "modules[0].transitions[0].from: required",
            "modules[0].transitions[0].event: must be a string, not a number",
            "modules[0].transitions[0].to: required",
        ])
    }

    @Test func reportsInvalidKeysNamesAndPositions() {
        #expect(problems(#"{"modules": [{"key": "Video", "name": "  ", "groups": [{"key": "a b", "name": "G", "position": 1.5}, {"key": "c", "name": "C", "position": 3000000000}]}]}"#) == [
            #"modules[0].key: "Video" is not a valid key (lowercase letters, digits, '_', '.', '-'; starts with a letter or digit; at most 64 characters)"#,
            "modules[0].name: must not be empty",
            #"modules[0].groups[0].key: "a b" is not a valid key (lowercase letters, digits, '_', '.', '-'; starts with a letter or digit; at most 64 characters)"#,
            "modules[0].groups[0].position: 1.5 is not an integer",
            "modules[0].groups[1].position: 3000000000 is out of range",
        ])
    }

    @Test func checksOptionDefaultsAgainstTheirTypes() {
        let options = """
            {"key": "a", "name": "A", "type": "integer", "default": "abc", "meta": {"min": 0}},
            {"key": "b", "name": "B", "type": "integer", "default": "80"},
            {"key": "c", "name": "C", "type": "integer", "default": 1.5},
            {"key": "d", "name": "D", "type": "boolean", "default": "true"},
            {"key": "e", "name": "E", "type": "boolean", "default": 1},
            {"key": "f", "name": "F", "type": "string", "default": 5},
            {"key": "g", "name": "G", "type": "enum", "default": null, "meta": {"values": ["x"]}},
            {"key": "h", "name": "H", "type": "float", "default": 1.5},
            {"key": "i", "name": "I", "type": "boolean", "default": "yes"}
            """
        #expect(problems(document(options: options)) == [
            #"modules[0].groups[0].options[0].default: "abc" is not an integer"#,
            #"modules[0].groups[0].options[1].default: "80" is a string; write the integer without quotes"#,
            "modules[0].groups[0].options[2].default: 1.5 is not an integer",
            #"modules[0].groups[0].options[3].default: "true" is a string; write true without quotes"#,
            "modules[0].groups[0].options[4].default: must be a boolean, not a number",
            "modules[0].groups[0].options[5].default: must be a string, not a number",
            "modules[0].groups[0].options[6].default: must be a string, not null",
            #"modules[0].groups[0].options[7].type: "float" is not one of boolean, integer, string, enum"#,
            #"modules[0].groups[0].options[8].default: "yes" is not a boolean (true or false)"#,
        ])
    }

    @Test func checksOptionConstraintsWithTheSharedRules() {
        let options = """
            {"key": "a", "name": "A", "type": "integer", "default": 120, "meta": {"min": 0, "max": 100, "step": 5}},
            {"key": "b", "name": "B", "type": "integer", "default": 7, "meta": {"min": 0, "max": "ten", "step": 5}},
            {"key": "c", "name": "C", "type": "enum", "default": "4k", "meta": {"values": ["720p", "1080p"]}},
            {"key": "d", "name": "D", "type": "enum", "default": "x"},
            {"key": "e", "name": "E", "type": "string", "default": "Bad Name", "meta": {"max_length": 4, "pattern": "[a-z-]+"}},
            {"key": "f", "name": "F", "type": "string", "default": "x", "meta": "pattern"},
            {"key": "g", "name": "G", "type": "integer", "default": "x", "meta": {"min": 5, "max": 1}}
            """
        #expect(problems(document(options: options)) == [
            "modules[0].groups[0].options[0].default: 120 is above the maximum 100",
            "modules[0].groups[0].options[1].meta.max: must be an integer, not a string",
            "modules[0].groups[0].options[1].default: 7 is not a multiple of the step 5 from 0",
            #"modules[0].groups[0].options[2].default: "4k" is not one of the values "720p", "1080p""#,
            "modules[0].groups[0].options[3].meta.values: an enum needs a list of values",
            "modules[0].groups[0].options[4].default: longer than max_length 4",
            #"modules[0].groups[0].options[4].default: "Bad Name" does not match the pattern "[a-z-]+""#,
            "modules[0].groups[0].options[5].meta: must be an object, not a string",
            // The default's own problem first, then the constraints' (its text is not checked).
            #"modules[0].groups[0].options[6].default: "x" is not an integer"#,
            "modules[0].groups[0].options[6].meta: min 5 is greater than max 1",
        ])
    }

    @Test func reportsUnknownFieldsAtEveryLevel() {
        let text = """
            {"modules": [{"key": "m", "name": "M", "colour": 1,
              "states": [{"name": "s", "label": "S"}],
              "transitions": [{"from": "s", "event": "E", "to": "s", "guard": true}],
              "groups": [{"key": "g", "name": "G", "postion": 1, "options": [
                {"key": "o", "name": "O", "type": "boolean", "default": true, "defualt": false}]}]}]}
            """
        #expect(problems(text) == [
            "modules[0].states[0].label: unknown field (known: name, meta)",
            "modules[0].transitions[0].guard: unknown field (known: from, event, to, condition, meta)",
            "modules[0].groups[0].options[0].defualt: unknown field (known: key, name, description, type, default, editable, included_by_default, meta)",
            "modules[0].groups[0].postion: unknown field (known: key, name, description, position, meta, options)",
            "modules[0].colour: unknown field (known: key, name, description, active, initial_state, meta, states, transitions, groups)",
        ])
    }

    @Test func reportsDuplicates() {
        let text = """
            {"modules": [
              {"key": "video", "name": "Video", "states": [{"name": "idle"}, {"name": "idle"}],
               "transitions": [{"from": "idle", "event": "GO", "to": "idle"}, {"from": "idle", "event": "GO", "to": "idle"}],
               "groups": [{"key": "out", "name": "Out", "options": [{"key": "hdr", "name": "HDR", "type": "boolean", "default": true}]},
                          {"key": "out", "name": "Out again"}]},
              {"key": "audio", "name": "Audio", "groups": [{"key": "out", "name": "Out", "options": [
                {"key": "hdr", "name": "HDR", "type": "boolean", "default": true}]}]},
              {"key": "video", "name": "Video again"}]}
            """
        #expect(problems(text) == [
            #"modules[0].states[1].name: duplicate state "idle" (first at modules[0].states[0])"#,
            #"modules[0].transitions[1]: duplicate transition from "idle" on "GO" (first at modules[0].transitions[0])"#,
            #"modules[0].groups[1].key: duplicate group key "out" in module "video" (first at modules[0].groups[0])"#,
            #"modules[1].groups[0].options[0].key: duplicate option key "hdr" (first at modules[0].groups[0].options[0]); option keys are unique across the catalog"#,
            #"modules[2].key: duplicate module key "video" (first at modules[0])"#,
        ])
    }

    @Test func reportsReferencesToMissingStates() {
        let text = """
            {"modules": [{"key": "m", "name": "M", "initial_state": "boot", "states": [{"name": "idle"}],
              "transitions": [{"from": "idle", "event": "GO", "to": "busy"}, {"from": "off", "event": "bad event", "to": "idle"}]},
              {"key": "n", "name": "N", "initial_state": "idle"}]}
            """
        #expect(problems(text) == [
            #"modules[0].initial_state: state "boot" is not one of the module's states"#,
            #"modules[0].transitions[0].to: state "busy" is not one of the module's states"#,
            #"modules[0].transitions[1].from: state "off" is not one of the module's states"#,
            #"modules[0].transitions[1].event: "bad event" is not a valid event name (letters, digits, '_', '.', '-'; at most 64 characters)"#,
            #"modules[1].initial_state: state "idle" is not one of the module's states"#,
        ])
    }

    @Test func reportsNULCharacters() {
        // The JSON parser refuses a \u0000 escape itself, wherever it is.
        #expect(problems(#"{"modules": [{"key": "m", "name": "M\u0000", "meta": {"a\u0000": 1}}], "rules": ["\u0000"]}"#) == [
            #"invalid JSON at line 1, column 43: \u0000 (NUL) is not allowed in a string"#,
        ])
    }

    @Test func collectsEveryProblemAndReportsFifty() {
        let options = (0..<60).map { #"{"key": "o\#($0)", "name": "O", "type": "integer", "default": "x"}"# }.joined(separator: ",")
        let found = problems(document(options: options))
        #expect(found.count == 60)
        let error = Importer.invalid(found)
        #expect(error.message.hasPrefix(#"seed document is invalid: modules[0].groups[0].options[0].default: "x" is not an integer; "#))
        #expect(error.message.hasSuffix(#"options[49].default: "x" is not an integer; and 10 more"#))
        #expect(Importer.invalid(["a: b", "c: d"]).message == "seed document is invalid: a: b; c: d")
        // The listed problems as field violations, each path as the message spells it.
        #expect(error.fieldViolations.count == 50)
        #expect(error.fieldViolations.first?.field == "modules[0].groups[0].options[0].default")
        #expect(error.fieldViolations.first?.description_p == #""x" is not an integer"#)
        #expect(error.errorInfo?.metadata["problems"] == "60")
    }

    @Test func findsNULEscapesQuickly() {
        #expect(Importer.mentionsNUL(#"{"a": "x\u0000"}"#))
        #expect(Importer.mentionsNUL(#"\u0000"#))
        #expect(!Importer.mentionsNUL(#"{"a": "x\u0001", "b": "\\", "c": "\u000"}"#))
        #expect(!Importer.mentionsNUL(""))
        #expect(!Importer.mentionsNUL(#"\u000"#))
    }

    // MARK: - The quick comparison agrees with `.auditJSON`

    /// `matches` must look at exactly what `.auditJSON` shows; a field added to `.auditJSON` fails here.
    @Test func jsonShowsTheFieldsMatchesCompares() {
        func keys(_ value: JSONValue) -> Set<String> { Set(value.objectValue?.keys.map { $0 } ?? []) }
        #expect(keys(Module().auditJSON) == ["key", "name", "description", "active", "initial_state", "meta"])
        #expect(keys(Group().auditJSON) == ["module", "key", "name", "description", "position", "meta"])
        #expect(keys(Option().auditJSON) == ["module", "group", "key", "name", "description", "type", "default", "editable", "included_by_default", "meta"])
        #expect(keys(State().auditJSON) == ["module", "name", "meta"])
        #expect(keys(Transition().auditJSON) == ["module", "from", "event", "to", "condition", "meta"])
    }

    @Test func matchesAgreesWithJSON() throws {
        let document = try Importer.parse(Self.example)
        let stored = stored(document)
        var cache = JSONTextCache()
        func check<E: SeedEntity>(_ base: E, _ variants: [(String, (inout E) -> Void)], sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(base.matches(stored: base, cache: &cache), sourceLocation: sourceLocation)
            for (name, change) in variants {
                var variant = base
                change(&variant)
                let same = variant.auditJSON == base.auditJSON
                #expect(variant.matches(stored: base, cache: &cache) == same, "\(name)", sourceLocation: sourceLocation)
                #expect(base.matches(stored: variant, cache: &cache) == same, "\(name)", sourceLocation: sourceLocation)
            }
        }
        check(stored.modules[0], [
            ("key", { $0.key = "x" }), ("name", { $0.name = "x" }), ("description", { $0.description_p = "x" }),
            ("active", { $0.active.toggle() }), ("initial_state", { $0.initialState = "x" }),
            ("meta", { $0.metaJson = #"{"a": 1}"# }), ("meta same", { $0.metaJson = "" }), ("id", { $0.id = 9 }),
        ])
        check(stored.groups[0], [
            ("module", { $0.moduleKey = "x" }), ("key", { $0.key = "x" }), ("name", { $0.name = "x" }),
            ("description", { $0.description_p = "x" }), ("position", { $0.position = 9 }), ("meta", { $0.metaJson = "[1]" }),
            ("updated", { $0.updatedAtMs = 9 }),
        ])
        check(stored.options[2], [
            ("module", { $0.moduleKey = "x" }), ("group", { $0.groupKey = "x" }), ("key", { $0.key = "x" }), ("name", { $0.name = "x" }),
            ("description", { $0.description_p = "x" }), ("type", { $0.type = .string }), ("default", { $0.defaultValue = "81" }),
            ("editable", { $0.editable.toggle() }), ("included", { $0.includedByDefault.toggle() }),
            ("meta", { $0.metaJson = #"{"max": 100, "min": 0, "step": 2}"# }),
            ("meta same", { $0.metaJson = #"{"step":1,"min":0,"max":100}"# }),
        ])
        check(stored.states[1], [("module", { $0.moduleKey = "x" }), ("name", { $0.name = "x" }), ("meta", { $0.metaJson = #"{"a": null}"# })])
        check(stored.transitions[0], [
            ("module", { $0.moduleKey = "x" }), ("from", { $0.fromState = "x" }), ("event", { $0.event = "X" }), ("to", { $0.toState = "x" }),
            ("condition", { $0.conditionJson = "" }), ("condition same", { $0.conditionJson = #"{"==": [{"var": "hdmi_version"}, "2.1"]}"# }),
            ("condition other", { $0.conditionJson = "true" }), ("meta", { $0.metaJson = #"{"a": 1}"# }),
        ])
    }

    // MARK: - Planning

    /// What the database would hold after importing `document`: ids, timestamps, and meta
    /// and conditions as jsonb prints them (spaces, its own key order).
    func stored(_ document: Importer.Document) -> Importer.Catalog {
        var catalog = Importer.Catalog()
        var id: Int64 = 100
        func next() -> Int64 { id += 1; return id }
        catalog.modules = document.modules.map { var e = $0; e.id = next(); e.metaJson = jsonb(e.metaJson); e.createdAtMs = 1; e.updatedAtMs = 2; return e }
        catalog.groups = document.groups.map { var e = $0; e.id = next(); e.metaJson = jsonb(e.metaJson); e.createdAtMs = 1; e.updatedAtMs = 2; return e }
        catalog.options = document.options.map { var e = $0; e.id = next(); e.metaJson = jsonb(e.metaJson); e.createdAtMs = 1; e.updatedAtMs = 2; return e }
        catalog.states = document.states.map { var e = $0; e.id = next(); e.metaJson = jsonb(e.metaJson); e.createdAtMs = 1; return e }
        catalog.transitions = document.transitions.map {
            var e = $0; e.id = next(); e.metaJson = jsonb(e.metaJson); e.conditionJson = e.conditionJson.isEmpty ? "" : jsonb(e.conditionJson)
            e.createdAtMs = 1; e.updatedAtMs = 2; return e
        }
        return catalog
    }

    /// JSON text in Postgres' jsonb output style: `{"b": 1, "aa": [1, 2]}` (keys by length, then bytes).
    func jsonb(_ text: String) -> String {
        func write(_ value: JSONValue) -> String {
            switch value {
            case .array(let values): return "[" + values.map(write).joined(separator: ", ") + "]"
            case .object(let members):
                let keys = members.keys.sorted { a, b in
                    a.utf8.count != b.utf8.count ? a.utf8.count < b.utf8.count : a.utf8.lexicographicallyPrecedes(b.utf8)
                }
                return "{" + keys.map { JSONValue.string($0).canonicalText + ": " + write(members[$0]!) }.joined(separator: ", ") + "}"
            default: return value.canonicalText
            }
        }
        return write(try! JSONValue.parse(text))
    }

    func items(_ list: [Stb_Catalog_V1_PlanItem]) -> [String] { list.map { "\($0.entity) \($0.key)" } }

    @Test func plansAFirstImportAsCreations() throws {
        let document = try Importer.parse(Self.example)
        let plan = Importer.plan(document, current: Importer.Catalog(), prune: true)
        #expect(plan.created == 9 && plan.updated == 0 && plan.deleted == 0 && plan.unchanged == 0 && !plan.isEmpty)
        #expect(plan.summary == "created 9, updated 0, deleted 0, unchanged 0")
        let message = plan.message
        #expect(items(message.created) == [
            "module video", "group video/output", "option hdr", "option resolution", "option volume_max", "option device_name",
            "state video/idle", "state video/4k_enabled", "transition video/idle/ENABLE_4K",
        ])
        #expect(message.updated.isEmpty && message.deleted.isEmpty && message.unchanged == 0)
    }

    @Test func plansNothingForTheSameDocument() throws {
        let document = try Importer.parse(Self.example)
        let current = stored(document)
        #expect(current.options[2].metaJson == #"{"max": 100, "min": 0, "step": 1}"#)
        for prune in [false, true] {
            let plan = Importer.plan(document, current: current, prune: prune)
            #expect(plan.isEmpty)
            #expect(plan.unchanged == 9)
            #expect(plan.summary == "created 0, updated 0, deleted 0, unchanged 9")
            #expect(plan.message.created.isEmpty && plan.message.updated.isEmpty && plan.message.deleted.isEmpty)
        }
        // The demo seed too: every field survives the trip through the database.
        let path = String(#filePath.split(separator: "/Tests/").dropLast().joined(separator: "/Tests/")) + "/services/catalog/seeds/demo.json"
        let demo = try Importer.parse(try String(contentsOfFile: path, encoding: .utf8))
        let plan = Importer.plan(demo, current: stored(demo), prune: true)
        #expect(plan.isEmpty && plan.unchanged == demo.modules.count + demo.groups.count + demo.options.count + demo.states.count + demo.transitions.count)
    }

    @Test func plansUpdatesAndMoves() throws {
        let current = stored(try Importer.parse(Self.example))
        let changed = Self.example
            .replacingOccurrences(of: #""name": "Video""#, with: #""name": "Video output""#)
            .replacingOccurrences(of: #""default": 80"#, with: #""default": 90"#)
            .replacingOccurrences(of: #""hdmi_version"}, "2.1""#, with: #""hdmi_version"}, "2.2""#)
            .replacingOccurrences(of: #"{"name": "4k_enabled"}"#, with: #"{"name": "4k_enabled", "meta": {"label": "UHD"}}"#)
        let document = try Importer.parse(changed.replacingOccurrences(of: #"{"key": "hdr""#, with: #"{"key": "hdr_flag""#)
            .replacingOccurrences(of: #""modules": ["#, with: #""modules": [{"key": "audio", "name": "Audio", "groups": [{"key": "out", "name": "Out", "options": [{"key": "hdr", "name": "HDR", "description": "", "type": "boolean", "default": true, "editable": true, "included_by_default": true, "meta": {}}]}]}, "#))
        let plan = Importer.plan(document, current: current, prune: false)
        #expect(items(plan.message.created) == ["module audio", "group audio/out", "option hdr_flag"])
        #expect(items(plan.message.updated) == [
            "module video", "option hdr", "option volume_max", "state video/4k_enabled", "transition video/idle/ENABLE_4K",
        ])
        #expect(plan.message.deleted.isEmpty)
        #expect(plan.unchanged == 4)  // group video/output, resolution, device_name, state video/idle
        // Updates carry the stored identity and the document's values.
        let moved = try #require(plan.options.updated.first { $0.after.key == "hdr" })
        #expect(moved.before.moduleKey == "video" && moved.after.moduleKey == "audio" && moved.after.groupKey == "out")
        #expect(moved.after.id == moved.before.id && moved.after.id != 0)
        let volume = try #require(plan.options.updated.first { $0.after.key == "volume_max" })
        #expect(volume.before.defaultValue == "80" && volume.after.defaultValue == "90" && volume.after.createdAtMs == 1)
        #expect(plan.transitions.updated[0].after.conditionJson == #"{"==":[{"var":"hdmi_version"},"2.2"]}"#)
    }

    @Test func prunesOnlyWhenAsked() throws {
        let current = stored(try Importer.parse(Self.example))
        // Keeps the module and the idle state; drops the rest.
        let smaller = try Importer.parse(#"{"modules": [{"key": "video", "name": "Video", "description": "Video output", "initial_state": "idle", "states": [{"name": "idle", "meta": {}}]}]}"#)
        let kept = Importer.plan(smaller, current: current, prune: false)
        #expect(kept.isEmpty && kept.unchanged == 2)

        let pruned = Importer.plan(smaller, current: current, prune: true)
        #expect(pruned.created == 0 && pruned.updated == 0 && pruned.unchanged == 2)
        // Children before parents, as they must be deleted.
        #expect(items(pruned.message.deleted) == [
            "transition video/idle/ENABLE_4K", "state video/4k_enabled",
            "option hdr", "option resolution", "option volume_max", "option device_name", "group video/output",
        ])
        #expect(pruned.options.deleted.allSatisfy { $0.id > 100 })
        #expect(pruned.summary == "created 0, updated 0, deleted 7, unchanged 2")

        let empty = Importer.plan(try Importer.parse(#"{"modules": []}"#), current: current, prune: true)
        #expect(items(empty.message.deleted).last == "module video")
        #expect(empty.deleted == 9)
    }

    @Test func aFieldBackToItsDefaultIsAnUpdate() throws {
        let current = stored(try Importer.parse(Self.example))
        // Leaving out initial_state and included_by_default means "" and false.
        let text = Self.example
            .replacingOccurrences(of: #""initial_state": "idle", "#, with: "")
            .replacingOccurrences(of: #""included_by_default": true, "#, with: "")
        let plan = Importer.plan(try Importer.parse(text), current: current, prune: false)
        #expect(items(plan.message.updated) == ["module video", "option hdr"])
        #expect(plan.modules.updated[0].after.initialState == "")
    }
}
