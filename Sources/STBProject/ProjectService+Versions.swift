import STBJSON
import STBMessages
import STBPostgres
import STBRPC
import STBService

/// Versions: `CommitVersion` freezes the draft, `ListVersions`, `GetVersion`,
/// `DiffVersions`, and `Rollback` (re-validated against today's catalog and rules).
extension ProjectService {
    /// The longest commit message taken.
    static let maxMessageLength = 10_000

    static func versionColumns(canonical: Bool) -> String {
        """
        number, parent, message, \(canonical ? "canonical" : "''"), hash, catalog_revision, rules_revision, author, author_id, \
        (extract(epoch from created_at) * 1000)::bigint, rolled_back_from, valid
        """
    }

    static func version(_ row: PostgresRow, projectKey: String) throws -> Stb_Project_V1_Version {
        var version = Stb_Project_V1_Version()
        version.projectKey = projectKey
        version.number = UInt32(clamping: try row.decode(0, as: Int32.self))
        version.parent = UInt32(clamping: try row.decode(1, as: Int32.self))
        version.message = try row.decode(2, as: String.self)
        version.canonicalJson = try row.decode(3, as: String.self)
        version.hash_p = try row.decode(4, as: [UInt8].self)
        version.catalogRevision = UInt64(clamping: try row.decode(5, as: Int64.self))
        version.rulesRevision = UInt64(clamping: try row.decode(6, as: Int64.self))
        version.author = try row.decode(7, as: String.self)
        version.authorID = try row.decode(8, as: String.self)
        version.createdAtMs = try row.decode(9, as: Int64.self)
        version.rolledBackFrom = UInt32(clamping: try row.decode(10, as: Int32.self))
        version.valid = try row.decode(11, as: Bool.self)
        return version
    }

    /// The audit and event JSON of a version (its canonical form is named by its hash).
    static func versionJSON(_ version: Stb_Project_V1_Version) -> JSONValue {
        .object([
            "number": .integer(Int64(version.number)), "parent": .integer(Int64(version.parent)),
            "message": .string(version.message), "hash": .string(SHA256.hex(version.hash_p)),
            "catalog_revision": .integer(Int64(clamping: version.catalogRevision)),
            "rules_revision": .integer(Int64(clamping: version.rulesRevision)), "valid": .bool(version.valid),
            "rolled_back_from": .integer(Int64(version.rolledBackFrom)),
        ])
    }

    static func versionNotFound(_ number: UInt32, _ key: String) -> RPCError {
        RPCError(code: .notFound, message: "version \(number) of project \(quoted(key)) not found")
    }

    /// Version `number` of the project, with its canonical form when asked.
    static func loadVersion(
        _ number: UInt32, of access: ProjectAccess, canonical: Bool, in transaction: PostgresTransaction
    ) async throws -> Stb_Project_V1_Version {
        guard let stored = Int32(exactly: number) else { throw versionNotFound(number, access.key) }
        let rows = try await transaction.query("""
            SELECT \(unescaped: versionColumns(canonical: canonical)) FROM versions
            WHERE project_id = \(access.id) AND number = \(stored)
            """)
        guard let row = rows.first else { throw versionNotFound(number, access.key) }
        return try version(row, projectKey: access.key)
    }

    /// The project row, locked for a change of its draft or versions: the newest version's
    /// number and hash (empty when there is none).
    static func lockProject(_ access: ProjectAccess, in transaction: PostgresTransaction) async throws -> (latest: UInt32, latestHash: [UInt8]) {
        let rows = try await transaction.query("""
            SELECT p.latest_version, coalesce(v.hash, ''::bytea) FROM projects p
            LEFT JOIN versions v ON v.project_id = p.id AND v.number = p.latest_version
            WHERE p.id = \(access.id) FOR UPDATE OF p
            """)
        guard let row = rows.first else { throw notFound(access.key) }
        let (latest, hash) = try row.decode(Int32.self, [UInt8].self)
        return (UInt32(clamping: latest), hash)
    }

    static func nothingToCommit(_ latest: UInt32) -> RPCError {
        RPCError(
            code: .failedPrecondition, message: "nothing to commit: the draft equals version \(latest)",
            details: [.preconditionFailure(Google_Rpc_PreconditionFailure(violations: [
                .init(type: "NOTHING_TO_COMMIT", subject: "version/\(latest)", description_p: "the draft equals the latest version"),
            ]))])
    }

    /// Writes `draft` (whose effective configuration is `config`, accepted by `verdict`) as
    /// the version after `latest` and makes it the project's newest; records it in `log`.
    /// The caller holds the project row (`lockProject`) and has stored the draft.
    func insertVersion(
        _ access: ProjectAccess, after latest: (number: UInt32, hash: [UInt8]), message: String, draft: Draft,
        config: EffectiveConfig, verdict: Verdict, rolledBackFrom: UInt32 = 0, log: ProjectChanges,
        in transaction: PostgresTransaction
    ) async throws -> Stb_Project_V1_Version {
        let caller = log.caller
        let number = Int32(clamping: Int64(latest.number) + 1)
        let rows = try await transaction.query("""
            INSERT INTO versions (project_id, number, parent, message, canonical, selection, hash, catalog_revision,
                                  rules_revision, valid, author, author_id, rolled_back_from)
            VALUES (\(access.id), \(number), \(Int32(clamping: latest.number)), \(message), \(config.canonical),
                    \(PostgresJSON(draft.json.canonicalText)), \(config.hash), \(Int64(clamping: verdict.catalogRevision)),
                    \(Int64(clamping: verdict.rulesRevision)), \(verdict.valid), \(caller.name), \(caller.subject),
                    \(Int32(clamping: rolledBackFrom)))
            RETURNING \(unescaped: Self.versionColumns(canonical: true))
            """)
        guard let row = rows.first else { throw Self.notFound(access.key) }
        let version = try Self.version(row, projectKey: access.key)
        _ = try await transaction.query(
            "UPDATE projects SET latest_version = \(number), updated_at = now() WHERE id = \(access.id)")
        log.record((access.id, access.key), entity: "version", key: String(version.number), action: .created,
                   before: nil, after: Self.versionJSON(version), oldHash: latest.hash, newHash: version.hash_p)
        return version
    }

    // MARK: - CommitVersion

    public func commitVersion(_ request: Stb_Project_V1_CommitVersionRequest, context: ServerContext) async throws -> Stb_Project_V1_Version {
        let caller = context.caller
        var problems: [String] = []
        if request.message.count > Self.maxMessageLength { problems.append("message: at most \(Self.maxMessageLength) characters") }
        try check(problems)
        let access = try await access(caller, request.projectKey, least: .editor, changing: true)
        let catalog = try catalog()
        let metadata = Metadata().forwardingAuthorization(from: context.metadata)
        let version = try await change(caller) { transaction, log in
            let latest = try await Self.lockProject(access, in: transaction)
            let draft = try await Self.loadDraft(access.id, in: transaction)
            let config = EffectiveConfig(catalog: catalog, draft: draft)
            if latest.latest > 0 && config.hash == latest.latestHash { throw Self.nothingToCommit(latest.latest) }
            // Today's rules decide, not the verdict stored with the draft.
            let verdict = try await evaluate(draft, catalog: catalog, metadata: metadata)
            guard verdict.valid else { throw Self.refused(verdict, what: "the draft") }
            try await storeVerdict(access.id, verdict: verdict, hash: config.hash, draftChanged: false, in: transaction)
            return try await insertVersion(
                access, after: (latest.latest, latest.latestHash), message: request.message, draft: draft, config: config,
                verdict: verdict, log: log, in: transaction)
        }
        invalidateConfig(access.id)
        return version
    }

    // MARK: - ListVersions, GetVersion

    public func listVersions(_ request: Stb_Project_V1_ListVersionsRequest, context: ServerContext) async throws -> Stb_Project_V1_ListVersionsResponse {
        let access = try await access(context.caller, request.projectKey)
        let page = try Page(request.page)
        return try await withIdentity(context.caller) { transaction in
            // Newest first: the page token is the last number shown, the next page the older ones.
            let rows = try await transaction.query("""
                SELECT \(unescaped: Self.versionColumns(canonical: false)), count(*) OVER () AS total FROM versions
                WHERE project_id = \(access.id) AND (\(page.after) = 0 OR number < \(page.after))
                ORDER BY number DESC LIMIT \(page.size)
                """)
            let versions = try rows.map { try Self.version($0, projectKey: access.key) }
            return Stb_Project_V1_ListVersionsResponse(
                versions: versions, page: try page.info(rows, lastID: versions.last.map { Int64($0.number) }))
        }
    }

    public func getVersion(_ request: Stb_Project_V1_GetVersionRequest, context: ServerContext) async throws -> Stb_Project_V1_Version {
        guard request.number > 0 else { throw invalidArgument(["number: required (versions are numbered from 1)"]) }
        let access = try await access(context.caller, request.projectKey)
        return try await withIdentity(context.caller) { transaction in
            try await Self.loadVersion(request.number, of: access, canonical: true, in: transaction)
        }
    }

    // MARK: - DiffVersions

    /// One side of a difference: version `number` (its stored canonical form, parsed only
    /// when the other side's hash differs), or the draft at today's catalog for 0.
    func diffSide(
        _ number: UInt32, of access: ProjectAccess, catalog: ProjectCatalog, in transaction: PostgresTransaction
    ) async throws -> (canonical: String?, values: [String: JSONValue]?, hash: [UInt8]) {
        if number == 0 {
            let config = EffectiveConfig(catalog: catalog, draft: try await Self.loadDraft(access.id, in: transaction))
            return (nil, Self.includedValues(config), config.hash)
        }
        let version = try await Self.loadVersion(number, of: access, canonical: true, in: transaction)
        return (version.canonicalJson, nil, version.hash_p)
    }

    /// The included options of an effective configuration, by key, with their values.
    static func includedValues(_ config: EffectiveConfig) -> [String: JSONValue] {
        var values: [String: JSONValue] = [:]
        values.reserveCapacity(config.catalog.options.count)
        for key in config.catalog.options.keys { if let entry = config.entry(key), entry.included { values[key] = entry.value } }
        return values
    }

    /// Options added, removed and changed from `from` to `to`, each sorted by key.
    static func difference(from: [String: JSONValue], to: [String: JSONValue]) -> Stb_Project_V1_DiffVersionsResponse {
        var response = Stb_Project_V1_DiffVersionsResponse()
        for (key, old) in from {
            if let new = to[key] {
                if new != old {
                    response.changed.append(.init(key: key, fromJson: old.canonicalText, toJson: new.canonicalText))
                }
            } else {
                response.removed.append(.init(key: key, fromJson: old.canonicalText, toJson: ""))
            }
        }
        for (key, new) in to where from[key] == nil {
            response.added.append(.init(key: key, fromJson: "", toJson: new.canonicalText))
        }
        response.added.sort { $0.key < $1.key }
        response.removed.sort { $0.key < $1.key }
        response.changed.sort { $0.key < $1.key }
        return response
    }

    public func diffVersions(_ request: Stb_Project_V1_DiffVersionsRequest, context: ServerContext) async throws -> Stb_Project_V1_DiffVersionsResponse {
        let access = try await access(context.caller, request.projectKey)
        let catalog = try catalog()
        let (from, to) = try await withIdentity(context.caller) { transaction in
            (try await diffSide(request.from, of: access, catalog: catalog, in: transaction),
             try await diffSide(request.to, of: access, catalog: catalog, in: transaction))
        }
        var response = Stb_Project_V1_DiffVersionsResponse()
        // The same hash is the same configuration: nothing to parse.
        if from.hash != to.hash {
            response = Self.difference(
                from: try from.values ?? Self.parsedValues(from.canonical ?? "{}"),
                to: try to.values ?? Self.parsedValues(to.canonical ?? "{}"))
        }
        response.fromHash = from.hash
        response.toHash = to.hash
        return response
    }

    /// A stored canonical form's members: every included option's value.
    static func parsedValues(_ canonical: String) throws -> [String: JSONValue] {
        guard let values = try JSONValue.parse(canonical).objectValue else {
            throw RPCError(code: .internal, message: "a stored version cannot be read")
        }
        return values
    }

    // MARK: - Rollback

    /// FAILED_PRECONDITION for restoring `version` when today's catalog lacks some of its
    /// options (MISSING_OPTION, one per option) or today's rules refuse it (RULE_VIOLATION).
    static func rollbackRefused(_ verdict: Verdict, missing: [String], version: UInt32) -> RPCError {
        let what = "rolling back to version \(version)"
        guard !missing.isEmpty else { return refused(verdict, what: what) }
        let ruleErrors = verdict.errors.filter { $0.constraint != "missing" }
        var violations = missing.prefix(100).map {
            Google_Rpc_PreconditionFailure.Violation(
                type: "MISSING_OPTION", subject: $0, description_p: "option \(quoted($0)) is no longer in the catalog")
        }
        if !ruleErrors.isEmpty {
            let rules = Verdict(valid: false, violations: ruleErrors, catalogRevision: verdict.catalogRevision, rulesRevision: verdict.rulesRevision)
            for case .preconditionFailure(let failure) in refused(rules, what: what).details { violations += failure.violations }
        }
        let listed = missing.prefix(20).map(quoted).joined(separator: ", ") + (missing.count > 20 ? ", …" : "")
        let rules = ruleErrors.isEmpty ? "" : "; it also breaks \(ruleErrors.count) rule\(ruleErrors.count == 1 ? "" : "s")"
        return RPCError(
            code: .failedPrecondition,
            message: "\(what) is refused: the catalog no longer has \(missing.count == 1 ? "option" : "options") \(listed)\(rules)",
            details: [.preconditionFailure(Google_Rpc_PreconditionFailure(violations: violations)),
                      .errorInfo(reason: "MISSING_OPTION", metadata: ["missing": String(missing.count), "violations": String(ruleErrors.count)])])
    }

    /// Restores version `to`'s settings as the draft, re-validated against today's catalog
    /// and rules, and commits them as a new version naming `to`. When the newest version
    /// already has that configuration, only the draft's uncommitted edits are dropped and
    /// the newest version is returned.
    public func rollback(_ request: Stb_Project_V1_RollbackRequest, context: ServerContext) async throws -> Stb_Project_V1_Version {
        let caller = context.caller
        var problems: [String] = []
        if request.to == 0 { problems.append("to: required (the version to restore)") }
        if request.message.count > Self.maxMessageLength { problems.append("message: at most \(Self.maxMessageLength) characters") }
        try check(problems)
        let access = try await access(caller, request.projectKey, least: .editor, changing: true)
        let catalog = try catalog()
        let metadata = Metadata().forwardingAuthorization(from: context.metadata)
        let version = try await change(caller) { transaction, log in
            let latest = try await Self.lockProject(access, in: transaction)
            guard let number = Int32(exactly: request.to) else { throw Self.versionNotFound(request.to, access.key) }
            let rows = try await transaction.query(
                "SELECT selection::text FROM versions WHERE project_id = \(access.id) AND number = \(number)")
            guard let row = rows.first else { throw Self.versionNotFound(request.to, access.key) }
            let restored = Draft(json: try JSONValue.parse(try row.decode(0, as: String.self)))
            let old = try await Self.loadDraft(access.id, in: transaction)
            let oldConfig = EffectiveConfig(catalog: catalog, draft: old)
            let config = EffectiveConfig(catalog: catalog, draft: restored)
            if config.hash == latest.latestHash && old == restored { throw Self.nothingToCommit(latest.latest) }
            // Today's catalog and rules decide whether the old selection still stands.
            let verdict = try await evaluate(restored, catalog: catalog, metadata: metadata)
            let missing = restored.missing(in: catalog)
            guard verdict.valid && missing.isEmpty else {
                throw Self.rollbackRefused(verdict, missing: missing, version: request.to)
            }
            try await Self.storeDraft(access.id, from: old, to: restored, in: transaction)
            try await storeVerdict(access.id, verdict: verdict, hash: config.hash, draftChanged: old != restored, in: transaction)
            if old != restored {
                let (before, after) = Self.draftChange(from: old, to: restored)
                log.record((access.id, access.key), entity: "options", action: .updated, before: before, after: after,
                           oldHash: oldConfig.hash, newHash: config.hash)
            }
            // The newest version already is this configuration: only the draft's
            // uncommitted edits go, and no version is added.
            if config.hash == latest.latestHash {
                return try await Self.loadVersion(latest.latest, of: access, canonical: true, in: transaction)
            }
            let message = request.message.isEmpty ? "Roll back to version \(request.to)" : request.message
            return try await insertVersion(
                access, after: (latest.latest, latest.latestHash), message: message, draft: restored, config: config,
                verdict: verdict, rolledBackFrom: request.to, log: log, in: transaction)
        }
        invalidateConfig(access.id)
        return version
    }
}
