import Logging
import Synchronization
import STBJSON
import STBMessages
import STBOptionValues
import STBPostgres
import STBRPC
import STBService

/// Projects, members and signoff aspects.
extension ProjectService {
    static let projectColumns = """
        p.id, p.key, p.name, p.description, p.meta::text, p.archived, \
        (extract(epoch from p.created_at) * 1000)::bigint, (extract(epoch from p.updated_at) * 1000)::bigint, \
        p.latest_version, p.valid, p.draft_hash, coalesce(m.role, '')
        """

    static func project(_ row: PostgresRow, caller: CallerIdentity) throws -> Stb_Project_V1_Project {
        var project = Stb_Project_V1_Project()
        project.id = try row.decode(0, as: Int64.self)
        project.key = try row.decode(1, as: String.self)
        project.name = try row.decode(2, as: String.self)
        project.description_p = try row.decode(3, as: String.self)
        project.metaJson = try row.decode(4, as: String.self)
        project.archived = try row.decode(5, as: Bool.self)
        project.createdAtMs = try row.decode(6, as: Int64.self)
        project.updatedAtMs = try row.decode(7, as: Int64.self)
        project.latestVersion = UInt32(clamping: try row.decode(8, as: Int32.self))
        project.valid = try row.decode(9, as: Bool.self)
        project.draftHash = try row.decode(10, as: [UInt8].self)
        project.myRole = role(named: try row.decode(11, as: String.self))
        return project
    }

    func loadProject(_ id: Int64, caller: CallerIdentity, in transaction: PostgresTransaction) async throws -> Stb_Project_V1_Project {
        let rows = try await transaction.query("""
            SELECT \(unescaped: Self.projectColumns) FROM projects p
            LEFT JOIN members m ON m.project_id = p.id AND m.user_id = stb_user()
            WHERE p.id = \(id)
            """)
        guard let row = rows.first else { throw RPCError(code: .notFound, message: "project not found") }
        return try Self.project(row, caller: caller)
    }

    /// The audit JSON of a project's own fields.
    static func auditJSON(_ project: Stb_Project_V1_Project) -> JSONValue {
        .object([
            "key": .string(project.key), "name": .string(project.name), "description": .string(project.description_p),
            "meta": (try? JSONValue.parse(project.metaJson)) ?? .object([:]), "archived": .bool(project.archived),
        ])
    }

    static func meta(_ text: String, at path: String, problems: inout [String]) -> String {
        if text.isEmpty { return "{}" }
        guard let value = try? JSONValue.parse(text) else {
            problems.append("\(path): not JSON")
            return "{}"
        }
        guard value.objectValue != nil else {
            problems.append("\(path): must be a JSON object")
            return "{}"
        }
        return value.canonicalText
    }

    public func createProject(_ request: Stb_Project_V1_CreateProjectRequest, context: ServerContext) async throws -> Stb_Project_V1_Project {
        let caller = context.caller
        var problems: [String] = []
        if !isValidKey(request.key) { problems.append("key: must match [a-z0-9][a-z0-9_.-]{0,63}") }
        if request.name.isEmpty { problems.append("name: required") }
        if request.name.count > 200 { problems.append("name: at most 200 characters") }
        if request.description_p.count > 10_000 { problems.append("description: at most 10000 characters") }
        let meta = Self.meta(request.metaJson, at: "meta_json", problems: &problems)
        try check(problems)
        guard caller.role != "service", !caller.subject.isEmpty else {
            throw RPCError(code: .permissionDenied, message: "projects are created by users")
        }
        let catalog = try catalog()
        let config = EffectiveConfig(catalog: catalog, draft: Draft())
        return try await change(caller) { transaction, changes in
            // A new project has no member yet, so nobody could see the row it inserts:
            // the creator's project and owner row are written as the service.
            let member = Stb_Project_V1_Member(userID: caller.subject, username: caller.name, role: .owner)
            let id: Int64 = try await asService(caller, in: transaction) {
                let inserted = try await transaction.query("""
                    INSERT INTO projects (key, name, description, meta, created_by, draft_hash, catalog_revision)
                    VALUES (\(request.key), \(request.name), \(request.description_p), \(PostgresJSON(meta)), \(caller.subject),
                            \(config.hash), \(Int64(catalog.revision)))
                    ON CONFLICT (key) DO NOTHING RETURNING id
                    """)
                guard let row = inserted.first else {
                    // Another project by this key exists, visible or not: its key is taken.
                    throw RPCError(code: .alreadyExists, message: "project key \(quoted(request.key)) is taken")
                }
                let id = try row.decode(0, as: Int64.self)
                try await self.writeMember(member, projectID: id, in: transaction)
                return id
            }
            let project = try await loadProject(id, caller: caller, in: transaction)
            changes.record((id, project.key), entity: "project", action: .created, before: nil, after: Self.auditJSON(project),
                           newHash: config.hash)
            changes.record((id, project.key), entity: "member", key: caller.subject, action: .created, before: nil,
                           after: Self.memberJSON(member))
            return project
        }
    }

    public func getProject(_ request: Stb_Project_V1_ProjectRef, context: ServerContext) async throws -> Stb_Project_V1_Project {
        let access = try await access(context.caller, request.key)
        return try await withIdentity(context.caller) { try await loadProject(access.id, caller: context.caller, in: $0) }
    }

    public func listProjects(_ request: Stb_Project_V1_ListProjectsRequest, context: ServerContext) async throws -> Stb_Project_V1_ListProjectsResponse {
        let page = try Page(request.page)
        let caller = context.caller
        return try await withIdentity(caller) { transaction in
            // Row-level security leaves only the projects the caller may see.
            let rows = try await transaction.query("""
                SELECT \(unescaped: Self.projectColumns), count(*) OVER () AS total FROM projects p
                LEFT JOIN members m ON m.project_id = p.id AND m.user_id = stb_user()
                WHERE p.id > \(page.after) AND (\(request.includeArchived) OR NOT p.archived)
                ORDER BY p.id LIMIT \(page.size)
                """)
            let projects = try rows.map { try Self.project($0, caller: caller) }
            return Stb_Project_V1_ListProjectsResponse(projects: projects, page: try page.info(rows, lastID: projects.last?.id))
        }
    }

    public func updateProject(_ request: Stb_Project_V1_UpdateProjectRequest, context: ServerContext) async throws -> Stb_Project_V1_Project {
        let caller = context.caller
        let access = try await access(caller, request.key, least: .owner)
        var problems: [String] = []
        if let name = request.name, name.isEmpty || name.count > 200 { problems.append("name: 1 to 200 characters") }
        if let description = request.description_p, description.count > 10_000 { problems.append("description: at most 10000 characters") }
        let meta = request.metaJson.map { Self.meta($0, at: "meta_json", problems: &problems) }
        try check(problems)
        let project = try await change(caller) { transaction, changes in
            let before = try await loadProject(access.id, caller: caller, in: transaction)
            var after = before
            if let name = request.name { after.name = name }
            if let description = request.description_p { after.description_p = description }
            if let meta { after.metaJson = meta }
            if let archived = request.archived { after.archived = archived }
            guard Self.auditJSON(after) != Self.auditJSON(before) else { return before }
            _ = try await transaction.query("""
                UPDATE projects SET name = \(after.name), description = \(after.description_p),
                    meta = \(PostgresJSON(after.metaJson.isEmpty ? "{}" : after.metaJson)), archived = \(after.archived), updated_at = now()
                WHERE id = \(access.id)
                """)
            changes.record((access.id, access.key), entity: "project", action: .updated,
                           before: Self.auditJSON(before), after: Self.auditJSON(after))
            return try await loadProject(access.id, caller: caller, in: transaction)
        }
        invalidate(project: access.key, id: access.id)
        return project
    }

    // MARK: - Members

    static func memberJSON(_ member: Stb_Project_V1_Member) -> JSONValue {
        .object(["user_id": .string(member.userID), "username": .string(member.username), "role": .string(roleName(member.role))])
    }

    /// Runs `body` acting as the service, then restores the caller's identity: membership
    /// rows of other users are written this way, once the handler has checked that the
    /// caller is the project's owner (or its creator, adding itself).
    func asService<R>(
        _ caller: CallerIdentity, in transaction: PostgresTransaction, _ body: () async throws -> R
    ) async throws -> R {
        _ = try await transaction.query("SELECT set_config('stb.role', 'service', true)")
        let result = try await body()
        _ = try await transaction.query("SELECT set_config('stb.role', \(caller.role), true)")
        return result
    }

    /// Writes (or replaces) a member's row and the project's roster; run `asService`.
    func writeMember(_ member: Stb_Project_V1_Member, projectID: Int64, in transaction: PostgresTransaction) async throws {
        _ = try await transaction.query("""
            INSERT INTO members (project_id, user_id, username, role) VALUES (\(projectID), \(member.userID), \(member.username), \(Self.roleName(member.role)))
            ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role, username = EXCLUDED.username
            """)
        try await refreshRoster(projectID, in: transaction)
    }

    /// Rebuilds `projects.roster` from the member rows; the transaction acts as the service.
    func refreshRoster(_ projectID: Int64, in transaction: PostgresTransaction) async throws {
        _ = try await transaction.query("""
            UPDATE projects SET roster = coalesce((
                SELECT jsonb_agg(jsonb_build_object('user_id', user_id, 'username', username, 'role', role,
                                 'added_at_ms', (extract(epoch from added_at) * 1000)::bigint) ORDER BY user_id)
                FROM members WHERE project_id = \(projectID)), '[]'::jsonb)
            WHERE id = \(projectID)
            """)
    }

    public func setMember(_ request: Stb_Project_V1_SetMemberRequest, context: ServerContext) async throws -> Stb_Project_V1_Member {
        let caller = context.caller
        var request = request
        var problems: [String] = []
        if request.userID.isEmpty && !request.username.isEmpty, let gateway {
            do {
                let user = try await gateway.unary(Stb_Gateway_V1_Auth.lookupUser, request: .init(username: request.username), timeout: .seconds(5))
                request.userID = user.id
            } catch let error as RPCError where error.code == .notFound {
                throw invalidArgument(["username: no user \(quoted(request.username))"])
            } catch {
                throw RPCError(code: .unavailable, message: "the gateway cannot look up users now; retry shortly, or give user_id")
            }
        }
        if request.userID.isEmpty { problems.append("user_id: required (the user's id, as their token's subject), or a username") }
        if request.userID.count > 200 { problems.append("user_id: at most 200 characters") }
        if request.username.count > 200 { problems.append("username: at most 200 characters") }
        if request.role == .unspecified { problems.append("role: required (viewer, editor, approver or owner)") }
        if case .unrecognized = request.role { problems.append("role: unknown") }
        try check(problems)
        let access = try await access(caller, request.projectKey, least: .owner, changing: true)
        let member = Stb_Project_V1_Member(userID: request.userID, username: request.username, role: request.role)
        let result = try await change(caller) { transaction, changes in
            let before = try await transaction.query(
                "SELECT username, role FROM members WHERE project_id = \(access.id) AND user_id = \(request.userID)").first
            let beforeMember = try before.map {
                Stb_Project_V1_Member(userID: request.userID, username: try $0.decode(0, as: String.self), role: Self.role(named: try $0.decode(1, as: String.self)))
            }
            try await asService(caller, in: transaction) {
                if beforeMember?.role == .owner && member.role != .owner {
                    try await requireAnotherOwner(access.id, besides: request.userID, in: transaction)
                }
                try await writeMember(member, projectID: access.id, in: transaction)
            }
            changes.record((access.id, access.key), entity: "member", key: request.userID, action: beforeMember == nil ? .created : .updated,
                           before: beforeMember.map(Self.memberJSON), after: Self.memberJSON(member))
            return member
        }
        invalidate(project: access.key, id: access.id)
        return result
    }

    /// Refuses to leave a project without an owner; run `asService`.
    func requireAnotherOwner(_ projectID: Int64, besides userID: String, in transaction: PostgresTransaction) async throws {
        let owners = try await transaction.query(
            "SELECT count(*) FROM members WHERE project_id = \(projectID) AND role = 'owner' AND user_id <> \(userID)")[0].decode(0, as: Int64.self)
        guard owners > 0 else {
            throw RPCError(code: .failedPrecondition, message: "a project keeps at least one owner; make another member owner first")
        }
    }

    public func removeMember(_ request: Stb_Project_V1_RemoveMemberRequest, context: ServerContext) async throws -> Stb_Common_V1_Empty {
        let caller = context.caller
        let access = try await access(caller, request.projectKey, least: .owner, changing: true)
        try await change(caller) { transaction, changes in
            let row = try await asService(caller, in: transaction) {
                try await requireAnotherOwner(access.id, besides: request.userID, in: transaction)
                let removed = try await transaction.query(
                    "DELETE FROM members WHERE project_id = \(access.id) AND user_id = \(request.userID) RETURNING username, role")
                guard let row = removed.first else {
                    throw RPCError(code: .notFound, message: "user \(quoted(request.userID)) is not a member of \(quoted(access.key))")
                }
                try await refreshRoster(access.id, in: transaction)
                return row
            }
            let member = Stb_Project_V1_Member(userID: request.userID, username: try row.decode(0, as: String.self), role: Self.role(named: try row.decode(1, as: String.self)))
            changes.record((access.id, access.key), entity: "member", key: request.userID, action: .deleted, before: Self.memberJSON(member), after: nil)
        }
        invalidate(project: access.key, id: access.id)
        return Stb_Common_V1_Empty()
    }

    public func listMembers(_ request: Stb_Project_V1_ProjectRef, context: ServerContext) async throws -> Stb_Project_V1_ListMembersResponse {
        let access = try await access(context.caller, request.key)
        return try await withIdentity(context.caller) { transaction in
            let rows = try await transaction.query("SELECT roster::text FROM projects WHERE id = \(access.id)")
            guard let row = rows.first else { throw Self.notFound(request.key) }
            let roster = try JSONValue.parse(try row.decode(0, as: String.self)).arrayValue ?? []
            return Stb_Project_V1_ListMembersResponse(members: roster.map { entry in
                Stb_Project_V1_Member(
                    userID: entry["user_id"]?.stringValue ?? "", username: entry["username"]?.stringValue ?? "",
                    role: Self.role(named: entry["role"]?.stringValue ?? ""), addedAtMs: entry["added_at_ms"]?.integerValue ?? 0)
            })
        }
    }

    public func listMemberships(_ request: Stb_Project_V1_ListMembershipsRequest, context: ServerContext) async throws -> Stb_Project_V1_ListMembershipsResponse {
        guard !request.userID.isEmpty else { throw invalidArgument(["user_id: required"]) }
        return try await withIdentity(context.caller) { transaction in
            let rows = try await transaction.query("""
                SELECT p.key, m.role FROM members m JOIN projects p ON p.id = m.project_id
                WHERE m.user_id = \(request.userID) ORDER BY p.key
                """)
            return Stb_Project_V1_ListMembershipsResponse(memberships: try rows.map {
                Stb_Project_V1_Membership(projectKey: try $0.decode(0, as: String.self), role: Self.role(named: try $0.decode(1, as: String.self)))
            })
        }
    }

    // MARK: - Signoff aspects

    static func aspectJSON(_ aspect: Stb_Project_V1_SignoffAspect) -> JSONValue {
        .object([
            "name": .string(aspect.name), "least_role": .string(roleName(aspect.leastRole)),
            "user_ids": .array(aspect.userIds.map(JSONValue.string)),
        ])
    }

    static func aspect(_ json: JSONValue) -> Stb_Project_V1_SignoffAspect {
        Stb_Project_V1_SignoffAspect(
            name: json["name"]?.stringValue ?? "", leastRole: role(named: json["least_role"]?.stringValue ?? ""),
            userIds: (json["user_ids"]?.arrayValue ?? []).compactMap(\.stringValue))
    }

    func loadAspects(_ projectID: Int64, in transaction: PostgresTransaction) async throws -> [Stb_Project_V1_SignoffAspect] {
        let rows = try await transaction.query("SELECT aspects::text FROM projects WHERE id = \(projectID)")
        guard let row = rows.first else { return [] }
        return (try JSONValue.parse(try row.decode(0, as: String.self)).arrayValue ?? []).map(Self.aspect)
    }

    public func setSignoffAspects(_ request: Stb_Project_V1_SetSignoffAspectsRequest, context: ServerContext) async throws -> Stb_Project_V1_SignoffAspects {
        let caller = context.caller
        var problems: [String] = []
        var names = Set<String>()
        for (index, aspect) in request.aspects.enumerated() {
            if !isValidKey(aspect.name) { problems.append("aspects[\(index)].name: must match [a-z0-9][a-z0-9_.-]{0,63}") }
            if !names.insert(aspect.name).inserted { problems.append("aspects[\(index)].name: \(quoted(aspect.name)) is given twice") }
            if aspect.leastRole == .unspecified && aspect.userIds.isEmpty {
                problems.append("aspects[\(index)]: name who may sign it (least_role or user_ids)")
            }
        }
        if request.aspects.count > 50 { problems.append("aspects: at most 50") }
        try check(problems)
        let access = try await access(caller, request.projectKey, least: .owner, changing: true)
        return try await change(caller) { transaction, changes in
            let before = try await loadAspects(access.id, in: transaction)
            let json = JSONValue.array(request.aspects.map(Self.aspectJSON))
            _ = try await transaction.query("UPDATE projects SET aspects = \(PostgresJSON(json.canonicalText)), updated_at = now() WHERE id = \(access.id)")
            changes.record((access.id, access.key), entity: "aspects", action: .updated,
                           before: .array(before.map(Self.aspectJSON)), after: json)
            return Stb_Project_V1_SignoffAspects(aspects: request.aspects)
        }
    }

    // MARK: - Changes

    /// Runs `body` in a transaction with the caller's identity and a change log, written
    /// at the end.
    func change<R: Sendable>(
        _ caller: CallerIdentity, _ body: (PostgresTransaction, ProjectChanges) async throws -> R
    ) async throws -> R {
        try await withIdentity(caller) { transaction in
            let changes = ProjectChanges(caller: caller)
            let result = try await body(transaction, changes)
            _ = try await changes.write(in: transaction, outbox: outbox)
            return result
        }
    }
}
