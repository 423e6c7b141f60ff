import STBJSON
import STBMessages
import STBOptionValues
import STBPostgres
import STBRPC
import STBService

extension CatalogService {
    public func createTransition(_ request: Stb_Catalog_V1_CreateTransitionRequest, context: ServerContext) async throws -> Stb_Catalog_V1_Transition {
        guard let input = request.transition else { throw invalid("transition: required") }
        var problems = Validation.event(input.event, at: "transition.event") + Validation.condition(input.conditionJson, at: "transition.condition_json")
        let (meta, metaProblems) = Validation.meta(input.metaJson, at: "transition.meta_json")
        problems += metaProblems
        if input.moduleKey.isEmpty { problems.append("transition.module_key: required") }
        try check(problems)
        return try await change(actor: context.caller) { transaction, changes in
            let module = try await loadModule(moduleRef(input.moduleKey), on: transaction.connection)
            try await requireStates([("transition.from_state", input.fromState), ("transition.to_state", input.toState)], in: module, transaction)
            let condition = input.conditionJson.isEmpty ? nil : PostgresJSON(try JSONValue.parse(input.conditionJson).canonicalText)
            return try await created(Transition.self, """
                WITH t AS (INSERT INTO transitions (module_id, from_state, event, to_state, condition, meta)
                           VALUES (\(module.id), \(input.fromState), \(input.event), \(input.toState), \(condition), \(PostgresJSON(meta.canonicalText)))
                           ON CONFLICT (module_id, from_state, event) DO NOTHING RETURNING *)
                \(unescaped: Transition.selectWritten)
                """, in: transaction, changes, duplicate: "transition \(quoted("\(module.key)/\(input.fromState)/\(input.event)")) already exists")
        }
    }

    public func getTransition(_ ref: Stb_Catalog_V1_TransitionRef, context: ServerContext) async throws -> Stb_Catalog_V1_Transition {
        try await pool.withConnection { try await loadTransition(ref, on: $0) }
    }

    /// Every transition (of one module, or all), by module; not paged (a module has a few).
    public func listTransitions(_ request: Stb_Catalog_V1_ListTransitionsRequest, context: ServerContext) async throws -> Stb_Catalog_V1_ListTransitionsResponse {
        Stb_Catalog_V1_ListTransitionsResponse(transitions: try await all(Transition.self, inModule: request.moduleKey))
    }

    public func updateTransition(_ request: Stb_Catalog_V1_UpdateTransitionRequest, context: ServerContext) async throws -> Stb_Catalog_V1_Transition {
        var problems: [String] = []
        if let condition = request.conditionJson { problems += Validation.condition(condition, at: "condition_json") }
        if let meta = request.metaJson { problems += Validation.meta(meta, at: "meta_json").1 }
        try check(problems)
        return try await update(context, request.ref, load: loadTransition) { after, transaction in
            if let toState = request.toState {
                let module = try await loadModule(moduleRef(after.moduleKey), on: transaction.connection)
                try await requireStates([("to_state", toState)], in: module, transaction)
                after.toState = toState
            }
            if let condition = request.conditionJson {
                after.conditionJson = condition.isEmpty ? "" : try JSONValue.parse(condition).canonicalText
            }
            if let meta = request.metaJson { after.metaJson = Module.metaValue(meta).canonicalText }
        } statement: { after in
            """
            WITH t AS (UPDATE transitions SET to_state = \(after.toState),
                       condition = \(after.conditionJson.isEmpty ? nil : PostgresJSON(after.conditionJson)),
                       meta = \(PostgresJSON(Module.metaValue(after.metaJson).canonicalText)), updated_at = now()
                       WHERE id = \(after.id) RETURNING *)
            \(unescaped: Transition.selectWritten)
            """
        }
    }

    public func deleteTransition(_ ref: Stb_Catalog_V1_TransitionRef, context: ServerContext) async throws -> Stb_Common_V1_Empty {
        try await change(actor: context.caller) { transaction, changes in
            try await delete(try await loadTransition(ref, on: transaction.connection, forUpdate: true), in: transaction, changes)
            return Stb_Common_V1_Empty()
        }
    }

    func loadTransition(_ ref: Stb_Catalog_V1_TransitionRef, on connection: PostgresConnection, forUpdate: Bool = false) async throws -> Transition {
        try await load(
            Transition.self, id: ref.id, moduleKey: ref.moduleKey, names: [("t.from_state", ref.fromState), ("t.event", ref.event)],
            forUpdate: forUpdate, on: connection)
    }
}
