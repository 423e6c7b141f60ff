import STBJSON
import STBMessages
import STBPostgres
import STBRPC
import STBService

/// Signoffs bound to a committed version's hash, and the release status they add up to.
extension ProjectService {
    static let signoffColumns = """
        version, aspect, hash, signer, signer_id, notes, (extract(epoch from signed_at) * 1000)::bigint
        """

    static func signoffRecord(_ row: PostgresRow, projectKey: String) throws -> Stb_Project_V1_SignoffRecord {
        Stb_Project_V1_SignoffRecord(
            projectKey: projectKey, version: UInt32(clamping: try row.decode(0, as: Int32.self)),
            aspect: try row.decode(1, as: String.self), hash_p: try row.decode(2, as: [UInt8].self),
            signer: try row.decode(3, as: String.self), signerID: try row.decode(4, as: String.self),
            notes: try row.decode(5, as: String.self), signedAtMs: try row.decode(6, as: Int64.self))
    }

    static func signoffJSON(_ record: Stb_Project_V1_SignoffRecord) -> JSONValue {
        .object([
            "version": .integer(Int64(record.version)), "aspect": .string(record.aspect),
            "hash": .string(SHA256.hex(record.hash_p)), "signer": .string(record.signer),
            "signer_id": .string(record.signerID), "notes": .string(record.notes),
        ])
    }

    /// Whether `caller` (a member with `access`) may sign `aspect`: a member role at least
    /// the aspect's `least_role`, or being one of its `user_ids`. Admins and service
    /// accounts sign only as members or named users: a signoff is a person's word.
    static func maySign(_ aspect: Stb_Project_V1_SignoffAspect, caller: CallerIdentity, access: ProjectAccess) -> Bool {
        if aspect.userIds.contains(caller.subject) { return true }
        guard aspect.leastRole != .unspecified, access.memberRole != .unspecified else { return false }
        return access.memberRole.rawValue >= aspect.leastRole.rawValue
    }

    public func signoff(_ request: Stb_Project_V1_SignoffRequest, context: ServerContext) async throws -> Stb_Project_V1_SignoffRecord {
        let caller = context.caller
        var problems: [String] = []
        if request.version == 0 { problems.append("version: required (a committed version's number)") }
        if request.aspect.isEmpty { problems.append("aspect: required") }
        if request.notes.count > 10_000 { problems.append("notes: at most 10000 characters") }
        try check(problems)
        let access = try await access(caller, request.projectKey, changing: true)
        let record = try await change(caller) { transaction, log in
            let aspects = try await loadAspects(access.id, in: transaction)
            guard let aspect = aspects.first(where: { $0.name == request.aspect }) else {
                let declared = aspects.isEmpty ? "none is declared" : "declared: " + aspects.map(\.name).joined(separator: ", ")
                throw invalidArgument(["aspect: \(quoted(request.aspect)) is not a signoff aspect of \(quoted(access.key)) (\(declared))"])
            }
            guard Self.maySign(aspect, caller: caller, access: access) else {
                let who = aspect.leastRole == .unspecified ? "" : "the project role \(Self.roleName(aspect.leastRole)) or "
                throw RPCError(code: .permissionDenied, message: "signing \(quoted(aspect.name)) needs \(who)being named for it")
            }
            // Only a committed version of this project can be signed, and the signoff names
            // its hash, never a hash the caller supplies.
            let version = try await Self.loadVersion(request.version, of: access, canonical: false, in: transaction)
            let rows = try await transaction.query("""
                INSERT INTO signoffs (project_id, version, aspect, hash, signer, signer_id, notes)
                VALUES (\(access.id), \(Int32(clamping: version.number)), \(aspect.name), \(version.hash_p), \(caller.name),
                        \(caller.subject), \(request.notes))
                ON CONFLICT (project_id, hash, aspect) DO NOTHING
                RETURNING \(unescaped: Self.signoffColumns)
                """)
            guard let row = rows.first else {
                throw RPCError(
                    code: .alreadyExists,
                    message: "\(quoted(aspect.name)) is already signed for this configuration (version \(version.number)'s hash)")
            }
            let record = try Self.signoffRecord(row, projectKey: access.key)
            log.record((access.id, access.key), entity: "signoff", key: "\(record.version)/\(record.aspect)", action: .created,
                       before: nil, after: Self.signoffJSON(record), newHash: record.hash_p)
            return record
        }
        return record
    }

    /// Signed, missing and stale aspects of a version (0: the newest): only signoffs for
    /// its own hash count, so committing a new configuration starts a new round.
    public func getReleaseStatus(_ request: Stb_Project_V1_GetReleaseStatusRequest, context: ServerContext) async throws -> Stb_Project_V1_ReleaseStatus {
        let access = try await access(context.caller, request.projectKey)
        return try await withIdentity(context.caller) { transaction in
            var number = request.version
            if number == 0 {
                let rows = try await transaction.query("SELECT latest_version FROM projects WHERE id = \(access.id)")
                guard let row = rows.first else { throw Self.notFound(access.key) }
                number = UInt32(clamping: try row.decode(0, as: Int32.self))
                guard number > 0 else {
                    throw RPCError(code: .failedPrecondition, message: "project \(quoted(access.key)) has no committed version yet")
                }
            }
            let version = try await Self.loadVersion(number, of: access, canonical: false, in: transaction)
            let aspects = try await loadAspects(access.id, in: transaction)
            let declared = Set(aspects.map(\.name))
            let current = try await transaction.query("""
                SELECT \(unescaped: Self.signoffColumns) FROM signoffs
                WHERE project_id = \(access.id) AND hash = \(version.hash_p) ORDER BY id
                """)
            // The newest thousand signoffs of other configurations: history, never counted.
            let other = try await transaction.query("""
                SELECT \(unescaped: Self.signoffColumns) FROM signoffs
                WHERE project_id = \(access.id) AND hash <> \(version.hash_p) ORDER BY id DESC LIMIT 1000
                """)
            var status = Stb_Project_V1_ReleaseStatus()
            status.version = version.number
            status.hash_p = version.hash_p
            status.signed = try current.map { try Self.signoffRecord($0, projectKey: access.key) }.filter { declared.contains($0.aspect) }
            status.stale = try other.reversed().map { try Self.signoffRecord($0, projectKey: access.key) }
            let signed = Set(status.signed.map(\.aspect))
            status.missing = aspects.map(\.name).filter { !signed.contains($0) }
            status.released = !aspects.isEmpty && status.missing.isEmpty
            return status
        }
    }
}
