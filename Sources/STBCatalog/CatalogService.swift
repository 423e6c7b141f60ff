import STBJSON
import Logging
import STBMessages
import STBOptionValues
import STBPostgres
import STBRPC
import STBService

/// The catalog service: CRUD for modules, groups, options, states and transitions, the
/// assembled configuration, seed imports and the change feed.
///
/// Every change runs in one transaction that also writes its audit rows, its outbox
/// events and the revision bump (`ChangeSet`); bad input is refused before anything is
/// written.
public struct CatalogService: RPCService {
    let pool: PostgresPool
    /// The change feed: one event per change, in commit order.
    public let outbox: Outbox
    let cache: ConfigCache
    let feed: OutboxFeed
    let logger: Logger
    let calls: ServiceCalls

    /// The outbox channel woken on every catalog commit.
    public static let channel = "catalog_events"

    public init(pool: PostgresPool, signal: ChangeSignal, logger: Logger) {
        self.pool = pool
        self.outbox = Outbox(table: "events", channel: Self.channel, revisionTable: "catalog_revision")
        self.cache = ConfigCache(pool: pool, signal: signal)
        self.feed = OutboxFeed(outbox: outbox, pool: pool, signal: signal)
        self.logger = logger
        self.calls = ServiceCalls(service: "catalog", logger: logger)
    }

    public func register(in router: inout RPCRouter) {
        typealias API = Stb_Catalog_V1_Catalog
        router.register(API.createModule, unary: { request, context in try await calls.run(context) { try await createModule(request, $0) } })
        router.register(API.getModule, unary: { request, context in try await calls.run(context) { try await getModule(request, $0) } })
        router.register(API.listModules, unary: { request, context in try await calls.run(context) { try await listModules(request, $0) } })
        router.register(API.updateModule, unary: { request, context in try await calls.run(context) { try await updateModule(request, $0) } })
        router.register(API.deleteModule, unary: { request, context in try await calls.run(context) { try await deleteModule(request, $0) } })
        router.register(API.createGroup, unary: { request, context in try await calls.run(context) { try await createGroup(request, $0) } })
        router.register(API.getGroup, unary: { request, context in try await calls.run(context) { try await getGroup(request, $0) } })
        router.register(API.listGroups, unary: { request, context in try await calls.run(context) { try await listGroups(request, $0) } })
        router.register(API.updateGroup, unary: { request, context in try await calls.run(context) { try await updateGroup(request, $0) } })
        router.register(API.deleteGroup, unary: { request, context in try await calls.run(context) { try await deleteGroup(request, $0) } })
        router.register(API.createOption, unary: { request, context in try await calls.run(context) { try await createOption(request, $0) } })
        router.register(API.getOption, unary: { request, context in try await calls.run(context) { try await getOption(request, $0) } })
        router.register(API.listOptions, unary: { request, context in try await calls.run(context) { try await listOptions(request, $0) } })
        router.register(API.updateOption, unary: { request, context in try await calls.run(context) { try await updateOption(request, $0) } })
        router.register(API.deleteOption, unary: { request, context in try await calls.run(context) { try await deleteOption(request, $0) } })
        router.register(API.createState, unary: { request, context in try await calls.run(context) { try await createState(request, $0) } })
        router.register(API.getState, unary: { request, context in try await calls.run(context) { try await getState(request, $0) } })
        router.register(API.listStates, unary: { request, context in try await calls.run(context) { try await listStates(request, $0) } })
        router.register(API.updateState, unary: { request, context in try await calls.run(context) { try await updateState(request, $0) } })
        router.register(API.deleteState, unary: { request, context in try await calls.run(context) { try await deleteState(request, $0) } })
        router.register(API.createTransition, unary: { request, context in try await calls.run(context) { try await createTransition(request, $0) } })
        router.register(API.getTransition, unary: { request, context in try await calls.run(context) { try await getTransition(request, $0) } })
        router.register(API.listTransitions, unary: { request, context in try await calls.run(context) { try await listTransitions(request, $0) } })
        router.register(API.updateTransition, unary: { request, context in try await calls.run(context) { try await updateTransition(request, $0) } })
        router.register(API.deleteTransition, unary: { request, context in try await calls.run(context) { try await deleteTransition(request, $0) } })
        router.register(ConfigCache.getConfigEncoded, unary: { request, context in try await calls.run(context) { _ in try await cache.reply(to: request) } })
        router.register(API.importSeed, unary: { request, context in
            try await calls.run(context) { actor in try await SeedImporter(service: self).importSeed(request, actor: actor) }
        })
        router.register(API.watch, serverStreaming: { request, writer, context in
            try await calls.run(context) { _ in
                try await watch(after: request.after, feed: feed, reload: "reload with GetConfig and watch from its cursor", to: writer) { stored in
                    var event = try stored.payload.withUnsafeBytes { try Stb_Catalog_V1_ChangeEvent(serializedBytes: $0) }
                    event.cursor = stored.cursor.description
                    return event
                }
            }
        })
    }

    /// Runs `body` in a transaction whose changes are recorded (audit, events, revision).
    func change<R: Sendable>(actor: String, _ body: (PostgresTransaction, ChangeSet) async throws -> R) async throws -> R {
        let (result, revision) = try await pool.withTransaction(maxAttempts: 3) { transaction in
            let changes = ChangeSet(actor: actor)
            let result = try await body(transaction, changes)
            return (result, try await changes.write(in: transaction, outbox: outbox))
        }
        if let revision { cache.invalidate(revision: revision) }
        return result
    }

    // MARK: - Modules

    func createModule(_ request: Stb_Catalog_V1_CreateModuleRequest, _ actor: String) async throws -> Module {
        guard let input = request.module else { throw invalid("module: required") }
        var problems = Validation.key(input.key, at: "module.key") + Validation.name(input.name, at: "module.name")
            + Validation.text(input.description_p, limit: .description, at: "module.description")
        let (meta, metaProblems) = Validation.meta(input.metaJson, at: "module.meta_json")
        problems += metaProblems
        if !input.initialState.isEmpty {
            problems.append("module.initial_state: a new module has no states yet; add its states, then set initial_state")
        }
        try check(problems)
        return try await change(actor: actor) { transaction, changes in
            let rows = try await transaction.query(PostgresQuery(sql: """
                WITH m AS (INSERT INTO modules (key, name, description, active, meta)
                           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING RETURNING *)
                SELECT \(Columns.module) FROM m
                """, bindings: PostgresBindings(input.key, input.name, input.description_p, input.active, PostgresJSON(meta.canonicalText))))
            guard let row = rows.first else { throw RPCError(code: .alreadyExists, message: "module \(quoted(input.key)) already exists") }
            let module = try Columns.module(row)
            changes.created(.module, module.entityKey, after: module.json, state: module.catalogEntity)
            return module
        }
    }

    func getModule(_ ref: Stb_Catalog_V1_ModuleRef, _ actor: String) async throws -> Module {
        try await pool.withConnection { try await loadModule(ref, on: $0) }
    }

    func listModules(_ request: Stb_Catalog_V1_ListModulesRequest, _ actor: String) async throws -> Stb_Catalog_V1_ListModulesResponse {
        let (size, after) = try page(request.page)
        let rows = try await pool.query(PostgresQuery(sql: """
            SELECT \(Columns.module), (SELECT count(*) FROM modules) FROM modules m WHERE m.id > $1 ORDER BY m.id LIMIT $2
            """, bindings: PostgresBindings(after, Int64(size))))
        var response = Stb_Catalog_V1_ListModulesResponse()
        response.modules = try rows.map(Columns.module)
        response.page = try pageInfo(rows, size: size, lastID: response.modules.last?.id, totalColumn: 9)
        return response
    }

    func updateModule(_ request: Stb_Catalog_V1_UpdateModuleRequest, _ actor: String) async throws -> Module {
        guard let ref = request.ref else { throw invalid("ref: required") }
        let meta = try checkedUpdate(name: request.name, description: request.description_p, metaJson: request.metaJson)
        return try await change(actor: actor) { transaction, changes in
            let before = try await loadModule(ref, on: transaction.connection, forUpdate: true)
            var after = before
            if let name = request.name { after.name = name }
            if let description = request.description_p { after.description_p = description }
            if let active = request.active { after.active = active }
            if let meta { after.metaJson = meta.canonicalText }
            if let initialState = request.initialState {
                if !initialState.isEmpty {
                    let exists = try await transaction.query("""
                        SELECT 1 FROM states WHERE module_id = \(before.id) AND name = \(initialState)
                        """)
                    if exists.isEmpty {
                        throw invalid("initial_state: state \(quoted(initialState)) does not exist in module \(quoted(before.key))")
                    }
                }
                after.initialState = initialState
            }
            guard after.json != before.json else { return before }
            let rows = try await transaction.query(PostgresQuery(sql: """
                WITH m AS (UPDATE modules SET name = $2, description = $3, active = $4, initial_state = $5, meta = $6,
                           updated_at = now() WHERE id = $1 RETURNING *)
                SELECT \(Columns.module) FROM m
                """, bindings: PostgresBindings(before.id, after.name, after.description_p, after.active, after.initialState, PostgresJSON(Module.metaValue(after.metaJson).canonicalText))))
            let updated = try Columns.module(rows[0])
            changes.updated(.module, updated.entityKey, before: before.json, after: updated.json, state: updated.catalogEntity)
            return updated
        }
    }

    /// Deletes a module and everything in it, each with its own event.
    func deleteModule(_ ref: Stb_Catalog_V1_ModuleRef, _ actor: String) async throws -> Stb_Common_V1_Empty {
        try await change(actor: actor) { transaction, changes in
            let module = try await loadModule(ref, on: transaction.connection, forUpdate: true)
            let connection = transaction.connection
            for transition in try await connection.query(PostgresQuery(sql: "SELECT \(Columns.transition) FROM transitions t JOIN modules m ON m.id = t.module_id WHERE t.module_id = $1 ORDER BY t.id", bindings: PostgresBindings(module.id))).map(Columns.transition) {
                _ = try await connection.query("DELETE FROM transitions WHERE id = \(transition.id)")
                changes.deleted(.transition, transition.entityKey, before: transition.json, state: transition.catalogEntity)
            }
            for state in try await connection.query(PostgresQuery(sql: "SELECT \(Columns.state) FROM states s JOIN modules m ON m.id = s.module_id WHERE s.module_id = $1 ORDER BY s.id", bindings: PostgresBindings(module.id))).map(Columns.state) {
                _ = try await connection.query("DELETE FROM states WHERE id = \(state.id)")
                changes.deleted(.state, state.entityKey, before: state.json, state: state.catalogEntity)
            }
            for option in try await connection.query(PostgresQuery(sql: "SELECT \(Columns.option) FROM options o JOIN groups g ON g.id = o.group_id JOIN modules m ON m.id = g.module_id WHERE g.module_id = $1 ORDER BY o.id", bindings: PostgresBindings(module.id))).map(Columns.option) {
                _ = try await connection.query("DELETE FROM options WHERE id = \(option.id)")
                changes.deleted(.option, option.entityKey, before: option.json, state: option.catalogEntity)
            }
            for group in try await connection.query(PostgresQuery(sql: "SELECT \(Columns.group) FROM groups g JOIN modules m ON m.id = g.module_id WHERE g.module_id = $1 ORDER BY g.id", bindings: PostgresBindings(module.id))).map(Columns.group) {
                _ = try await connection.query("DELETE FROM groups WHERE id = \(group.id)")
                changes.deleted(.group, group.entityKey, before: group.json, state: group.catalogEntity)
            }
            _ = try await connection.query("DELETE FROM modules WHERE id = \(module.id)")
            changes.deleted(.module, module.entityKey, before: module.json, state: module.catalogEntity)
            return Stb_Common_V1_Empty()
        }
    }

    // MARK: - Groups

    func createGroup(_ request: Stb_Catalog_V1_CreateGroupRequest, _ actor: String) async throws -> Group {
        guard let input = request.group else { throw invalid("group: required") }
        var problems = Validation.key(input.key, at: "group.key") + Validation.name(input.name, at: "group.name")
            + Validation.text(input.description_p, limit: .description, at: "group.description")
        let (meta, metaProblems) = Validation.meta(input.metaJson, at: "group.meta_json")
        problems += metaProblems
        if input.moduleKey.isEmpty { problems.append("group.module_key: required") }
        try check(problems)
        return try await change(actor: actor) { transaction, changes in
            let module = try await loadModule(moduleRef(input.moduleKey), on: transaction.connection)
            let rows = try await transaction.query(PostgresQuery(sql: """
                WITH g AS (INSERT INTO groups (module_id, key, name, description, position, meta)
                           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (module_id, key) DO NOTHING RETURNING *)
                SELECT \(Columns.group) FROM g JOIN modules m ON m.id = g.module_id
                """, bindings: PostgresBindings(module.id, input.key, input.name, input.description_p, input.position, PostgresJSON(meta.canonicalText))))
            guard let row = rows.first else {
                throw RPCError(code: .alreadyExists, message: "group \(quoted(input.key)) already exists in module \(quoted(module.key))")
            }
            let group = try Columns.group(row)
            changes.created(.group, group.entityKey, after: group.json, state: group.catalogEntity)
            return group
        }
    }

    func getGroup(_ ref: Stb_Catalog_V1_GroupRef, _ actor: String) async throws -> Group {
        try await pool.withConnection { try await loadGroup(ref, on: $0) }
    }

    func listGroups(_ request: Stb_Catalog_V1_ListGroupsRequest, _ actor: String) async throws -> Stb_Catalog_V1_ListGroupsResponse {
        let (size, after) = try page(request.page)
        let rows = try await pool.query(PostgresQuery(sql: """
            SELECT \(Columns.group),
                   (SELECT count(*) FROM groups g2 JOIN modules m2 ON m2.id = g2.module_id WHERE $3 = '' OR m2.key = $3)
            FROM groups g JOIN modules m ON m.id = g.module_id
            WHERE g.id > $1 AND ($3 = '' OR m.key = $3) ORDER BY g.id LIMIT $2
            """, bindings: PostgresBindings(after, Int64(size), request.moduleKey)))
        var response = Stb_Catalog_V1_ListGroupsResponse()
        response.groups = try rows.map(Columns.group)
        response.page = try pageInfo(rows, size: size, lastID: response.groups.last?.id, totalColumn: 9)
        return response
    }

    func updateGroup(_ request: Stb_Catalog_V1_UpdateGroupRequest, _ actor: String) async throws -> Group {
        guard let ref = request.ref else { throw invalid("ref: required") }
        let meta = try checkedUpdate(name: request.name, description: request.description_p, metaJson: request.metaJson)
        return try await change(actor: actor) { transaction, changes in
            let before = try await loadGroup(ref, on: transaction.connection, forUpdate: true)
            var after = before
            if let name = request.name { after.name = name }
            if let description = request.description_p { after.description_p = description }
            if let position = request.position { after.position = position }
            if let meta { after.metaJson = meta.canonicalText }
            guard after.json != before.json else { return before }
            let rows = try await transaction.query(PostgresQuery(sql: """
                WITH g AS (UPDATE groups SET name = $2, description = $3, position = $4, meta = $5, updated_at = now()
                           WHERE id = $1 RETURNING *)
                SELECT \(Columns.group) FROM g JOIN modules m ON m.id = g.module_id
                """, bindings: PostgresBindings(before.id, after.name, after.description_p, after.position, PostgresJSON(Module.metaValue(after.metaJson).canonicalText))))
            let updated = try Columns.group(rows[0])
            changes.updated(.group, updated.entityKey, before: before.json, after: updated.json, state: updated.catalogEntity)
            return updated
        }
    }

    /// Deletes a group and its options, each with its own event.
    func deleteGroup(_ ref: Stb_Catalog_V1_GroupRef, _ actor: String) async throws -> Stb_Common_V1_Empty {
        try await change(actor: actor) { transaction, changes in
            let group = try await loadGroup(ref, on: transaction.connection, forUpdate: true)
            for option in try await transaction.query(PostgresQuery(sql: "SELECT \(Columns.option) FROM options o JOIN groups g ON g.id = o.group_id JOIN modules m ON m.id = g.module_id WHERE o.group_id = $1 ORDER BY o.id", bindings: PostgresBindings(group.id))).map(Columns.option) {
                _ = try await transaction.query("DELETE FROM options WHERE id = \(option.id)")
                changes.deleted(.option, option.entityKey, before: option.json, state: option.catalogEntity)
            }
            _ = try await transaction.query("DELETE FROM groups WHERE id = \(group.id)")
            changes.deleted(.group, group.entityKey, before: group.json, state: group.catalogEntity)
            return Stb_Common_V1_Empty()
        }
    }

    // MARK: - Options

    func createOption(_ request: Stb_Catalog_V1_CreateOptionRequest, _ actor: String) async throws -> Option {
        guard let input = request.option else { throw invalid("option: required") }
        var problems = Validation.key(input.key, at: "option.key") + Validation.name(input.name, at: "option.name")
            + Validation.text(input.description_p, limit: .description, at: "option.description")
        let (meta, metaProblems) = Validation.meta(input.metaJson, at: "option.meta_json")
        problems += metaProblems
        if input.moduleKey.isEmpty { problems.append("option.module_key: required") }
        if input.groupKey.isEmpty { problems.append("option.group_key: required") }
        var defaultValue = input.defaultValue
        if metaProblems.isEmpty {
            let checked = Validation.option(
                type: input.type, defaultValue: input.defaultValue, meta: meta,
                typePath: "option.type", defaultPath: "option.default_value", metaPath: "option.meta_json")
            defaultValue = checked.defaultValue
            problems += checked.problems
        }
        try check(problems)
        return try await change(actor: actor) { transaction, changes in
            var groupRef = Stb_Catalog_V1_GroupRef()
            groupRef.moduleKey = input.moduleKey
            groupRef.key = input.groupKey
            let group = try await loadGroup(groupRef, on: transaction.connection)
            let rows = try await transaction.query(PostgresQuery(sql: """
                WITH o AS (INSERT INTO options (group_id, key, name, description, type, default_value, editable, included_by_default, meta)
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (key) DO NOTHING RETURNING *)
                SELECT \(Columns.option) FROM o JOIN groups g ON g.id = o.group_id JOIN modules m ON m.id = g.module_id
                """, bindings: PostgresBindings(group.id, input.key, input.name, input.description_p, Validation.typeName(input.type)!,
                                     defaultValue, input.editable, input.includedByDefault, PostgresJSON(meta.canonicalText))))
            guard let row = rows.first else { throw RPCError(code: .alreadyExists, message: "option \(quoted(input.key)) already exists") }
            let option = try Columns.option(row)
            changes.created(.option, option.entityKey, after: option.json, state: option.catalogEntity)
            return option
        }
    }

    func getOption(_ ref: Stb_Catalog_V1_OptionRef, _ actor: String) async throws -> Option {
        try await pool.withConnection { try await loadOption(ref, on: $0) }
    }

    func listOptions(_ request: Stb_Catalog_V1_ListOptionsRequest, _ actor: String) async throws -> Stb_Catalog_V1_ListOptionsResponse {
        let (size, after) = try page(request.page)
        let rows = try await pool.query(PostgresQuery(sql: """
            SELECT \(Columns.option),
                   (SELECT count(*) FROM options o2 JOIN groups g2 ON g2.id = o2.group_id JOIN modules m2 ON m2.id = g2.module_id
                    WHERE ($3 = '' OR m2.key = $3) AND ($4 = '' OR g2.key = $4))
            FROM options o JOIN groups g ON g.id = o.group_id JOIN modules m ON m.id = g.module_id
            WHERE o.id > $1 AND ($3 = '' OR m.key = $3) AND ($4 = '' OR g.key = $4) ORDER BY o.id LIMIT $2
            """, bindings: PostgresBindings(after, Int64(size), request.moduleKey, request.groupKey)))
        var response = Stb_Catalog_V1_ListOptionsResponse()
        response.options = try rows.map(Columns.option)
        response.page = try pageInfo(rows, size: size, lastID: response.options.last?.id, totalColumn: 13)
        return response
    }

    func updateOption(_ request: Stb_Catalog_V1_UpdateOptionRequest, _ actor: String) async throws -> Option {
        guard let ref = request.ref else { throw invalid("ref: required") }
        let moveProblem = (request.moduleKey == nil) != (request.groupKey == nil) ? ["module_key, group_key: give both to move the option"] : []
        _ = try checkedUpdate(name: request.name, description: request.description_p, metaJson: request.metaJson, more: moveProblem)
        return try await change(actor: actor) { transaction, changes in
            let before = try await loadOption(ref, on: transaction.connection, forUpdate: true)
            var after = before
            if let name = request.name { after.name = name }
            if let description = request.description_p { after.description_p = description }
            if let type = request.type { after.type = type }
            if let value = request.defaultValue { after.defaultValue = value }
            if let editable = request.editable { after.editable = editable }
            if let included = request.includedByDefault { after.includedByDefault = included }
            if let meta = request.metaJson { after.metaJson = Module.metaValue(meta).canonicalText }
            var groupID: Int64?
            if let moduleKey = request.moduleKey, let groupKey = request.groupKey {
                var groupRef = Stb_Catalog_V1_GroupRef()
                groupRef.moduleKey = moduleKey
                groupRef.key = groupKey
                groupID = try await loadGroup(groupRef, on: transaction.connection).id
                after.moduleKey = moduleKey
                after.groupKey = groupKey
            }
            // The result as a whole must be valid: a new type with the old default is not.
            let checked = Validation.option(
                type: after.type, defaultValue: after.defaultValue, meta: Module.metaValue(after.metaJson),
                typePath: "type", defaultPath: "default_value", metaPath: "meta_json")
            try check(checked.problems)
            after.defaultValue = checked.defaultValue
            guard after.json != before.json else { return before }
            let rows = try await transaction.query(PostgresQuery(sql: """
                WITH o AS (UPDATE options SET name = $2, description = $3, type = $4, default_value = $5, editable = $6,
                           included_by_default = $7, meta = $8, group_id = coalesce($9, group_id), updated_at = now()
                           WHERE id = $1 RETURNING *)
                SELECT \(Columns.option) FROM o JOIN groups g ON g.id = o.group_id JOIN modules m ON m.id = g.module_id
                """, bindings: PostgresBindings(before.id, after.name, after.description_p, Validation.typeName(after.type)!, after.defaultValue,
                                     after.editable, after.includedByDefault, PostgresJSON(Module.metaValue(after.metaJson).canonicalText), groupID)))
            let updated = try Columns.option(rows[0])
            changes.updated(.option, updated.entityKey, before: before.json, after: updated.json, state: updated.catalogEntity)
            return updated
        }
    }

    func deleteOption(_ ref: Stb_Catalog_V1_OptionRef, _ actor: String) async throws -> Stb_Common_V1_Empty {
        try await change(actor: actor) { transaction, changes in
            let option = try await loadOption(ref, on: transaction.connection, forUpdate: true)
            _ = try await transaction.query("DELETE FROM options WHERE id = \(option.id)")
            changes.deleted(.option, option.entityKey, before: option.json, state: option.catalogEntity)
            return Stb_Common_V1_Empty()
        }
    }

    // MARK: - States

    func createState(_ request: Stb_Catalog_V1_CreateStateRequest, _ actor: String) async throws -> State {
        guard let input = request.state else { throw invalid("state: required") }
        var problems = Validation.key(input.name, at: "state.name")
        let (meta, metaProblems) = Validation.meta(input.metaJson, at: "state.meta_json")
        problems += metaProblems
        if input.moduleKey.isEmpty { problems.append("state.module_key: required") }
        try check(problems)
        return try await change(actor: actor) { transaction, changes in
            let module = try await loadModule(moduleRef(input.moduleKey), on: transaction.connection)
            let rows = try await transaction.query(PostgresQuery(sql: """
                WITH s AS (INSERT INTO states (module_id, name, meta) VALUES ($1, $2, $3)
                           ON CONFLICT (module_id, name) DO NOTHING RETURNING *)
                SELECT \(Columns.state) FROM s JOIN modules m ON m.id = s.module_id
                """, bindings: PostgresBindings(module.id, input.name, PostgresJSON(meta.canonicalText))))
            guard let row = rows.first else {
                throw RPCError(code: .alreadyExists, message: "state \(quoted(input.name)) already exists in module \(quoted(module.key))")
            }
            let state = try Columns.state(row)
            changes.created(.state, state.entityKey, after: state.json, state: state.catalogEntity)
            return state
        }
    }

    func getState(_ ref: Stb_Catalog_V1_StateRef, _ actor: String) async throws -> State {
        try await pool.withConnection { try await loadState(ref, on: $0) }
    }

    func listStates(_ request: Stb_Catalog_V1_ListStatesRequest, _ actor: String) async throws -> Stb_Catalog_V1_ListStatesResponse {
        let rows = try await pool.query(PostgresQuery(sql: """
            SELECT \(Columns.state) FROM states s JOIN modules m ON m.id = s.module_id
            WHERE $1 = '' OR m.key = $1 ORDER BY m.key, s.id
            """, bindings: PostgresBindings(request.moduleKey)))
        var response = Stb_Catalog_V1_ListStatesResponse()
        response.states = try rows.map(Columns.state)
        return response
    }

    func updateState(_ request: Stb_Catalog_V1_UpdateStateRequest, _ actor: String) async throws -> State {
        guard let ref = request.ref else { throw invalid("ref: required") }
        let meta = try checkedUpdate(name: nil, metaJson: request.metaJson)
        return try await change(actor: actor) { transaction, changes in
            let before = try await loadState(ref, on: transaction.connection, forUpdate: true)
            guard let meta, meta != Module.metaValue(before.metaJson) else { return before }
            let rows = try await transaction.query(PostgresQuery(sql: """
                WITH s AS (UPDATE states SET meta = $2 WHERE id = $1 RETURNING *)
                SELECT \(Columns.state) FROM s JOIN modules m ON m.id = s.module_id
                """, bindings: PostgresBindings(before.id, PostgresJSON(meta.canonicalText))))
            let updated = try Columns.state(rows[0])
            changes.updated(.state, updated.entityKey, before: before.json, after: updated.json, state: updated.catalogEntity)
            return updated
        }
    }

    /// Refused while a transition or the module's initial state refers to the state.
    func deleteState(_ ref: Stb_Catalog_V1_StateRef, _ actor: String) async throws -> Stb_Common_V1_Empty {
        try await change(actor: actor) { transaction, changes in
            let state = try await loadState(ref, on: transaction.connection, forUpdate: true)
            let users = try await transaction.query("""
                SELECT count(*) FROM transitions t JOIN states s ON s.module_id = t.module_id AND s.id = \(state.id)
                WHERE t.from_state = s.name OR t.to_state = s.name
                """)
            let count = try users[0].decode(0, as: Int64.self)
            if count > 0 {
                throw RPCError(code: .failedPrecondition, message: "state \(quoted(state.entityKey)) is used by \(count) transition(s); delete them first")
            }
            let initial = try await transaction.query("""
                SELECT 1 FROM modules m JOIN states s ON s.module_id = m.id AND s.id = \(state.id) WHERE m.initial_state = s.name
                """)
            if !initial.isEmpty {
                throw RPCError(code: .failedPrecondition, message: "state \(quoted(state.entityKey)) is its module's initial state; change that first")
            }
            _ = try await transaction.query("DELETE FROM states WHERE id = \(state.id)")
            changes.deleted(.state, state.entityKey, before: state.json, state: state.catalogEntity)
            return Stb_Common_V1_Empty()
        }
    }

    // MARK: - Transitions

    func createTransition(_ request: Stb_Catalog_V1_CreateTransitionRequest, _ actor: String) async throws -> Transition {
        guard let input = request.transition else { throw invalid("transition: required") }
        var problems = Validation.event(input.event, at: "transition.event") + Validation.condition(input.conditionJson, at: "transition.condition_json")
        let (meta, metaProblems) = Validation.meta(input.metaJson, at: "transition.meta_json")
        problems += metaProblems
        if input.moduleKey.isEmpty { problems.append("transition.module_key: required") }
        try check(problems)
        return try await change(actor: actor) { transaction, changes in
            let module = try await loadModule(moduleRef(input.moduleKey), on: transaction.connection)
            try await requireStates([("transition.from_state", input.fromState), ("transition.to_state", input.toState)], in: module, transaction)
            let condition = input.conditionJson.isEmpty ? nil : PostgresJSON(try JSONValue.parse(input.conditionJson).canonicalText)
            let rows = try await transaction.query(PostgresQuery(sql: """
                WITH t AS (INSERT INTO transitions (module_id, from_state, event, to_state, condition, meta)
                           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (module_id, from_state, event) DO NOTHING RETURNING *)
                SELECT \(Columns.transition) FROM t JOIN modules m ON m.id = t.module_id
                """, bindings: PostgresBindings(module.id, input.fromState, input.event, input.toState, condition, PostgresJSON(meta.canonicalText))))
            guard let row = rows.first else {
                throw RPCError(code: .alreadyExists, message: "transition \(quoted("\(module.key)/\(input.fromState)/\(input.event)")) already exists")
            }
            let transition = try Columns.transition(row)
            changes.created(.transition, transition.entityKey, after: transition.json, state: transition.catalogEntity)
            return transition
        }
    }

    func getTransition(_ ref: Stb_Catalog_V1_TransitionRef, _ actor: String) async throws -> Transition {
        try await pool.withConnection { try await loadTransition(ref, on: $0) }
    }

    func listTransitions(_ request: Stb_Catalog_V1_ListTransitionsRequest, _ actor: String) async throws -> Stb_Catalog_V1_ListTransitionsResponse {
        let rows = try await pool.query(PostgresQuery(sql: """
            SELECT \(Columns.transition) FROM transitions t JOIN modules m ON m.id = t.module_id
            WHERE $1 = '' OR m.key = $1 ORDER BY m.key, t.id
            """, bindings: PostgresBindings(request.moduleKey)))
        var response = Stb_Catalog_V1_ListTransitionsResponse()
        response.transitions = try rows.map(Columns.transition)
        return response
    }

    func updateTransition(_ request: Stb_Catalog_V1_UpdateTransitionRequest, _ actor: String) async throws -> Transition {
        guard let ref = request.ref else { throw invalid("ref: required") }
        var problems: [String] = []
        if let condition = request.conditionJson { problems += Validation.condition(condition, at: "condition_json") }
        if let meta = request.metaJson { problems += Validation.meta(meta, at: "meta_json").1 }
        try check(problems)
        return try await change(actor: actor) { transaction, changes in
            let before = try await loadTransition(ref, on: transaction.connection, forUpdate: true)
            var after = before
            if let toState = request.toState {
                let module = try await loadModule(moduleRef(before.moduleKey), on: transaction.connection)
                try await requireStates([("to_state", toState)], in: module, transaction)
                after.toState = toState
            }
            if let condition = request.conditionJson {
                after.conditionJson = condition.isEmpty ? "" : try JSONValue.parse(condition).canonicalText
            }
            if let meta = request.metaJson { after.metaJson = Module.metaValue(meta).canonicalText }
            guard after.json != before.json else { return before }
            let rows = try await transaction.query(PostgresQuery(sql: """
                WITH t AS (UPDATE transitions SET to_state = $2, condition = $3, meta = $4, updated_at = now() WHERE id = $1 RETURNING *)
                SELECT \(Columns.transition) FROM t JOIN modules m ON m.id = t.module_id
                """, bindings: PostgresBindings(before.id, after.toState, after.conditionJson.isEmpty ? nil : PostgresJSON(after.conditionJson),
                                     PostgresJSON(Module.metaValue(after.metaJson).canonicalText))))
            let updated = try Columns.transition(rows[0])
            changes.updated(.transition, updated.entityKey, before: before.json, after: updated.json, state: updated.catalogEntity)
            return updated
        }
    }

    func deleteTransition(_ ref: Stb_Catalog_V1_TransitionRef, _ actor: String) async throws -> Stb_Common_V1_Empty {
        try await change(actor: actor) { transaction, changes in
            let transition = try await loadTransition(ref, on: transaction.connection, forUpdate: true)
            _ = try await transaction.query("DELETE FROM transitions WHERE id = \(transition.id)")
            changes.deleted(.transition, transition.entityKey, before: transition.json, state: transition.catalogEntity)
            return Stb_Common_V1_Empty()
        }
    }

    /// Checks the fields most partial updates share; returns the parsed meta when given.
    private func checkedUpdate(name: String?, description: String? = nil, metaJson: String?, more: [String] = []) throws -> JSONValue? {
        var problems = more
        if let name { problems += Validation.name(name, at: "name") }
        if let description { problems += Validation.text(description, limit: .description, at: "description") }
        var meta: JSONValue?
        if let metaJson {
            let (value, metaProblems) = Validation.meta(metaJson, at: "meta_json")
            meta = value
            problems += metaProblems
        }
        try check(problems)
        return meta
    }

    private func requireStates(_ names: [(String, String)], in module: Module, _ transaction: PostgresTransaction) async throws {
        var problems: [String] = []
        for (field, name) in names {
            let rows = try await transaction.query("SELECT 1 FROM states WHERE module_id = \(module.id) AND name = \(name)")
            if rows.isEmpty { problems.append("\(field): state \(quoted(name)) does not exist in module \(quoted(module.key))") }
        }
        try check(problems)
    }
}

// MARK: - Loading by reference

extension CatalogService {
    func moduleRef(_ key: String) -> Stb_Catalog_V1_ModuleRef {
        var ref = Stb_Catalog_V1_ModuleRef()
        ref.ref = .key(key)
        return ref
    }

    func loadModule(_ ref: Stb_Catalog_V1_ModuleRef, on connection: PostgresConnection, forUpdate: Bool = false) async throws -> Module {
        let lock = forUpdate ? " FOR UPDATE" : ""
        let rows: PostgresRows
        let name: String
        switch ref.ref {
        case .id(let id):
            rows = try await connection.query(PostgresQuery(sql: "SELECT \(Columns.module) FROM modules m WHERE m.id = $1\(lock)", bindings: PostgresBindings(id)))
            name = "id \(id)"
        case .key(let key):
            rows = try await connection.query(PostgresQuery(sql: "SELECT \(Columns.module) FROM modules m WHERE m.key = $1\(lock)", bindings: PostgresBindings(key)))
            name = quoted(key)
        case nil:
            throw invalid("ref: give an id or a key")
        }
        guard let row = rows.first else { throw RPCError(code: .notFound, message: "module \(name) not found") }
        return try Columns.module(row)
    }

    func loadGroup(_ ref: Stb_Catalog_V1_GroupRef, on connection: PostgresConnection, forUpdate: Bool = false) async throws -> Group {
        let lock = forUpdate ? " FOR UPDATE OF g" : ""
        let rows: PostgresRows
        let name: String
        if ref.id != 0 {
            rows = try await connection.query(PostgresQuery(sql: "SELECT \(Columns.group) FROM groups g JOIN modules m ON m.id = g.module_id WHERE g.id = $1\(lock)", bindings: PostgresBindings(ref.id)))
            name = "id \(ref.id)"
        } else {
            guard !ref.moduleKey.isEmpty, !ref.key.isEmpty else { throw invalid("ref: give an id, or module_key and key") }
            rows = try await connection.query(PostgresQuery(sql: "SELECT \(Columns.group) FROM groups g JOIN modules m ON m.id = g.module_id WHERE m.key = $1 AND g.key = $2\(lock)", bindings: PostgresBindings(ref.moduleKey, ref.key)))
            name = quoted("\(ref.moduleKey)/\(ref.key)")
        }
        guard let row = rows.first else { throw RPCError(code: .notFound, message: "group \(name) not found") }
        return try Columns.group(row)
    }

    func loadOption(_ ref: Stb_Catalog_V1_OptionRef, on connection: PostgresConnection, forUpdate: Bool = false) async throws -> Option {
        let lock = forUpdate ? " FOR UPDATE OF o" : ""
        let base = "SELECT \(Columns.option) FROM options o JOIN groups g ON g.id = o.group_id JOIN modules m ON m.id = g.module_id"
        let rows: PostgresRows
        let name: String
        switch ref.ref {
        case .id(let id):
            rows = try await connection.query(PostgresQuery(sql: "\(base) WHERE o.id = $1\(lock)", bindings: PostgresBindings(id)))
            name = "id \(id)"
        case .key(let key):
            rows = try await connection.query(PostgresQuery(sql: "\(base) WHERE o.key = $1\(lock)", bindings: PostgresBindings(key)))
            name = quoted(key)
        case nil:
            throw invalid("ref: give an id or a key")
        }
        guard let row = rows.first else { throw RPCError(code: .notFound, message: "option \(name) not found") }
        return try Columns.option(row)
    }

    func loadState(_ ref: Stb_Catalog_V1_StateRef, on connection: PostgresConnection, forUpdate: Bool = false) async throws -> State {
        let lock = forUpdate ? " FOR UPDATE OF s" : ""
        let base = "SELECT \(Columns.state) FROM states s JOIN modules m ON m.id = s.module_id"
        let rows: PostgresRows
        let name: String
        if ref.id != 0 {
            rows = try await connection.query(PostgresQuery(sql: "\(base) WHERE s.id = $1\(lock)", bindings: PostgresBindings(ref.id)))
            name = "id \(ref.id)"
        } else {
            guard !ref.moduleKey.isEmpty, !ref.name.isEmpty else { throw invalid("ref: give an id, or module_key and name") }
            rows = try await connection.query(PostgresQuery(sql: "\(base) WHERE m.key = $1 AND s.name = $2\(lock)", bindings: PostgresBindings(ref.moduleKey, ref.name)))
            name = quoted("\(ref.moduleKey)/\(ref.name)")
        }
        guard let row = rows.first else { throw RPCError(code: .notFound, message: "state \(name) not found") }
        return try Columns.state(row)
    }

    func loadTransition(_ ref: Stb_Catalog_V1_TransitionRef, on connection: PostgresConnection, forUpdate: Bool = false) async throws -> Transition {
        let lock = forUpdate ? " FOR UPDATE OF t" : ""
        let base = "SELECT \(Columns.transition) FROM transitions t JOIN modules m ON m.id = t.module_id"
        let rows: PostgresRows
        let name: String
        if ref.id != 0 {
            rows = try await connection.query(PostgresQuery(sql: "\(base) WHERE t.id = $1\(lock)", bindings: PostgresBindings(ref.id)))
            name = "id \(ref.id)"
        } else {
            guard !ref.moduleKey.isEmpty, !ref.fromState.isEmpty, !ref.event.isEmpty else {
                throw invalid("ref: give an id, or module_key, from_state and event")
            }
            rows = try await connection.query(PostgresQuery(sql: "\(base) WHERE m.key = $1 AND t.from_state = $2 AND t.event = $3\(lock)", bindings: PostgresBindings(ref.moduleKey, ref.fromState, ref.event)))
            name = quoted("\(ref.moduleKey)/\(ref.fromState)/\(ref.event)")
        }
        guard let row = rows.first else { throw RPCError(code: .notFound, message: "transition \(name) not found") }
        return try Columns.transition(row)
    }
}

// MARK: - Small helpers

func invalid(_ problem: String) -> RPCError {
    RPCError(code: .invalidArgument, message: problem)
}

/// Page size (default 100, at most 1000) and the id to continue after. A token is an id
/// as this service writes it (`pageInfo`): other spellings of a number are not tokens.
func page(_ request: Stb_Common_V1_PageRequest?) throws -> (Int, Int64) {
    let size = Int(request?.pageSize ?? 0)  // a UInt32: always fits
    let token = request?.pageToken ?? ""
    guard let after = token.isEmpty ? 0 : Int64(token), after >= 0, token.isEmpty || String(after) == token else {
        throw invalid("page.page_token: not a token this service issued")
    }
    return (size == 0 ? 100 : min(size, 1000), after)
}

func pageInfo(_ rows: PostgresRows, size: Int, lastID: Int64?, totalColumn: Int) throws -> Stb_Common_V1_PageInfo {
    var info = Stb_Common_V1_PageInfo()
    if let first = rows.first { info.total = UInt64(try first.decode(totalColumn, as: Int64.self)) }
    if rows.count == size, let lastID { info.nextPageToken = String(lastID) }
    return info
}
