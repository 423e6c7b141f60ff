import STBJSON
import STBMessages
import STBPostgres
import STBRPC
import STBService

/// Change requests: option changes proposed against a committed version, reviewed by an
/// approver other than their author, applied only while the draft still is that version
/// (compare-and-swap) and the rules accept the result.
extension ProjectService {
    static let changeRequestColumns = """
        id, base_version, base_hash, changes, reason, status, author, author_id, reviewer, reviewer_id, review_notes, \
        stale_reason, applied_version, (extract(epoch from created_at) * 1000)::bigint, (extract(epoch from updated_at) * 1000)::bigint
        """

    static func changeRequest(_ row: PostgresRow, projectKey: String) throws -> Stb_Project_V1_ChangeRequest {
        var request = Stb_Project_V1_ChangeRequest()
        request.id = try row.decode(0, as: Int64.self)
        request.projectKey = projectKey
        request.baseVersion = UInt32(clamping: try row.decode(1, as: Int32.self))
        request.baseHash = try row.decode(2, as: [UInt8].self)
        request.changes = try Stb_Project_V1_SetOptionsRequest(serializedBytes: try row.decode(3, as: [UInt8].self)).changes
        request.reason = try row.decode(4, as: String.self)
        request.status = status(named: try row.decode(5, as: String.self))
        request.author = try row.decode(6, as: String.self)
        request.authorID = try row.decode(7, as: String.self)
        request.reviewer = try row.decode(8, as: String.self)
        request.reviewerID = try row.decode(9, as: String.self)
        request.reviewNotes = try row.decode(10, as: String.self)
        request.staleReason = try row.decode(11, as: String.self)
        request.appliedVersion = UInt32(clamping: try row.decode(12, as: Int32.self))
        request.createdAtMs = try row.decode(13, as: Int64.self)
        request.updatedAtMs = try row.decode(14, as: Int64.self)
        return request
    }

    static func status(named name: String) -> Stb_Project_V1_ChangeRequestStatus {
        switch name {
        case "pending": .pending
        case "approved": .approved
        case "rejected": .rejected
        case "applied": .applied
        case "stale": .stale
        default: .unspecified
        }
    }

    static func statusName(_ status: Stb_Project_V1_ChangeRequestStatus) -> String {
        switch status {
        case .pending: "pending"
        case .approved: "approved"
        case .rejected: "rejected"
        case .applied: "applied"
        case .stale: "stale"
        default: ""
        }
    }

    static func changeJSON(_ change: Stb_Project_V1_OptionChange) -> JSONValue {
        var members: [String: JSONValue] = ["key": .string(change.key)]
        switch change.change {
        case .include(let on): members["include"] = .bool(on)
        case .valueJson(let text): members["value"] = (try? JSONValue.parse(text)) ?? .string(text)
        case .reset: members["reset"] = .bool(true)
        case .resetValue: members["reset_value"] = .bool(true)
        case nil: break
        }
        return .object(members)
    }

    /// The audit and event JSON of a change request.
    static func changeRequestJSON(_ request: Stb_Project_V1_ChangeRequest) -> JSONValue {
        .object([
            "id": .integer(request.id), "base_version": .integer(Int64(request.baseVersion)),
            "base_hash": .string(SHA256.hex(request.baseHash)), "changes": .array(request.changes.map(changeJSON)),
            "reason": .string(request.reason), "status": .string(statusName(request.status)),
            "author_id": .string(request.authorID), "reviewer_id": .string(request.reviewerID),
            "review_notes": .string(request.reviewNotes), "stale_reason": .string(request.staleReason),
            "applied_version": .integer(Int64(request.appliedVersion)),
        ])
    }

    static func changeRequestNotFound(_ id: Int64, _ key: String) -> RPCError {
        RPCError(code: .notFound, message: "change request \(id) of project \(quoted(key)) not found")
    }

    static func loadChangeRequest(
        _ id: Int64, of access: ProjectAccess, forUpdate: Bool = false, in transaction: PostgresTransaction
    ) async throws -> Stb_Project_V1_ChangeRequest {
        let rows = try await transaction.query("""
            SELECT \(unescaped: changeRequestColumns) FROM change_requests
            WHERE project_id = \(access.id) AND id = \(id)\(unescaped: forUpdate ? " FOR UPDATE" : "")
            """)
        guard let row = rows.first else { throw changeRequestNotFound(id, access.key) }
        return try changeRequest(row, projectKey: access.key)
    }

    /// Sets a request's status (and the columns given with it) and records the change.
    static func updateChangeRequest(
        _ request: Stb_Project_V1_ChangeRequest, to updated: Stb_Project_V1_ChangeRequest, of access: ProjectAccess,
        log: ProjectChanges, in transaction: PostgresTransaction
    ) async throws -> Stb_Project_V1_ChangeRequest {
        let rows = try await transaction.query("""
            UPDATE change_requests SET status = \(statusName(updated.status)), reviewer = \(updated.reviewer),
                reviewer_id = \(updated.reviewerID), review_notes = \(updated.reviewNotes), stale_reason = \(updated.staleReason),
                applied_version = \(Int32(clamping: updated.appliedVersion)), updated_at = now()
            WHERE project_id = \(access.id) AND id = \(request.id)
            RETURNING \(unescaped: changeRequestColumns)
            """)
        guard let row = rows.first else { throw changeRequestNotFound(request.id, access.key) }
        let stored = try changeRequest(row, projectKey: access.key)
        log.record((access.id, access.key), entity: "change_request", key: String(request.id), action: .updated,
                   before: changeRequestJSON(request), after: changeRequestJSON(stored))
        return stored
    }

    /// FAILED_PRECONDITION for acting on a request whose status does not allow it.
    static func wrongStatus(_ request: Stb_Project_V1_ChangeRequest, needs: String) -> RPCError {
        let now = statusName(request.status)
        let applied = request.status == .applied ? " (as version \(request.appliedVersion))" : ""
        return RPCError(code: .failedPrecondition, message: "change request \(request.id) is \(now)\(applied); this needs a \(needs) one")
    }

    // MARK: - Create, get, list

    public func createChangeRequest(_ request: Stb_Project_V1_CreateChangeRequestRequest, context: ServerContext) async throws -> Stb_Project_V1_ChangeRequest {
        let caller = context.caller
        var problems: [String] = []
        if request.changes.isEmpty { problems.append("changes: at least one change") }
        if request.reason.count > Self.maxMessageLength { problems.append("reason: at most \(Self.maxMessageLength) characters") }
        try check(problems)
        let access = try await access(caller, request.projectKey, least: .editor, changing: true)
        let catalog = try catalog()
        let changes = try Self.validate(request.changes, catalog: catalog, at: "changes").map {
            Stb_Project_V1_OptionChange(key: $0.0, change: $0.1)
        }
        return try await change(caller) { transaction, log in
            var base = request.baseVersion
            if base == 0 {
                let rows = try await transaction.query("SELECT latest_version FROM projects WHERE id = \(access.id)")
                guard let row = rows.first else { throw Self.notFound(access.key) }
                base = UInt32(clamping: try row.decode(0, as: Int32.self))
                guard base > 0 else {
                    throw RPCError(
                        code: .failedPrecondition,
                        message: "project \(quoted(access.key)) has no committed version to base a change request on; commit one first")
                }
            }
            let version = try await Self.loadVersion(base, of: access, canonical: false, in: transaction)
            let rows = try await transaction.query("""
                INSERT INTO change_requests (project_id, base_version, base_hash, changes, reason, status, author, author_id)
                VALUES (\(access.id), \(Int32(clamping: version.number)), \(version.hash_p),
                        \(Stb_Project_V1_SetOptionsRequest(changes: changes).serializedBytes()), \(request.reason), 'pending',
                        \(caller.name), \(caller.subject))
                RETURNING \(unescaped: Self.changeRequestColumns)
                """)
            guard let row = rows.first else { throw Self.notFound(access.key) }
            let created = try Self.changeRequest(row, projectKey: access.key)
            log.record((access.id, access.key), entity: "change_request", key: String(created.id), action: .created,
                       before: nil, after: Self.changeRequestJSON(created))
            return created
        }
    }

    public func getChangeRequest(_ request: Stb_Project_V1_ChangeRequestRef, context: ServerContext) async throws -> Stb_Project_V1_ChangeRequest {
        let access = try await access(context.caller, request.projectKey)
        return try await withIdentity(context.caller) { transaction in
            try await Self.loadChangeRequest(request.id, of: access, in: transaction)
        }
    }

    public func listChangeRequests(_ request: Stb_Project_V1_ListChangeRequestsRequest, context: ServerContext) async throws -> Stb_Project_V1_ListChangeRequestsResponse {
        if case .unrecognized = request.status { throw invalidArgument(["status: unknown"]) }
        let access = try await access(context.caller, request.projectKey)
        let page = try Page(request.page)
        let status = Self.statusName(request.status)
        return try await withIdentity(context.caller) { transaction in
            let rows = try await transaction.query("""
                SELECT \(unescaped: Self.changeRequestColumns), count(*) OVER () AS total FROM change_requests
                WHERE project_id = \(access.id) AND id > \(page.after) AND (\(status) = '' OR status = \(status))
                ORDER BY id LIMIT \(page.size)
                """)
            let requests = try rows.map { try Self.changeRequest($0, projectKey: access.key) }
            return Stb_Project_V1_ListChangeRequestsResponse(requests: requests, page: try page.info(rows, lastID: requests.last?.id))
        }
    }

    // MARK: - Review

    public func reviewChangeRequest(_ request: Stb_Project_V1_ReviewChangeRequestRequest, context: ServerContext) async throws -> Stb_Project_V1_ChangeRequest {
        let caller = context.caller
        var problems: [String] = []
        if request.notes.count > Self.maxMessageLength { problems.append("notes: at most \(Self.maxMessageLength) characters") }
        try check(problems)
        let access = try await access(caller, request.projectKey, least: .approver, changing: true)
        return try await change(caller) { transaction, log in
            let current = try await Self.loadChangeRequest(request.id, of: access, forUpdate: true, in: transaction)
            guard current.authorID != caller.subject else {
                throw RPCError(code: .permissionDenied, message: "the author of a change request cannot review it; another approver must")
            }
            guard current.status == .pending else { throw Self.wrongStatus(current, needs: "pending") }
            var reviewed = current
            reviewed.status = request.approve ? .approved : .rejected
            reviewed.reviewer = caller.name
            reviewed.reviewerID = caller.subject
            reviewed.reviewNotes = request.notes
            return try await Self.updateChangeRequest(current, to: reviewed, of: access, log: log, in: transaction)
        }
    }

    // MARK: - Apply

    enum ApplyOutcome: Sendable {
        case applied(Stb_Project_V1_ChangeRequest)
        case stale(Stb_Project_V1_ChangeRequest)
    }

    /// Why the draft no longer is the request's base: the options that differ between the
    /// base version and the draft.
    static func staleReason(
        _ request: Stb_Project_V1_ChangeRequest, draft: EffectiveConfig, of access: ProjectAccess, in transaction: PostgresTransaction
    ) async throws -> String {
        let base = try await loadVersion(request.baseVersion, of: access, canonical: true, in: transaction)
        let difference = difference(from: try parsedValues(base.canonicalJson), to: includedValues(draft))
        let keys = (difference.added + difference.removed + difference.changed).map(\.key).sorted()
        guard !keys.isEmpty else {
            return "the draft's hash is \(SHA256.hex(draft.hash)), not version \(request.baseVersion)'s \(SHA256.hex(request.baseHash))"
        }
        let listed = keys.prefix(10).joined(separator: ", ") + (keys.count > 10 ? " and \(keys.count - 10) more" : "")
        let count = keys.count == 1 ? "1 option differs" : "\(keys.count) options differ"
        return "the draft no longer equals version \(request.baseVersion): \(count) (\(listed))"
    }

    /// ABORTED with a STALE_CHANGE_REQUEST precondition failure.
    static func staleError(_ request: Stb_Project_V1_ChangeRequest) -> RPCError {
        RPCError(
            code: .aborted, message: "change request \(request.id) is stale: \(request.staleReason)",
            details: [.preconditionFailure(Google_Rpc_PreconditionFailure(violations: [
                .init(type: "STALE_CHANGE_REQUEST", subject: "change_request/\(request.id)", description_p: request.staleReason),
            ]))])
    }

    /// Applies an approved request when the draft still has its base version's hash and the
    /// rules accept the result, and commits it as a version. When the draft moved on, the
    /// request becomes `stale` (that is kept) and the call fails with ABORTED.
    public func applyChangeRequest(_ request: Stb_Project_V1_ChangeRequestRef, context: ServerContext) async throws -> Stb_Project_V1_ChangeRequest {
        let caller = context.caller
        let access = try await access(caller, request.projectKey, least: .editor, changing: true)
        let catalog = try catalog()
        let metadata = Metadata().forwardingAuthorization(from: context.metadata)
        let outcome: ApplyOutcome = try await change(caller) { transaction, log in
            // The project row's lock orders concurrent applies: the second one sees the
            // draft the first one wrote.
            let latest = try await Self.lockProject(access, in: transaction)
            let current = try await Self.loadChangeRequest(request.id, of: access, forUpdate: true, in: transaction)
            guard current.status == .approved else { throw Self.wrongStatus(current, needs: "approved") }
            let old = try await Self.loadDraft(access.id, in: transaction)
            let oldConfig = EffectiveConfig(catalog: catalog, draft: old)
            guard oldConfig.hash == current.baseHash else {
                // Only the stale status is written: this transaction applies nothing.
                var stale = current
                stale.status = .stale
                stale.staleReason = try await Self.staleReason(current, draft: oldConfig, of: access, in: transaction)
                return .stale(try await Self.updateChangeRequest(current, to: stale, of: access, log: log, in: transaction))
            }
            let changes: [(String, Stb_Project_V1_OptionChange.OneOf_Change)]
            do {
                changes = try Self.validate(current.changes, catalog: catalog, at: "changes")
            } catch let error as RPCError {
                throw RPCError(code: .failedPrecondition, message: "change request \(current.id) no longer fits the catalog: \(error.message)")
            }
            let new = Self.apply(changes, to: old)
            let config = EffectiveConfig(catalog: catalog, draft: new)
            let verdict = try await evaluate(new, catalog: catalog, metadata: metadata)
            guard verdict.valid else { throw Self.refused(verdict, what: "change request \(current.id)") }
            try await Self.storeDraft(access.id, from: old, to: new, in: transaction)
            try await storeVerdict(access.id, verdict: verdict, hash: config.hash, draftChanged: new != old, in: transaction)
            if new != old {
                let (before, after) = Self.draftChange(from: old, to: new)
                log.record((access.id, access.key), entity: "options", action: .updated, before: before, after: after,
                           oldHash: oldConfig.hash, newHash: config.hash)
            }
            var applied = current
            applied.status = .applied
            if config.hash == latest.latestHash {
                // The changes leave the newest version as it is: nothing new to commit.
                applied.appliedVersion = latest.latest
            } else {
                let message = "Change request \(current.id)" + (current.reason.isEmpty ? "" : ": \(current.reason)")
                let version = try await insertVersion(
                    access, after: (latest.latest, latest.latestHash), message: String(message.prefix(Self.maxMessageLength)),
                    draft: new, config: config, verdict: verdict, log: log, in: transaction)
                applied.appliedVersion = version.number
            }
            return .applied(try await Self.updateChangeRequest(current, to: applied, of: access, log: log, in: transaction))
        }
        switch outcome {
        case .applied(let applied):
            invalidateConfig(access.id)
            return applied
        case .stale(let stale):
            throw Self.staleError(stale)
        }
    }
}
