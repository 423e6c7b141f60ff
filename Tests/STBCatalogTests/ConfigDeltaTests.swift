import STBCatalog
import STBMessages
import STBPostgres
import STBRPC
import STBTestSupport
import Testing

@Suite("GetConfig deltas against a real Postgres")
struct ConfigDeltaTests {
    @Test("copies kept up to date with deltas equal a fresh full GetConfig after random changes (seed 17)")
    func randomChanges() async throws {
        try await CatalogHarness.with { catalog in
            var random = SplitMix(seed: 17)
            // m0 and m1 are never deleted: the filtered copy follows them.
            for module in ["m0", "m1", "m2"] {
                try await catalog.createModule(module)
                try await catalog.createState(module, "idle")
                for group in ["g0", "g1"] {
                    try await catalog.createGroup(module, group, position: Int32(random.next() % 3))
                    for index in 0..<3 { try await catalog.createOption(module, group, "\(module)_\(group)_o\(index)") }
                }
            }
            let filter = ["m0", "m1"]
            var eager = ConfigCopy(try await catalog.getConfig(acceptDelta: true))
            var lagging = eager
            var filtered = ConfigCopy(try await catalog.getConfig(modules: filter, acceptDelta: true))
            #expect(!eager.config.delta && eager.config.modules.count == 3)
            var deltas = 0
            var counter = 0
            for step in 0..<80 {
                for _ in 0...(random.next() % 3) {
                    counter += 1
                    try await randomChange(catalog, &random, counter: counter)
                }
                deltas += try await eager.sync(catalog, step: step)
                if step % 7 == 6 { deltas += try await lagging.sync(catalog, step: step) }
                if step % 3 == 2 { deltas += try await filtered.sync(catalog, modules: filter, step: step) }
                let full = try await catalog.getConfig()
                let truth = ConfigCopy.normalized(full.modules)
                #expect(eager.config.revision == full.revision)
                // One mismatch stops the run: later steps would only repeat it.
                try #require(eager.normalizedBytes == truth ? true : false, "step \(step): the copy kept with deltas differs from GetConfig")
                if step % 7 == 6 {
                    try #require(lagging.normalizedBytes == truth ? true : false, "step \(step): the lagging copy differs from GetConfig")
                }
                if step % 3 == 2 {
                    let filteredTruth = ConfigCopy.normalized(try await catalog.getConfig(modules: filter).modules)
                    try #require(filtered.normalizedBytes == filteredTruth ? true : false, "step \(step): the filtered copy differs from GetConfig")
                }
            }
            #expect(deltas >= 60)
            // The run covered what the deltas must carry: deleted modules (with their
            // contents), groups, options, states and transitions, and options moved.
            let kinds = try await catalog.pool.query("SELECT entity || ' ' || action, count(*) FROM events GROUP BY 1")
            var counts: [String: Int] = [:]
            for row in kinds { counts[try row.decode(0, as: String.self)] = try row.decode(1, as: Int.self) }
            for kind in ["module deleted", "group deleted", "option deleted", "state deleted", "transition deleted", "transition updated", "option updated"] {
                #expect(counts[kind, default: 0] > 0, "no \(kind) event in the run: \(counts)")
            }
            let moves = try await catalog.pool.query("""
                SELECT count(*) FROM audit_log
                WHERE entity = 'option' AND action = 'updated' AND before->>'group' IS DISTINCT FROM after->>'group'
                """)
            #expect(try moves[0].decode(0, as: Int.self) > 0, "no option moved to another group")
        }
    }

    @Test("one changed option: a small delta; without accept_delta, the whole tree")
    func oneOption() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("video")
            try await catalog.createGroup("video", "output")
            for index in 0..<50 { try await catalog.createOption("video", "output", "o\(index)") }
            let before = try await catalog.getConfig()
            var update = Stb_Catalog_V1_UpdateOptionRequest()
            update.ref = optionRef("o7")
            update.description_p = "changed"
            _ = try await catalog.client.unary(API.updateOption, request: update, metadata: catalog.metadata())

            let delta = try await catalog.getConfig(known: before.revision, acceptDelta: true)
            #expect(delta.delta && delta.modules.isEmpty)
            #expect(delta.revision == before.revision + 1)
            #expect(delta.changes?.baseRevision == before.revision)
            #expect(delta.changes?.options.map(\.key) == ["o7"])
            #expect(delta.changes?.options.first?.description_p == "changed")
            #expect(delta.serializedBytes().count < 1024)
            // Asked again (the cached reply), the same bytes.
            #expect(try await catalog.getConfig(known: before.revision, acceptDelta: true).serializedBytes() == delta.serializedBytes())

            let legacy = try await catalog.getConfig(known: before.revision)
            #expect(!legacy.delta && legacy.changes == nil)
            #expect(legacy.modules.first?.groups.first?.options.count == 50)
            let current = try await catalog.getConfig(known: delta.revision, acceptDelta: true)
            #expect(current.unchanged && !current.delta)
        }
    }

    @Test("a known revision older than the pruning horizon gets the whole tree, a newer one a delta")
    func horizon() async throws {
        try await CatalogHarness.with { catalog in
            try await catalog.createModule("drm")
            let old = try await catalog.getConfig()
            try await catalog.createModule("drm2")
            try await catalog.createModule("drm3")
            // As in the resync test: prune until the first events are gone.
            var pruned = 0
            let deadline = ContinuousClock.now + .seconds(30)
            while pruned < 3, ContinuousClock.now < deadline {
                pruned += try await catalog.service.pruneEvents(retentionSeconds: 0)
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(pruned >= 3)
            let full = try await catalog.getConfig(known: old.revision, acceptDelta: true)
            #expect(!full.delta && !full.unchanged && full.changes == nil)
            #expect(full.modules.compactMap(\.module?.key) == ["drm", "drm2", "drm3"])

            let afterPrune = full.revision
            try await catalog.createModule("drm4")
            let delta = try await catalog.getConfig(known: afterPrune, acceptDelta: true)
            #expect(delta.delta && delta.changes?.modules.map(\.key) == ["drm4"])
        }
    }
}

/// A client's copy of the tree, kept with deltas as `ConfigDelta`'s documentation says.
struct ConfigCopy {
    var config: Stb_Catalog_V1_GetConfigResponse

    init(_ config: Stb_Catalog_V1_GetConfigResponse) { self.config = config }

    var normalizedBytes: [UInt8] { Self.normalized(config.modules) }

    /// Asks for what changed since the copy's revision and applies it; returns 1 for a delta.
    mutating func sync(_ catalog: CatalogHarness, modules: [String] = [], step: Int) async throws -> Int {
        let reply = try await catalog.getConfig(modules: modules, known: config.revision, acceptDelta: true)
        if reply.unchanged { return 0 }
        #expect(reply.delta, "step \(step): expected a delta (nothing was pruned)")
        guard reply.delta, let changes = reply.changes else {
            config = reply
            return 0
        }
        #expect(changes.baseRevision == config.revision)
        apply(changes)
        config.revision = reply.revision
        config.cursor = reply.cursor
        return 1
    }

    mutating func apply(_ changes: Stb_Catalog_V1_ConfigDelta) {
        var modules = config.modules
        func removeOption(_ key: String) {
            for m in modules.indices { for g in modules[m].groups.indices { modules[m].groups[g].options.removeAll { $0.key == key } } }
        }
        func moduleIndex(_ key: String) -> Int? { modules.firstIndex { $0.module?.key == key } }
        for key in changes.deletedTransitions {
            for m in modules.indices { modules[m].transitions.removeAll { "\($0.moduleKey)/\($0.fromState)/\($0.event)" == key } }
        }
        for key in changes.deletedOptions { removeOption(key) }
        for key in changes.deletedStates {
            for m in modules.indices { modules[m].states.removeAll { "\($0.moduleKey)/\($0.name)" == key } }
        }
        for key in changes.deletedGroups {
            for m in modules.indices { modules[m].groups.removeAll { "\($0.group?.moduleKey ?? "")/\($0.group?.key ?? "")" == key } }
        }
        for key in changes.deletedModules { modules.removeAll { $0.module?.key == key } }

        for module in changes.modules {
            if let m = moduleIndex(module.key) {
                modules[m].module = module
            } else {
                var entry = Stb_Catalog_V1_ConfigModule()
                entry.module = module
                modules.append(entry)
            }
        }
        for group in changes.groups {
            guard let m = moduleIndex(group.moduleKey) else {
                Issue.record("group \(group.moduleKey)/\(group.key) of a module the copy lacks")
                continue
            }
            if let g = modules[m].groups.firstIndex(where: { $0.group?.key == group.key }) {
                modules[m].groups[g].group = group
            } else {
                var entry = Stb_Catalog_V1_ConfigGroup()
                entry.group = group
                modules[m].groups.append(entry)
            }
        }
        for option in changes.options {
            removeOption(option.key)
            guard let m = moduleIndex(option.moduleKey), let g = modules[m].groups.firstIndex(where: { $0.group?.key == option.groupKey }) else {
                Issue.record("option \(option.key) in a group the copy lacks")
                continue
            }
            modules[m].groups[g].options.append(option)
        }
        for state in changes.states {
            guard let m = moduleIndex(state.moduleKey) else { continue }
            modules[m].states.removeAll { $0.name == state.name }
            modules[m].states.append(state)
        }
        for transition in changes.transitions {
            guard let m = moduleIndex(transition.moduleKey) else { continue }
            modules[m].transitions.removeAll { $0.fromState == transition.fromState && $0.event == transition.event }
            modules[m].transitions.append(transition)
        }
        config.modules = Self.sorted(modules)
    }

    /// The orders a full reply has.
    static func sorted(_ modules: [Stb_Catalog_V1_ConfigModule]) -> [Stb_Catalog_V1_ConfigModule] {
        var modules = modules.sorted { ($0.module?.key ?? "") < ($1.module?.key ?? "") }
        for m in modules.indices {
            modules[m].groups.sort { ($0.group?.position ?? 0, $0.group?.key ?? "") < ($1.group?.position ?? 0, $1.group?.key ?? "") }
            for g in modules[m].groups.indices { modules[m].groups[g].options.sort { $0.key < $1.key } }
            modules[m].states.sort { $0.name < $1.name }
            modules[m].transitions.sort { ($0.fromState, $0.event) < ($1.fromState, $1.event) }
        }
        return modules
    }

    /// The modules in the full reply's orders, as bytes to compare.
    static func normalized(_ modules: [Stb_Catalog_V1_ConfigModule]) -> [UInt8] {
        var reply = Stb_Catalog_V1_GetConfigResponse()
        reply.modules = sorted(modules)
        return reply.serializedBytes()
    }
}

/// One random create, update or delete, chosen from what the catalog holds now.
private func randomChange(_ catalog: CatalogHarness, _ random: inout SplitMix, counter: Int) async throws {
    let tree = try await catalog.getConfig().modules
    func pick<T>(_ items: [T]) -> T? { items.isEmpty ? nil : items[Int(random.next() % UInt64(items.count))] }
    let groups = tree.flatMap { module in module.groups.compactMap(\.group) }
    let options = tree.flatMap { module in module.groups.flatMap(\.options) }
    let states = tree.flatMap(\.states)
    let transitions = tree.flatMap(\.transitions)
    let metadata = catalog.metadata()
    let client = catalog.client
    switch random.next() % 14 {
    case 0:
        // A new module with a group, an option and a state.
        let key = "n\(counter)"
        try await catalog.createModule(key)
        try await catalog.createGroup(key, "g0")
        try await catalog.createOption(key, "g0", "\(key)_o")
        try await catalog.createState(key, "idle")
    case 1:
        guard let group = pick(groups) else { return }
        try await catalog.createOption(group.moduleKey, group.key, "o\(counter)")
    case 2:
        guard let module = pick(tree)?.module else { return }
        try await catalog.createGroup(module.key, "g\(counter)", position: Int32(random.next() % 4))
    case 3, 4:
        guard let option = pick(options) else { return }
        var request = Stb_Catalog_V1_UpdateOptionRequest()
        request.ref = optionRef(option.key)
        request.description_p = "d\(counter)"
        if random.next() % 2 == 0 { request.defaultValue = option.defaultValue == "true" ? "false" : "true" }
        _ = try await client.unary(API.updateOption, request: request, metadata: metadata)
    case 5:
        // Moves an option to another group, maybe of another module.
        guard let option = pick(options), let group = pick(groups) else { return }
        var request = Stb_Catalog_V1_UpdateOptionRequest()
        request.ref = optionRef(option.key)
        request.moduleKey = group.moduleKey
        request.groupKey = group.key
        _ = try await client.unary(API.updateOption, request: request, metadata: metadata)
    case 6:
        guard let group = pick(groups) else { return }
        var request = Stb_Catalog_V1_UpdateGroupRequest()
        request.ref = groupRef(group)
        request.position = Int32(random.next() % 4)
        request.name = "G\(counter)"
        _ = try await client.unary(API.updateGroup, request: request, metadata: metadata)
    case 7:
        guard let module = pick(tree)?.module else { return }
        var request = Stb_Catalog_V1_UpdateModuleRequest()
        request.ref = moduleRef(module.key)
        request.name = "M\(counter)"
        _ = try await client.unary(API.updateModule, request: request, metadata: metadata)
    case 8, 9:
        guard let option = pick(options) else { return }
        _ = try await client.unary(API.deleteOption, request: optionRef(option.key), metadata: metadata)
    case 10:
        // A group with its options.
        guard let group = pick(groups), group.moduleKey != "m0" || group.key != "g0" else { return }
        _ = try await client.unary(API.deleteGroup, request: groupRef(group), metadata: metadata)
    case 11:
        // A module with its groups, options, states and transitions (never m0 or m1).
        guard let module = pick(tree)?.module, module.key != "m0", module.key != "m1" else { return }
        _ = try await client.unary(API.deleteModule, request: moduleRef(module.key), metadata: metadata)
    case 12:
        // A state and a transition to it, or a transition's condition changed.
        guard let module = pick(tree)?.module, let from = pick(states.filter { $0.moduleKey == module.key }) else { return }
        if let existing = pick(transitions.filter { $0.moduleKey == module.key }), random.next() % 2 == 0 {
            var request = Stb_Catalog_V1_UpdateTransitionRequest()
            request.ref = transitionRef(existing)
            request.metaJson = #"{"n": \#(counter)}"#
            _ = try await client.unary(API.updateTransition, request: request, metadata: metadata)
            return
        }
        let to = try await catalog.createState(module.key, "s\(counter)")
        var transition = Stb_Catalog_V1_Transition()
        transition.moduleKey = module.key
        transition.fromState = from.name
        transition.event = "E\(counter)"
        transition.toState = to.name
        var request = Stb_Catalog_V1_CreateTransitionRequest()
        request.transition = transition
        _ = try await client.unary(API.createTransition, request: request, metadata: metadata)
    default:
        // A transition, or a state nothing refers to.
        if let transition = pick(transitions), random.next() % 2 == 0 {
            _ = try await client.unary(API.deleteTransition, request: transitionRef(transition), metadata: metadata)
            return
        }
        let used = Set(transitions.flatMap { ["\($0.moduleKey)/\($0.fromState)", "\($0.moduleKey)/\($0.toState)"] })
            .union(tree.compactMap { module in module.module.map { "\($0.key)/\($0.initialState)" } })
        guard let state = pick(states.filter { !used.contains("\($0.moduleKey)/\($0.name)") }) else { return }
        var ref = Stb_Catalog_V1_StateRef()
        ref.moduleKey = state.moduleKey
        ref.name = state.name
        _ = try await client.unary(API.deleteState, request: ref, metadata: metadata)
    }
}

private func groupRef(_ group: Stb_Catalog_V1_Group) -> Stb_Catalog_V1_GroupRef {
    var ref = Stb_Catalog_V1_GroupRef()
    ref.moduleKey = group.moduleKey
    ref.key = group.key
    return ref
}

private func transitionRef(_ transition: Stb_Catalog_V1_Transition) -> Stb_Catalog_V1_TransitionRef {
    var ref = Stb_Catalog_V1_TransitionRef()
    ref.moduleKey = transition.moduleKey
    ref.fromState = transition.fromState
    ref.event = transition.event
    return ref
}
