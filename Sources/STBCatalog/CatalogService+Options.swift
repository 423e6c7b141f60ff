import STBJSON
import STBMessages
import STBOptionValues
import STBPostgres
import STBRPC
import STBService

extension CatalogService {
    public func createOption(_ request: Stb_Catalog_V1_CreateOptionRequest, context: ServerContext) async throws -> Stb_Catalog_V1_Option {
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
        return try await change(actor: context.caller) { transaction, changes in
            let group = try await loadGroup(groupRef(input.moduleKey, input.groupKey), on: transaction.connection)
            return try await created(Option.self, """
                WITH o AS (INSERT INTO options (group_id, key, name, description, type, default_value, editable, included_by_default, meta)
                           VALUES (\(group.id), \(input.key), \(input.name), \(input.description_p), \(Validation.typeName(input.type)!),
                                   \(defaultValue), \(input.editable), \(input.includedByDefault), \(PostgresJSON(meta.canonicalText)))
                           ON CONFLICT (key) DO NOTHING RETURNING *)
                \(unescaped: Option.selectWritten)
                """, in: transaction, changes, duplicate: "option \(quoted(input.key)) already exists")
        }
    }

    public func getOption(_ ref: Stb_Catalog_V1_OptionRef, context: ServerContext) async throws -> Stb_Catalog_V1_Option {
        try await pool.withConnection { try await loadOption(ref, on: $0) }
    }

    public func listOptions(_ request: Stb_Catalog_V1_ListOptionsRequest, context: ServerContext) async throws -> Stb_Catalog_V1_ListOptionsResponse {
        let filters = [ListFilter("m.key", request.moduleKey), ListFilter("g.key", request.groupKey)]
        let (options, page) = try await Option.list(try Page(request.page), filters: filters, pool: pool)
        return Stb_Catalog_V1_ListOptionsResponse(options: options, page: page)
    }

    public func updateOption(_ request: Stb_Catalog_V1_UpdateOptionRequest, context: ServerContext) async throws -> Stb_Catalog_V1_Option {
        let moveProblem = (request.moduleKey == nil) != (request.groupKey == nil) ? ["module_key, group_key: give both to move the option"] : []
        _ = try checkedUpdate(name: request.name, description: request.description_p, metaJson: request.metaJson, more: moveProblem)
        return try await update(context, request.ref, load: loadOption) { after, transaction in
            if let name = request.name { after.name = name }
            if let description = request.description_p { after.description_p = description }
            if let type = request.type { after.type = type }
            if let value = request.defaultValue { after.defaultValue = value }
            if let editable = request.editable { after.editable = editable }
            if let included = request.includedByDefault { after.includedByDefault = included }
            if let meta = request.metaJson { after.metaJson = Module.metaValue(meta).canonicalText }
            if let moduleKey = request.moduleKey, let groupKey = request.groupKey {
                _ = try await loadGroup(groupRef(moduleKey, groupKey), on: transaction.connection)  // NOT_FOUND before anything is written
                after.moduleKey = moduleKey
                after.groupKey = groupKey
            }
            // The result as a whole must be valid: a new type with the old default is not.
            let checked = Validation.option(
                type: after.type, defaultValue: after.defaultValue, meta: Module.metaValue(after.metaJson),
                typePath: "type", defaultPath: "default_value", metaPath: "meta_json")
            try check(checked.problems)
            after.defaultValue = checked.defaultValue
        } statement: { after in
            """
            WITH o AS (UPDATE options SET name = \(after.name), description = \(after.description_p),
                       type = \(Validation.typeName(after.type)!), default_value = \(after.defaultValue), editable = \(after.editable),
                       included_by_default = \(after.includedByDefault), meta = \(PostgresJSON(Module.metaValue(after.metaJson).canonicalText)),
                       group_id = (SELECT g.id FROM groups g JOIN modules m ON m.id = g.module_id
                                   WHERE m.key = \(after.moduleKey) AND g.key = \(after.groupKey)),
                       updated_at = now()
                       WHERE id = \(after.id) RETURNING *)
            \(unescaped: Option.selectWritten)
            """
        }
    }

    public func deleteOption(_ ref: Stb_Catalog_V1_OptionRef, context: ServerContext) async throws -> Stb_Common_V1_Empty {
        try await change(actor: context.caller) { transaction, changes in
            try await delete(try await loadOption(ref, on: transaction.connection, forUpdate: true), in: transaction, changes)
            return Stb_Common_V1_Empty()
        }
    }

    func groupRef(_ moduleKey: String, _ key: String) -> Stb_Catalog_V1_GroupRef {
        var ref = Stb_Catalog_V1_GroupRef()
        ref.moduleKey = moduleKey
        ref.key = key
        return ref
    }

    func loadOption(_ ref: Stb_Catalog_V1_OptionRef, on connection: PostgresConnection, forUpdate: Bool = false) async throws -> Option {
        switch ref.ref {
        case .id(let id): try await load(Option.self, id: id, forUpdate: forUpdate, on: connection)
        case .key(let key): try await load(Option.self, key: key, forUpdate: forUpdate, on: connection)
        case nil: throw invalid("ref: give an id or a key")
        }
    }
}
