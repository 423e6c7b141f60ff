import STBJSON
import STBMessages
import STBOptionValues
import STBPostgres
import STBRPC
import STBService

extension CatalogService {
    public func createGroup(_ request: Stb_Catalog_V1_CreateGroupRequest, context: ServerContext) async throws -> Stb_Catalog_V1_Group {
        guard let input = request.group else { throw invalid("group: required") }
        var problems = Validation.key(input.key, at: "group.key") + Validation.name(input.name, at: "group.name")
            + Validation.text(input.description_p, limit: .description, at: "group.description")
        let (meta, metaProblems) = Validation.meta(input.metaJson, at: "group.meta_json")
        problems += metaProblems
        if input.moduleKey.isEmpty { problems.append("group.module_key: required") }
        try check(problems)
        return try await change(actor: context.caller) { transaction, changes in
            let module = try await loadModule(moduleRef(input.moduleKey), on: transaction.connection)
            return try await created(Group.self, """
                WITH g AS (INSERT INTO groups (module_id, key, name, description, position, meta)
                           VALUES (\(module.id), \(input.key), \(input.name), \(input.description_p), \(input.position), \(PostgresJSON(meta.canonicalText)))
                           ON CONFLICT (module_id, key) DO NOTHING RETURNING *)
                \(unescaped: Group.selectWritten)
                """, in: transaction, changes, duplicate: "group \(quoted(input.key)) already exists in module \(quoted(module.key))")
        }
    }

    public func getGroup(_ ref: Stb_Catalog_V1_GroupRef, context: ServerContext) async throws -> Stb_Catalog_V1_Group {
        try await pool.withConnection { try await loadGroup(ref, on: $0) }
    }

    public func listGroups(_ request: Stb_Catalog_V1_ListGroupsRequest, context: ServerContext) async throws -> Stb_Catalog_V1_ListGroupsResponse {
        let (groups, page) = try await Group.list(try Page(request.page), filters: [ListFilter("m.key", request.moduleKey)], pool: pool)
        return Stb_Catalog_V1_ListGroupsResponse(groups: groups, page: page)
    }

    public func updateGroup(_ request: Stb_Catalog_V1_UpdateGroupRequest, context: ServerContext) async throws -> Stb_Catalog_V1_Group {
        let meta = try checkedUpdate(name: request.name, description: request.description_p, metaJson: request.metaJson)
        return try await update(context, request.ref, load: loadGroup) { after, transaction in
            if let name = request.name { after.name = name }
            if let description = request.description_p { after.description_p = description }
            if let position = request.position { after.position = position }
            if let meta { after.metaJson = meta.canonicalText }
        } statement: { after in
            """
            WITH g AS (UPDATE groups SET name = \(after.name), description = \(after.description_p), position = \(after.position),
                       meta = \(PostgresJSON(Module.metaValue(after.metaJson).canonicalText)), updated_at = now()
                       WHERE id = \(after.id) RETURNING *)
            \(unescaped: Group.selectWritten)
            """
        }
    }

    /// Deletes a group and its options, each with its own event.
    public func deleteGroup(_ ref: Stb_Catalog_V1_GroupRef, context: ServerContext) async throws -> Stb_Common_V1_Empty {
        try await change(actor: context.caller) { transaction, changes in
            let group = try await loadGroup(ref, on: transaction.connection, forUpdate: true)
            for option in try await Option.all(where: "o.group_id", equals: group.id, on: transaction.connection) {
                try await delete(option, in: transaction, changes)
            }
            try await delete(group, in: transaction, changes)
            return Stb_Common_V1_Empty()
        }
    }

    func loadGroup(_ ref: Stb_Catalog_V1_GroupRef, on connection: PostgresConnection, forUpdate: Bool = false) async throws -> Group {
        try await load(Group.self, id: ref.id, moduleKey: ref.moduleKey, names: [("g.key", ref.key)], forUpdate: forUpdate, on: connection)
    }
}
