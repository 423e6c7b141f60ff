import STBJSON
import STBMessages
import STBOptionValues
import STBPostgres
import STBRPC
import STBService

extension CatalogService {
    public func createState(_ request: Stb_Catalog_V1_CreateStateRequest, context: ServerContext) async throws -> Stb_Catalog_V1_State {
        guard let input = request.state else { throw invalid("state: required") }
        var problems = Validation.key(input.name, at: "state.name")
        let (meta, metaProblems) = Validation.meta(input.metaJson, at: "state.meta_json")
        problems += metaProblems
        if input.moduleKey.isEmpty { problems.append("state.module_key: required") }
        try check(problems)
        return try await change(actor: context.caller) { transaction, changes in
            let module = try await loadModule(moduleRef(input.moduleKey), on: transaction.connection)
            return try await created(State.self, """
                WITH s AS (INSERT INTO states (module_id, name, meta) VALUES (\(module.id), \(input.name), \(PostgresJSON(meta.canonicalText)))
                           ON CONFLICT (module_id, name) DO NOTHING RETURNING *)
                \(unescaped: State.selectWritten)
                """, in: transaction, changes, duplicate: "state \(quoted(input.name)) already exists in module \(quoted(module.key))")
        }
    }

    public func getState(_ ref: Stb_Catalog_V1_StateRef, context: ServerContext) async throws -> Stb_Catalog_V1_State {
        try await pool.withConnection { try await loadState(ref, on: $0) }
    }

    /// Every state (of one module, or all), by module; not paged (a module has a few).
    public func listStates(_ request: Stb_Catalog_V1_ListStatesRequest, context: ServerContext) async throws -> Stb_Catalog_V1_ListStatesResponse {
        Stb_Catalog_V1_ListStatesResponse(states: try await all(State.self, inModule: request.moduleKey))
    }

    public func updateState(_ request: Stb_Catalog_V1_UpdateStateRequest, context: ServerContext) async throws -> Stb_Catalog_V1_State {
        let meta = try checkedUpdate(name: nil, metaJson: request.metaJson)
        return try await update(context, request.ref, load: loadState) { after, _ in
            if let meta { after.metaJson = meta.canonicalText }
        } statement: { after in
            """
            WITH s AS (UPDATE states SET meta = \(PostgresJSON(Module.metaValue(after.metaJson).canonicalText)) WHERE id = \(after.id) RETURNING *)
            \(unescaped: State.selectWritten)
            """
        }
    }

    /// Refused while a transition or the module's initial state refers to the state.
    public func deleteState(_ ref: Stb_Catalog_V1_StateRef, context: ServerContext) async throws -> Stb_Common_V1_Empty {
        try await change(actor: context.caller) { transaction, changes in
            let state = try await loadState(ref, on: transaction.connection, forUpdate: true)
            let users = try await transaction.query("""
                SELECT count(*) FROM transitions t JOIN states s ON s.module_id = t.module_id AND s.id = \(state.id)
                WHERE t.from_state = s.name OR t.to_state = s.name
                """)
            let count = try users[0].decode(0, as: Int64.self)
            if count > 0 {
                throw RPCError(
                    code: .failedPrecondition, message: "state \(quoted(state.entityKey)) is used by \(count) transition(s); delete them first",
                    details: [.preconditionFailure(type: "STATE_IN_USE", subject: state.entityKey, description: "used by \(count) transition(s)")])
            }
            let initial = try await transaction.query("""
                SELECT 1 FROM modules m JOIN states s ON s.module_id = m.id AND s.id = \(state.id) WHERE m.initial_state = s.name
                """)
            if !initial.isEmpty {
                throw RPCError(
                    code: .failedPrecondition, message: "state \(quoted(state.entityKey)) is its module's initial state; change that first",
                    details: [.preconditionFailure(type: "INITIAL_STATE", subject: state.entityKey, description: "the module's initial state")])
            }
            try await delete(state, in: transaction, changes)
            return Stb_Common_V1_Empty()
        }
    }

    func loadState(_ ref: Stb_Catalog_V1_StateRef, on connection: PostgresConnection, forUpdate: Bool = false) async throws -> State {
        try await load(State.self, id: ref.id, moduleKey: ref.moduleKey, names: [("s.name", ref.name)], forUpdate: forUpdate, on: connection)
    }

    /// Each named state must exist in `module` (`names`: field path and state name).
    func requireStates(_ names: [(String, String)], in module: Module, _ transaction: PostgresTransaction) async throws {
        var problems: [String] = []
        for (field, name) in names {
            let rows = try await transaction.query("SELECT 1 FROM states WHERE module_id = \(module.id) AND name = \(name)")
            if rows.isEmpty { problems.append("\(field): state \(quoted(name)) does not exist in module \(quoted(module.key))") }
        }
        try check(problems)
    }
}
