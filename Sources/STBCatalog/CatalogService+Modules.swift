import STBJSON
import STBMessages
import STBOptionValues
import STBPostgres
import STBRPC
import STBService

extension CatalogService {
    public func createModule(_ request: Stb_Catalog_V1_CreateModuleRequest, context: ServerContext) async throws -> Stb_Catalog_V1_Module {
        guard let input = request.module else { throw invalid("module: required") }
        var problems = Validation.key(input.key, at: "module.key") + Validation.name(input.name, at: "module.name")
            + Validation.text(input.description_p, limit: .description, at: "module.description")
        let (meta, metaProblems) = Validation.meta(input.metaJson, at: "module.meta_json")
        problems += metaProblems
        if !input.initialState.isEmpty {
            problems.append("module.initial_state: a new module has no states yet; add its states, then set initial_state")
        }
        try check(problems)
        return try await change(actor: context.caller) { transaction, changes in
            return try await created(Module.self, """
                WITH m AS (INSERT INTO modules (key, name, description, active, meta)
                           VALUES (\(input.key), \(input.name), \(input.description_p), \(input.active), \(PostgresJSON(meta.canonicalText)))
                           ON CONFLICT (key) DO NOTHING RETURNING *)
                \(unescaped: Module.selectWritten)
                """, in: transaction, changes, duplicate: "module \(quoted(input.key)) already exists")
        }
    }

    public func getModule(_ ref: Stb_Catalog_V1_ModuleRef, context: ServerContext) async throws -> Stb_Catalog_V1_Module {
        try await pool.withConnection { try await loadModule(ref, on: $0) }
    }

    public func listModules(_ request: Stb_Catalog_V1_ListModulesRequest, context: ServerContext) async throws -> Stb_Catalog_V1_ListModulesResponse {
        let (modules, page) = try await Module.list(try Page(request.page), pool: pool)
        return Stb_Catalog_V1_ListModulesResponse(modules: modules, page: page)
    }

    public func updateModule(_ request: Stb_Catalog_V1_UpdateModuleRequest, context: ServerContext) async throws -> Stb_Catalog_V1_Module {
        let meta = try checkedUpdate(name: request.name, description: request.description_p, metaJson: request.metaJson)
        return try await update(context, request.ref, load: loadModule) { after, transaction in
            if let name = request.name { after.name = name }
            if let description = request.description_p { after.description_p = description }
            if let active = request.active { after.active = active }
            if let meta { after.metaJson = meta.canonicalText }
            if let initialState = request.initialState {
                if !initialState.isEmpty {
                    let exists = try await transaction.query("SELECT 1 FROM states WHERE module_id = \(after.id) AND name = \(initialState)")
                    if exists.isEmpty {
                        throw invalid("initial_state: state \(quoted(initialState)) does not exist in module \(quoted(after.key))")
                    }
                }
                after.initialState = initialState
            }
        } statement: { after in
            """
            WITH m AS (UPDATE modules SET name = \(after.name), description = \(after.description_p), active = \(after.active),
                       initial_state = \(after.initialState), meta = \(PostgresJSON(Module.metaValue(after.metaJson).canonicalText)),
                       updated_at = now() WHERE id = \(after.id) RETURNING *)
            \(unescaped: Module.selectWritten)
            """
        }
    }

    /// Deletes a module and everything in it, each with its own event.
    public func deleteModule(_ ref: Stb_Catalog_V1_ModuleRef, context: ServerContext) async throws -> Stb_Common_V1_Empty {
        try await change(actor: context.caller) { transaction, changes in
            let module = try await loadModule(ref, on: transaction.connection, forUpdate: true)
            let connection = transaction.connection
            for transition in try await Transition.all(where: "t.module_id", equals: module.id, on: connection) {
                try await delete(transition, in: transaction, changes)
            }
            for state in try await State.all(where: "s.module_id", equals: module.id, on: connection) {
                try await delete(state, in: transaction, changes)
            }
            for option in try await Option.all(where: "g.module_id", equals: module.id, on: connection) {
                try await delete(option, in: transaction, changes)
            }
            for group in try await Group.all(where: "g.module_id", equals: module.id, on: connection) {
                try await delete(group, in: transaction, changes)
            }
            try await delete(module, in: transaction, changes)
            return Stb_Common_V1_Empty()
        }
    }

    func moduleRef(_ key: String) -> Stb_Catalog_V1_ModuleRef {
        var ref = Stb_Catalog_V1_ModuleRef()
        ref.ref = .key(key)
        return ref
    }

    func loadModule(_ ref: Stb_Catalog_V1_ModuleRef, on connection: PostgresConnection, forUpdate: Bool = false) async throws -> Module {
        switch ref.ref {
        case .id(let id): try await load(Module.self, id: id, forUpdate: forUpdate, on: connection)
        case .key(let key): try await load(Module.self, key: key, forUpdate: forUpdate, on: connection)
        case nil: throw invalid("ref: give an id or a key")
        }
    }
}
