import STBMessages
import STBPostgres
import STBRPC
import STBTestSupport
import Testing

/// What the catalog does with option values at the edges: 64-bit extremes, spellings of
/// one value, patterns that backtrack, and texts heavy in bytes.
@Suite("Option values through the catalog service")
struct OptionValueTests {
    /// Whether an integer option with these constraints accepts `value`, worked out in
    /// 128 bits (nil: the meta itself is refused).
    static func verdict(_ value: Int64, min low: Int64?, max high: Int64?, step: Int64?) -> Bool? {
        if let low, let high, low > high { return nil }
        if let step, step <= 0 { return nil }
        if let low, value < low { return false }
        if let high, value > high { return false }
        if let step, (Int128(value) - Int128(low ?? 0)) % Int128(step) != 0 { return false }
        return true
    }

    static func meta(min low: Int64?, max high: Int64?, step: Int64?) -> String {
        var members: [String] = []
        if let low { members.append(#""min": \#(low)"#) }
        if let high { members.append(#""max": \#(high)"#) }
        if let step { members.append(#""step": \#(step)"#) }
        return "{" + members.joined(separator: ", ") + "}"
    }

    @Test("integer defaults and constraints at Int64 extremes: accepted or INVALID_ARGUMENT naming the field, through CreateOption, UpdateOption and ImportSeed dry runs")
    func integerExtremes() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("m")
            try await catalog.createGroup("m", "g")
            try await catalog.createOption("m", "g", "base", type: .integer, default: "0")
            // The reported inputs first, then random ones around the edges of Int64.
            var cases: [(Int64, Int64?, Int64?, Int64?)] = [
                (.max, -1, nil, 1), (.min, 1, nil, nil), (.max, .min, nil, 1), (.min, .max, nil, nil), (.max, .min, .max, 3),
                (.min, nil, .max, .max), (.max, nil, nil, .max), (.min, nil, nil, .max), (.max, .min, nil, .max), (0, .min, .max, .max),
            ]
            var generator = SplitMix(seed: 0xC0FFEE)
            for _ in 0..<120 {
                func maybe() -> Int64? { generator.next() % 3 == 0 ? nil : generator.extremeInt64() }
                cases.append((generator.extremeInt64(), maybe(), maybe(), maybe()))
            }
            for (index, (value, low, high, step)) in cases.enumerated() {
                let meta = Self.meta(min: low, max: high, step: step)
                let expected = Self.verdict(value, min: low, max: high, step: step)
                let label = "default \(value), meta \(meta)"

                do {
                    let created = try await catalog.createOption("m", "g", "o\(index)", type: .integer, default: String(value), meta: meta)
                    #expect(expected == true, "\(label) was accepted")
                    #expect(created.defaultValue == String(value))
                } catch let error as RPCError {
                    #expect(expected != true && error.code == .invalidArgument, "\(label): \(error)")
                    #expect(error.message.hasPrefix(expected == nil ? "option.meta_json" : "option.default_value"), "\(label): \(error.message)")
                }

                var update = Stb_Catalog_V1_UpdateOptionRequest()
                update.ref = optionRef("base")
                update.defaultValue = String(value)
                update.metaJson = meta
                do {
                    let updated = try await catalog.client.unary(API.updateOption, request: update)
                    #expect(expected == true && updated.defaultValue == String(value), "\(label) was accepted by UpdateOption")
                } catch let error as RPCError {
                    #expect(expected != true && error.code == .invalidArgument, "\(label): \(error)")
                    #expect(error.message.hasPrefix(expected == nil ? "meta_json" : "default_value"), "\(label): \(error.message)")
                }

                var seed = importRequest("""
                    {"modules": [{"key": "s", "name": "S", "groups": [{"key": "g", "name": "G", "options": [
                      {"key": "s\(index)", "name": "S", "type": "integer", "default": \(value), "meta": \(meta)}]}]}]}
                    """)
                seed.dryRun = true
                do {
                    _ = try await catalog.client.unary(API.importSeed, request: seed)
                    #expect(expected == true, "\(label) was accepted by ImportSeed")
                } catch let error as RPCError {
                    #expect(expected != true && error.code == .invalidArgument, "\(label): \(error)")
                    #expect(error.message.contains(expected == nil ? "modules[0].groups[0].options[0].meta" : "modules[0].groups[0].options[0].default"), "\(label): \(error.message)")
                }
            }
            // Still serving.
            #expect(try await catalog.getConfig().modules.count == 1)
        }
    }

    @Test("integer defaults are stored in their canonical text; other spellings of values are refused")
    func canonicalValues() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("m")
            try await catalog.createGroup("m", "g")
            for (index, (sent, stored)) in [("+5", "5"), ("007", "7"), ("-0", "0"), ("-007", "-7"), ("+0", "0"), ("0005", "5")].enumerated() {
                let option = try await catalog.createOption("m", "g", "i\(index)", type: .integer, default: sent, meta: #"{"min": -10, "max": 10}"#)
                #expect(option.defaultValue == stored, "\(sent)")
                #expect(try await catalog.client.unary(API.getOption, request: optionRef("i\(index)")).defaultValue == stored)
            }
            // Another spelling of the stored value changes nothing.
            let audit = try await catalog.count("SELECT count(*) FROM audit_log")
            var update = Stb_Catalog_V1_UpdateOptionRequest()
            update.ref = optionRef("i0")
            update.defaultValue = "+0005"
            #expect(try await catalog.client.unary(API.updateOption, request: update).defaultValue == "5")
            #expect(try await catalog.count("SELECT count(*) FROM audit_log") == audit)

            let refused: [(Stb_Catalog_V1_OptionType, String, String)] = [
                (.integer, " 5", "is not an integer"), (.integer, "5.0", "is not an integer"), (.integer, "1e3", "is not an integer"),
                (.integer, "0x10", "is not an integer"), (.integer, "", "is not an integer"), (.integer, "9223372036854775808", "out of range"),
                (.boolean, "True", "is not a boolean"), (.boolean, "1", "is not a boolean"), (.boolean, "true ", "is not a boolean"),
                (.boolean, "", "is not a boolean"),
            ]
            for (type, value, expected) in refused {
                let error = await expectStatus(.invalidArgument) { try await catalog.createOption("m", "g", "refused", type: type, default: value) }
                #expect(error?.message.hasPrefix("option.default_value:") == true && error?.message.contains(expected) == true, "\(value): \(error?.message ?? "")")
            }

            // An enum default in another Unicode normal form takes the listed spelling.
            let option = try await catalog.createOption("m", "g", "drink", type: .enum, default: "cafe\u{301}", meta: #"{"values": ["caf\u00e9", "tea"]}"#)
            #expect(Array(option.defaultValue.utf8) == Array("caf\u{e9}".utf8))
        }
    }

    @Test("patterns run in linear time, are checked by the same engine when written, and match whole values")
    func patterns() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("m")
            try await catalog.createGroup("m", "g")
            let clock = ContinuousClock()
            for pattern in ["(a+)+b", "(a|a)*b", "(.*a){20}", "((a*)*)*b"] {
                for length in [20, 4000] {
                    let value = String(repeating: "a", count: length - 1) + "!"
                    let start = clock.now
                    let error = await expectStatus(.invalidArgument) {
                        try await catalog.createOption("m", "g", "p", type: .string, default: value, meta: #"{"pattern": "\#(pattern)"}"#)
                    }
                    #expect(error?.message.contains("does not match the pattern") == true)
                    // The backtracking engine took 15 s at 20 characters: half that separates it
                    // from RE2 on a loaded machine too.
                    #expect(clock.now - start < .seconds(7), "\(pattern) on \(length) characters")
                }
            }
            let refused = [#"(a)\\1"#, "(?=a)b", "[a-", "a{1001}", String(repeating: "a", count: 1025)]
            for pattern in refused {
                let error = await expectStatus(.invalidArgument) {
                    try await catalog.createOption("m", "g", "p", type: .string, default: "a", meta: #"{"pattern": "\#(pattern)"}"#)
                }
                #expect(error?.message.hasPrefix("option.meta_json.pattern:") == true, "\(pattern): \(error?.message ?? "")")
                #expect((error?.message.utf8.count ?? 0) < 400)
            }
            // A full match: a pattern matching part of the value is not enough.
            await expectStatus(.invalidArgument) { try await catalog.createOption("m", "g", "p", type: .string, default: "abc1", meta: #"{"pattern": "[a-z]+"}"#) }
            await expectStatus(.invalidArgument) { try await catalog.createOption("m", "g", "p", type: .string, default: "xab", meta: #"{"pattern": "ab"}"#) }
            let option = try await catalog.createOption("m", "g", "p", type: .string, default: "ab", meta: #"{"pattern": "a|ab"}"#)
            #expect(option.defaultValue == "ab")
        }
    }

    @Test("free text is limited in bytes as well as characters, in every write path, with the field and the limit in the message")
    func lengthLimits() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("m")
            try await catalog.createGroup("m", "g")
            try await catalog.createOption("m", "g", "o", type: .string, default: "x")
            // 200 characters, each a letter and 2,500 combining accents: about 1 MB.
            let heavyName = String(repeating: "e" + String(repeating: "\u{301}", count: 2500), count: 200)
            #expect(heavyName.count == 200 && heavyName.utf8.count > 1_000_000)
            let longDescription = String(repeating: "d", count: 2001)
            let heavyDescription = String(repeating: "\u{1F600}", count: 2001 / 4 + 1900)

            func module(name: String = "M", description: String = "") -> Stb_Catalog_V1_CreateModuleRequest {
                var module = Stb_Catalog_V1_Module()
                module.key = "n"
                module.name = name
                module.description_p = description
                var request = Stb_Catalog_V1_CreateModuleRequest()
                request.module = module
                return request
            }
            func option(_ type: Stb_Catalog_V1_OptionType = .string, name: String = "O", description: String = "", value: String = "", meta: String = "") -> Stb_Catalog_V1_CreateOptionRequest {
                var option = Stb_Catalog_V1_Option()
                option.moduleKey = "m"
                option.groupKey = "g"
                option.key = "n"
                option.name = name
                option.description_p = description
                option.type = type
                option.defaultValue = value
                option.metaJson = meta
                var request = Stb_Catalog_V1_CreateOptionRequest()
                request.option = option
                return request
            }
            func group(name: String = "G", description: String = "") -> Stb_Catalog_V1_CreateGroupRequest {
                var group = Stb_Catalog_V1_Group()
                group.moduleKey = "m"
                group.key = "n"
                group.name = name
                group.description_p = description
                var request = Stb_Catalog_V1_CreateGroupRequest()
                request.group = group
                return request
            }
            var updateModule = Stb_Catalog_V1_UpdateModuleRequest()
            updateModule.ref = moduleRef("m")
            updateModule.description_p = heavyDescription
            var updateOption = Stb_Catalog_V1_UpdateOptionRequest()
            updateOption.ref = optionRef("o")
            updateOption.name = heavyName
            var updateGroup = Stb_Catalog_V1_UpdateGroupRequest()
            var groupRef = Stb_Catalog_V1_GroupRef()
            groupRef.moduleKey = "m"
            groupRef.key = "g"
            updateGroup.ref = groupRef
            updateGroup.description_p = longDescription
            let heavyEnum = "v" + String(repeating: "\u{301}", count: 500)
            let bigMeta = #"{"note": "\#(String(repeating: "x", count: 70000))"}"#
            func seed(_ module: String) -> Stb_Catalog_V1_ImportSeedRequest {
                var request = importRequest(#"{"modules": [\#(module)]}"#)
                request.dryRun = true
                return request
            }
            func groups(default value: String) -> String {
                #""groups": [{"key": "g", "name": "G", "options": [{"key": "o", "name": "O", "type": "string", "default": "\#(value)"}]}]"#
            }

            let cases: [(String, () async throws -> Void, String)] = [
                ("module name", { _ = try await catalog.client.unary(API.createModule, request: module(name: heavyName)) }, "module.name: longer than 800 bytes"),
                ("module name chars", { _ = try await catalog.client.unary(API.createModule, request: module(name: String(repeating: "n", count: 201))) }, "module.name: longer than 200 characters"),
                ("module description", { _ = try await catalog.client.unary(API.createModule, request: module(description: longDescription)) }, "module.description: longer than 2000 characters"),
                ("group name", { _ = try await catalog.client.unary(API.createGroup, request: group(name: heavyName)) }, "group.name: longer than 800 bytes"),
                ("group description", { _ = try await catalog.client.unary(API.createGroup, request: group(description: heavyDescription)) }, "group.description: longer than 8000 bytes"),
                ("option name", { _ = try await catalog.client.unary(API.createOption, request: option(name: heavyName)) }, "option.name: longer than 800 bytes"),
                ("option description", { _ = try await catalog.client.unary(API.createOption, request: option(description: heavyDescription)) }, "option.description: longer than 8000 bytes"),
                ("string default", { _ = try await catalog.client.unary(API.createOption, request: option(value: heavyName)) }, "option.default_value: longer than 16384 bytes"),
                ("enum value", { _ = try await catalog.client.unary(API.createOption, request: option(.enum, value: heavyEnum, meta: #"{"values": ["\#(heavyEnum)"]}"#)) }, "option.meta_json.values[0]: longer than 800 bytes"),
                ("meta size", { _ = try await catalog.client.unary(API.createOption, request: option(meta: bigMeta)) }, "option.meta_json: longer than 65536 bytes"),
                ("update module", { _ = try await catalog.client.unary(API.updateModule, request: updateModule) }, "description: longer than 8000 bytes"),
                ("update group", { _ = try await catalog.client.unary(API.updateGroup, request: updateGroup) }, "description: longer than 2000 characters"),
                ("update option", { _ = try await catalog.client.unary(API.updateOption, request: updateOption) }, "name: longer than 800 bytes"),
                ("seed module name", { _ = try await catalog.client.unary(API.importSeed, request: seed(#"{"key": "s", "name": "\#(heavyName)"}"#)) }, "modules[0].name: longer than 800 bytes"),
                ("seed description", { _ = try await catalog.client.unary(API.importSeed, request: seed(#"{"key": "s", "name": "S", "description": "\#(longDescription)"}"#)) }, "modules[0].description: longer than 2000 characters"),
                ("seed option", { _ = try await catalog.client.unary(API.importSeed, request: seed(#"{"key": "s", "name": "S", \#(groups(default: heavyName))}"#)) }, "modules[0].groups[0].options[0].default: longer than 16384 bytes"),
                ("seed meta", { _ = try await catalog.client.unary(API.importSeed, request: seed(#"{"key": "s", "name": "S", "meta": \#(bigMeta)}"#)) }, "modules[0].meta: longer than 65536 bytes"),
            ]
            for (label, call, expected) in cases {
                let error = await expectStatus(.invalidArgument) { try await call() }
                #expect(error?.message.contains(expected) == true, "\(label): \(error?.message.prefix(300) ?? "")")
            }
            #expect(try await catalog.count("SELECT count(*) FROM modules") == 1)
            // At the limits, still accepted.
            _ = try await catalog.client.unary(API.createModule, request: module(name: String(repeating: "é", count: 200), description: String(repeating: "d", count: 2000)))
        }
    }

    @Test("page sizes and tokens at their extremes: a page or INVALID_ARGUMENT naming the token")
    func pagingExtremes() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("m")
            try await catalog.createGroup("m", "g")
            try await catalog.createOption("m", "g", "o")
            let tokens = ["", "0", "1", "9223372036854775807", "9223372036854775808", "-1", "-9223372036854775808", "+1", " 1", "1e3",
                          "0x10", String(repeating: "9", count: 400), "٣"]
            for size: UInt32 in [0, 1, 1000, 1001, .max] {
                for token in tokens {
                    var page = Stb_Common_V1_PageRequest()
                    page.pageSize = size
                    page.pageToken = token
                    var modules = Stb_Catalog_V1_ListModulesRequest()
                    modules.page = page
                    var groups = Stb_Catalog_V1_ListGroupsRequest()
                    groups.page = page
                    var options = Stb_Catalog_V1_ListOptionsRequest()
                    options.page = page
                    let calls: [() async throws -> Int] = [
                        { try await catalog.client.unary(API.listModules, request: modules).modules.count },
                        { try await catalog.client.unary(API.listGroups, request: groups).groups.count },
                        { try await catalog.client.unary(API.listOptions, request: options).options.count },
                    ]
                    for call in calls {
                        do {
                            let count = try await call()
                            #expect(count <= 1)
                        } catch let error as RPCError {
                            #expect(error.code == .invalidArgument && error.message.hasPrefix("page.page_token"), "\(size) \(token): \(error)")
                        }
                    }
                }
            }
        }
    }
}

