import STBJSON
import Glibc
import STBCatalog
import STBMessages
import STBPostgres
import STBRPC
import STBServiceTestSupport
import Synchronization
import Testing

@Suite("Catalog service against a real Postgres")
struct CatalogTests {
    @Test("create, read, update and delete, with an audit row and an event per change")
    func crudRoundTrip() async throws {
        try await CatalogHarness.with { catalog in
            let module = try await catalog.createModule("video")
            #expect(module.id > 0 && module.key == "video" && module.active)
            try await catalog.createGroup("video", "output", position: 1)
            let option = try await catalog.createOption("video", "output", "resolution", type: .enum, default: "1080p",
                                                        meta: #"{"values": ["720p", "1080p", "2160p"]}"#)
            #expect(option.moduleKey == "video" && option.groupKey == "output" && option.type == .enum)

            let fetched = try await catalog.client.unary(API.getOption, request: optionRef("resolution"))
            #expect(fetched.id == option.id && fetched.defaultValue == "1080p")

            var update = Stb_Catalog_V1_UpdateOptionRequest()
            update.ref = optionRef("resolution")
            update.defaultValue = "2160p"
            let updated = try await catalog.client.unary(API.updateOption, request: update, metadata: catalog.metadata(actor: "alice"))
            #expect(updated.defaultValue == "2160p" && updated.name == option.name && updated.type == .enum)

            let audit = try await catalog.pool.query("""
                SELECT actor, actor_id, before->>'default', after->>'default' FROM audit_log WHERE entity = 'option' AND action = 'updated'
                """)
            #expect(audit.count == 1)
            let (actor, actorID, before, after) = try audit[0].decode(String.self, String.self, String.self, String.self)
            #expect(actor == "alice" && actorID == "user:alice" && before == "1080p" && after == "2160p")

            // The same update again changes nothing, and records nothing.
            _ = try await catalog.client.unary(API.updateOption, request: update)
            #expect(try await catalog.count("SELECT count(*) FROM audit_log") == 4)
            #expect(try await catalog.count("SELECT count(*) FROM events") == 4)

            _ = try await catalog.client.unary(API.deleteOption, request: optionRef("resolution"), metadata: catalog.metadata())
            await expectStatus(.notFound) { _ = try await catalog.client.unary(API.getOption, request: optionRef("resolution")) }
            #expect(try await catalog.count("SELECT revision FROM catalog_revision") == 5)
        }
    }

    @Test("bad input is refused with INVALID_ARGUMENT naming the field, and writes nothing")
    func validation() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("audio")
            try await catalog.createGroup("audio", "levels")
            let cases: [(String, Stb_Catalog_V1_OptionType, String, String, String)] = [
                ("Bad Key", .boolean, "true", "", "option.key"),
                ("volume", .integer, "abc", #"{"min": 0, "max": 100}"#, #"option.default_value: "abc" is not an integer"#),
                ("volume", .integer, "120", #"{"min": 0, "max": 100}"#, "above the maximum 100"),
                ("volume", .integer, "5", #"{"min": 10, "max": 1}"#, "min 10 is greater than max 1"),
                ("mode", .enum, "x", #"{"values": []}"#, "must not be empty"),
                ("mode", .enum, "a", #"{"values": ["a", "a"]}"#, "listed twice"),
                ("mode", .enum, "z", #"{"values": ["a", "b"]}"#, "is not one of the values"),
                ("flag", .boolean, "yes", "", "is not a boolean"),
                ("flag", .unspecified, "true", "", "option.type"),
                ("name", .string, "UPPER", #"{"pattern": "[a-z]+"}"#, "does not match the pattern"),
                ("meta", .boolean, "true", "[1]", "option.meta_json: must be a JSON object"),
            ]
            for (key, type, value, meta, expected) in cases {
                let error = await expectStatus(.invalidArgument) {
                    try await catalog.createOption("audio", "levels", key, type: type, default: value, meta: meta)
                }
                #expect(error?.message.contains(expected) == true, "\(key): \(error?.message ?? "")")
            }
            #expect(try await catalog.count("SELECT count(*) FROM options") == 0)
            await expectStatus(.alreadyExists) { try await catalog.createModule("audio") }
            await expectStatus(.notFound) { try await catalog.createGroup("nope", "g") }
            await expectStatus(.notFound) { try await catalog.createOption("audio", "nope", "x") }
            #expect(try await catalog.count("SELECT count(*) FROM audit_log") == 2)
        }
    }

    @Test("a module's state machine: states must exist; a used state cannot be deleted")
    func stateMachine() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("video")
            try await catalog.createState("video", "idle")
            var transition = Stb_Catalog_V1_Transition()
            transition.moduleKey = "video"
            transition.fromState = "idle"
            transition.event = "ENABLE_4K"
            transition.toState = "4k_enabled"
            transition.conditionJson = #"{"==": [{"var": "hdmi"}, "2.1"]}"#
            var request = Stb_Catalog_V1_CreateTransitionRequest()
            request.transition = transition
            let missing = await expectStatus(.invalidArgument) { _ = try await catalog.client.unary(API.createTransition, request: request) }
            #expect(missing?.message.contains(#"state "4k_enabled" does not exist"#) == true)
            try await catalog.createState("video", "4k_enabled")
            let created = try await catalog.client.unary(API.createTransition, request: request)
            #expect(try JSONValue.parse(created.conditionJson) == JSONValue.parse(transition.conditionJson))

            var setInitial = Stb_Catalog_V1_UpdateModuleRequest()
            setInitial.ref = moduleRef("video")
            setInitial.initialState = "nowhere"
            await expectStatus(.invalidArgument) { _ = try await catalog.client.unary(API.updateModule, request: setInitial) }
            setInitial.initialState = "idle"
            #expect(try await catalog.client.unary(API.updateModule, request: setInitial).initialState == "idle")

            var stateRef = Stb_Catalog_V1_StateRef()
            stateRef.moduleKey = "video"
            stateRef.name = "4k_enabled"
            await expectStatus(.failedPrecondition) { _ = try await catalog.client.unary(API.deleteState, request: stateRef) }

            var updateState = Stb_Catalog_V1_UpdateStateRequest()
            updateState.ref = stateRef
            updateState.metaJson = #"{"label": "4K"}"#
            let labelled = try await catalog.client.unary(API.updateState, request: updateState)
            #expect(try JSONValue.parse(labelled.metaJson) == JSONValue.parse(#"{"label": "4K"}"#))
            updateState.metaJson = "[]"
            await expectStatus(.invalidArgument) { _ = try await catalog.client.unary(API.updateState, request: updateState) }
            #expect(try await catalog.count("SELECT count(*) FROM audit_log WHERE entity = 'state' AND action = 'updated'") == 1)
        }
    }

    @Test("deleting a module removes everything in it, each with its own event")
    func cascadeDelete() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("net")
            try await catalog.createGroup("net", "wifi")
            try await catalog.createOption("net", "wifi", "wifi_5ghz")
            try await catalog.createOption("net", "wifi", "wifi_6ghz")
            try await catalog.createState("net", "offline")
            let before = try await catalog.count("SELECT count(*) FROM events")
            _ = try await catalog.client.unary(API.deleteModule, request: moduleRef("net"))
            let deletions = try await catalog.pool.query(
                "SELECT entity, entity_key FROM events WHERE action = 'deleted' ORDER BY id"
            ).map { try $0.decode(String.self, String.self) }.map { "\($0.0) \($0.1)" }
            #expect(deletions == ["state net/offline", "option wifi_5ghz", "option wifi_6ghz", "group net/wifi", "module net"])
            #expect(try await catalog.count("SELECT count(*) FROM events") == before + 5)
            #expect(try await catalog.count("SELECT count(*) FROM options") == 0)
        }
    }

    @Test("GetConfig: the tree in order, the revision, unchanged replies and module filters")
    func getConfig() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("video")
            try await catalog.createModule("audio")
            try await catalog.createGroup("video", "zeta", position: 1)
            try await catalog.createGroup("video", "alpha", position: 2)
            try await catalog.createOption("video", "zeta", "b_opt")
            try await catalog.createOption("video", "zeta", "a_opt")
            let config = try await catalog.getConfig()
            #expect(config.modules.map { $0.module!.key } == ["audio", "video"])
            let video = config.modules[1]
            #expect(video.groups.map { $0.group!.key } == ["zeta", "alpha"])
            #expect(video.groups[0].options.map(\.key) == ["a_opt", "b_opt"])
            #expect(config.revision == 6 && !config.unchanged)

            let same = try await catalog.getConfig(known: config.revision)
            #expect(same.unchanged && same.modules.isEmpty && same.revision == config.revision)

            let filtered = try await catalog.getConfig(modules: ["video"])
            #expect(filtered.modules.map { $0.module!.key } == ["video"])
            await expectStatus(.notFound) { _ = try await catalog.getConfig(modules: ["nope"]) }

            try await catalog.createOption("video", "alpha", "c_opt")
            let after = try await catalog.getConfig(known: config.revision)
            #expect(!after.unchanged && after.revision == 7)
            #expect(after.modules[1].groups[1].options.map(\.key) == ["c_opt"])
        }
    }

    @Test("Watch: replays after a cursor, then delivers a live change with its new state")
    func watch() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("ui")
            try await catalog.createGroup("ui", "theme")
            try await catalog.createOption("ui", "theme", "dark_mode", default: "false")
            let config = try await catalog.getConfig()
            try await catalog.createOption("ui", "theme", "high_contrast", default: "false")

            var request = Stb_Catalog_V1_WatchRequest()
            request.after = config.cursor
            let received = try await catalog.client.serverStreaming(API.watch, request: request, timeout: .seconds(30)) { stream in
                var events: [Stb_Catalog_V1_ChangeEvent] = []
                for try await event in stream {
                    events.append(event)
                    if event.key == "high_contrast" {
                        var update = Stb_Catalog_V1_UpdateOptionRequest()
                        update.ref = optionRef("dark_mode")
                        update.defaultValue = "true"
                        _ = try await catalog.client.unary(API.updateOption, request: update, metadata: catalog.metadata(actor: "bob"))
                    }
                    if event.key == "dark_mode" && event.action == .updated { break }
                }
                return events
            }
            #expect(Array(received.map { "\($0.action) \($0.key)" }.suffix(2)) == ["created high_contrast", "updated dark_mode"])
            #expect(zip(received, received.dropFirst()).allSatisfy { OutboxCursor($0.cursor)! < OutboxCursor($1.cursor)! })
            let live = received[received.count - 1]
            guard case .option(let option) = live.state?.entity else {
                Issue.record("no option state in \(live)")
                return
            }
            #expect(option.defaultValue == "true" && live.actor == "bob" && live.revision == 5)
        }
    }

    @Test("a cursor older than retention gets an explicit resync status")
    func resync() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("drm")
            let old = try await catalog.getConfig().cursor
            try await catalog.createModule("drm2")
            try await catalog.createModule("drm3")
            // Events become prunable once every transaction in the cluster older than them has
            // ended (other tests run meanwhile): prune until the first two are gone.
            var pruned = 0
            let deadline = ContinuousClock.now + .seconds(30)
            while pruned < 2, ContinuousClock.now < deadline {
                pruned += try await catalog.service.pruneEvents(retentionSeconds: 0)
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(pruned >= 2)
            var request = Stb_Catalog_V1_WatchRequest()
            request.after = old
            let error = await expectStatus(.failedPrecondition) {
                _ = try await catalog.client.serverStreaming(API.watch, request: request, timeout: .seconds(30)) { stream in
                    for try await _ in stream {}
                }
            }
            #expect(error?.message.hasPrefix("resync required") == true)
            request.after = "garbage"
            await expectStatus(.invalidArgument) {
                _ = try await catalog.client.serverStreaming(API.watch, request: request, timeout: .seconds(30)) { stream in
                    for try await _ in stream {}
                }
            }
        }
    }

    @Test("concurrent updates to one option lose no audit row and no event")
    func concurrentUpdates() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("audio")
            try await catalog.createGroup("audio", "levels")
            try await catalog.createOption("audio", "levels", "volume", type: .integer, default: "0", meta: #"{"min": 0, "max": 100000}"#)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<8 {
                    group.addTask {
                        for round in 0..<10 {
                            var update = Stb_Catalog_V1_UpdateOptionRequest()
                            update.ref = optionRef("volume")
                            update.defaultValue = String(writer * 1000 + round + 1)
                            _ = try await catalog.client.unary(API.updateOption, request: update, metadata: catalog.metadata(actor: "w\(writer)"))
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await catalog.count("SELECT count(*) FROM audit_log WHERE entity = 'option' AND action = 'updated'") == 80)
            #expect(try await catalog.count("SELECT count(*) FROM events WHERE entity = 'option' AND action = 'updated'") == 80)
            // Each update saw the previous one's result: the before/after values chain.
            #expect(try await catalog.count("""
                SELECT count(*) FROM audit_log a JOIN audit_log b ON b.id = (SELECT min(id) FROM audit_log c WHERE c.id > a.id AND c.entity = 'option')
                WHERE a.entity = 'option' AND a.after->>'default' <> b.before->>'default'
                """) == 0)
            #expect(try await catalog.count("SELECT revision FROM catalog_revision") == 83)
        }
    }

    @Test("the change feed follows commit order: after concurrent updates of one option, the last event carries the stored value")
    func feedFollowsCommitOrder() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("audio")
            try await catalog.createGroup("audio", "levels")
            try await catalog.createOption("audio", "levels", "volume", type: .integer, default: "0", meta: #"{"min": 0, "max": 1000000000}"#)
            var request = Stb_Catalog_V1_WatchRequest()
            request.after = try await catalog.getConfig().cursor
            let rounds = 30, writers = 8
            let events = try await catalog.client.serverStreaming(API.watch, request: request, timeout: .seconds(60)) { stream in
                for round in 0..<rounds {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for writer in 0..<writers {
                            group.addTask {
                                var update = Stb_Catalog_V1_UpdateOptionRequest()
                                update.ref = optionRef("volume")
                                update.defaultValue = String(900_000_000 + round * 100 + writer)
                                _ = try await catalog.client.unary(API.updateOption, request: update, metadata: catalog.metadata())
                            }
                        }
                        try await group.waitForAll()
                    }
                }
                var events: [Stb_Catalog_V1_ChangeEvent] = []
                for try await event in stream {
                    events.append(event)
                    if events.count == rounds * writers { break }
                }
                return events
            }
            #expect(zip(events, events.dropFirst()).allSatisfy { $0.revision < $1.revision }, "revisions go backwards along the feed: \(events.map(\.revision))")
            #expect(zip(events, events.dropFirst()).allSatisfy { OutboxCursor($0.cursor)! < OutboxCursor($1.cursor)! })
            let stored = try await catalog.client.unary(API.getOption, request: optionRef("volume"), metadata: catalog.metadata())
            guard case .option(let last)? = events.last?.state?.entity else {
                Issue.record("no option state in the last event")
                return
            }
            #expect(last.defaultValue == stored.defaultValue, "the feed ends with \(last.defaultValue), the catalog holds \(stored.defaultValue)")
        }
    }

    @Test("Watch refuses a cursor beyond the newest change instead of waiting forever")
    func cursorBeyondHead() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("drm")
            let head = try #require(OutboxCursor(try await catalog.getConfig().cursor))
            let beyond = [
                OutboxCursor(revision: head.revision + 1_000_000_000, sequence: head.sequence),
                OutboxCursor(revision: head.revision, sequence: head.sequence + 1),
                OutboxCursor(revision: UInt64.max, sequence: Int64.max),
            ]
            for cursor in beyond {
                var request = Stb_Catalog_V1_WatchRequest()
                request.after = cursor.description
                let error = await expectStatus(.outOfRange) {
                    _ = try await catalog.client.serverStreaming(API.watch, request: request, timeout: .seconds(30)) { stream in
                        for try await _ in stream {}
                    }
                }
                #expect(error?.message.contains("beyond the newest change") == true)
            }
            // Not cursors at all: other spellings, overflow, the former format.
            for text in ["garbage", "18446744073709551616:0", "1:-1", "01:1", "1.1", " 1:1", "1:1:1", String(repeating: "9", count: 100_000)] {
                var request = Stb_Catalog_V1_WatchRequest()
                request.after = text
                await expectStatus(.invalidArgument) {
                    _ = try await catalog.client.serverStreaming(API.watch, request: request, timeout: .seconds(30)) { stream in
                        for try await _ in stream {}
                    }
                }
            }
            // The head itself is fine: the stream stays open, waiting for the next change.
            var request = Stb_Catalog_V1_WatchRequest()
            request.after = head.description
            let next = try await catalog.client.serverStreaming(API.watch, request: request, timeout: .seconds(30)) { stream in
                try await catalog.createModule("drm2")
                for try await event in stream { return event.key }
                return ""
            }
            #expect(next == "drm2")
        }
    }

    @Test("lists page through everything with a token, and report the total")
    func paging() async throws {
        try await CatalogHarness.with { catalog in
            for index in 0..<5 { try await catalog.createModule("m\(index)") }
            var request = Stb_Catalog_V1_ListModulesRequest()
            var keys: [String] = []
            var pages = 0
            repeat {
                var page = request.page ?? Stb_Common_V1_PageRequest()
                page.pageSize = 2
                request.page = page
                let response = try await catalog.client.unary(API.listModules, request: request)
                #expect(response.page?.total == 5)
                keys += response.modules.map(\.key)
                pages += 1
                request.page?.pageToken = response.page?.nextPageToken ?? ""
            } while !(request.page?.pageToken.isEmpty ?? true) && pages < 10
            #expect(keys == ["m0", "m1", "m2", "m3", "m4"] && pages == 3)
            request.page?.pageToken = "not-a-token"
            await expectStatus(.invalidArgument) { _ = try await catalog.client.unary(API.listModules, request: request) }
        }
    }

    @Test("importing a seed twice writes nothing the second time; a dry run writes nothing at all")
    func idempotentImport() async throws {
        try await CatalogHarness.with { catalog in
            let document = try readFile("\(TestDatabase.root)/services/catalog/seeds/demo.json")
            var request = Stb_Catalog_V1_ImportSeedRequest()
            request.documentJson = document
            request.fileName = "demo.json"
            request.dryRun = true
            let dry = try await catalog.client.unary(API.importSeed, request: request)
            #expect(!dry.applied && (dry.plan?.created.count ?? 0) > 100)
            #expect(try await catalog.count("SELECT count(*) FROM modules") == 0)

            request.dryRun = false
            let first = try await catalog.client.unary(API.importSeed, request: request, metadata: catalog.metadata())
            #expect(first.applied && first.revision == 1 && first.seedID > 0)
            #expect(first.plan?.created.count == dry.plan?.created.count)
            let counts = "SELECT (SELECT count(*) FROM audit_log) + 1000000 * (SELECT count(*) FROM events) + 1000000000000 * (SELECT count(*) FROM seeds)"
            let before = try await catalog.count(counts)

            let second = try await catalog.client.unary(API.importSeed, request: request, metadata: catalog.metadata())
            #expect(!second.applied && second.revision == first.revision)
            #expect(second.plan?.created.isEmpty == true && second.plan?.updated.isEmpty == true && second.plan?.unchanged == UInt32(dry.plan?.created.count ?? 0))
            #expect(try await catalog.count(counts) == before)
        }
    }

    @Test("two imports of overlapping documents at once end in a consistent state")
    func concurrentImports() async throws {
        try await CatalogHarness.with { catalog in
            func document(_ suffix: String, default value: Int) -> String {
                """
                {"modules": [{"key": "shared", "name": "Shared", "groups": [{"key": "g", "name": "G", "options": [
                    {"key": "common", "name": "Common", "type": "integer", "default": \(value), "meta": {"min": 0, "max": 100}},
                    {"key": "only_\(suffix)", "name": "Only", "type": "boolean", "default": true}]}]}]}
                """
            }
            async let a = catalog.client.unary(API.importSeed, request: importRequest(document("a", default: 1)), metadata: catalog.metadata(actor: "a"))
            async let b = catalog.client.unary(API.importSeed, request: importRequest(document("b", default: 2)), metadata: catalog.metadata(actor: "b"))
            let (first, second) = try await (a, b)
            #expect(first.applied && second.applied && first.revision != second.revision)
            let last = first.revision > second.revision ? "a" : "b"
            let options = try await catalog.pool.query("SELECT key, default_value FROM options ORDER BY key")
                .map { try $0.decode(String.self, String.self) }.map { "\($0.0)=\($0.1)" }
            #expect(options == ["common=\(last == "a" ? 1 : 2)", "only_a=true", "only_b=true"])
            // Every change has exactly one audit row and one event.
            #expect(try await catalog.count("SELECT count(*) FROM audit_log") == catalog.count("SELECT count(*) FROM events"))
            #expect(try await catalog.count("SELECT revision FROM catalog_revision") == 2)
        }
    }
}

func importRequest(_ document: String) -> Stb_Catalog_V1_ImportSeedRequest {
    var request = Stb_Catalog_V1_ImportSeedRequest()
    request.documentJson = document
    return request
}

func readFile(_ path: String) throws -> String {
    guard let file = fopen(path, "rb") else { throw RPCError(code: .notFound, message: path) }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        bytes += chunk[0..<count]
        if count < chunk.count { break }
    }
    return String(decoding: bytes, as: UTF8.self)
}
