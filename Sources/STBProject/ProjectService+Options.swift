import Logging
import Synchronization
import STBJSON
import STBMessages
import STBOptionValues
import STBPostgres
import STBRPC
import STBService

/// The draft's options: `SetOptions` (checked by the rules service before anything is
/// written) and `GetProjectConfig`.
extension ProjectService {
    /// The most changes one `SetOptions` takes.
    static let maxChanges = 10_000

    /// Checks `changes` against the catalog: INVALID_ARGUMENT naming each bad field.
    static func validate(_ changes: [Stb_Project_V1_OptionChange], catalog: ProjectCatalog, at path: String) throws -> [(String, Stb_Project_V1_OptionChange.OneOf_Change)] {
        var problems: [String] = []
        var seen = Set<String>()
        var valid: [(String, Stb_Project_V1_OptionChange.OneOf_Change)] = []
        if changes.count > maxChanges { problems.append("\(path): at most \(maxChanges) changes") }
        for (index, change) in changes.enumerated() {
            let at = "\(path)[\(index)]"
            guard !change.key.isEmpty else {
                problems.append("\(at).key: required")
                continue
            }
            guard let option = catalog.options[change.key] else {
                problems.append("\(at).key: unknown option \(quoted(change.key))")
                continue
            }
            if !seen.insert(change.key).inserted { problems.append("\(at).key: \(quoted(change.key)) is changed twice") }
            guard var kind = change.change else {
                problems.append("\(at): set one of include, value_json, reset, reset_value")
                continue
            }
            switch kind {
            case .valueJson(let text):
                guard option.editable else {
                    problems.append("\(at).value_json: option \(quoted(change.key)) is not editable")
                    continue
                }
                do {
                    let typed = try option.type.value(fromJSON: try JSONValue.parse(text))
                    guard CanonicalJSON.isExact(typed.json) else {
                        problems.append("\(at).value_json: integers beyond ±\(JSONValue.jcsMaxSafeInteger) cannot be hashed exactly (RFC 8785)")
                        continue
                    }
                    let broken = option.constraints.violations(of: typed)
                    if let first = broken.first {
                        problems.append("\(at).value_json: \(first.message)")
                        continue
                    }
                    kind = .valueJson(option.constraints.canonical(typed).json.canonicalText)
                } catch let problem as OptionValueProblem {
                    problems.append("\(at).value_json: \(problem.message)")
                    continue
                } catch {
                    problems.append("\(at).value_json: not JSON")
                    continue
                }
            case .reset(let on), .resetValue(let on):
                if !on { problems.append("\(at): reset and reset_value take true") }
            case .include:
                break
            }
            valid.append((change.key, kind))
        }
        try check(problems)
        return valid
    }

    /// `draft` with `changes` applied.
    static func apply(_ changes: [(String, Stb_Project_V1_OptionChange.OneOf_Change)], to draft: Draft) -> Draft {
        var draft = draft
        for (key, change) in changes {
            var setting = draft.settings[key] ?? OptionSetting()
            switch change {
            case .include(let included): setting.included = included
            case .valueJson(let text): setting.value = try? JSONValue.parse(text)
            case .reset: setting = OptionSetting()
            case .resetValue: setting.value = nil
            }
            draft.settings[key] = setting.isEmpty ? nil : setting
        }
        return draft
    }

    /// The draft's stored options.
    static func loadDraft(_ projectID: Int64, in transaction: PostgresTransaction) async throws -> Draft {
        let rows = try await transaction.query("SELECT option_key, included, value::text FROM project_options WHERE project_id = \(projectID)")
        var draft = Draft()
        draft.settings.reserveCapacity(rows.count)
        for row in rows {
            let (key, included, value) = try row.decode(String.self, Bool?.self, String?.self)
            draft.settings[key] = OptionSetting(included: included, value: try value.map { try JSONValue.parse($0) })
        }
        return draft
    }

    /// Writes the options whose setting differs between `old` and `new`.
    static func storeDraft(_ projectID: Int64, from old: Draft, to new: Draft, in transaction: PostgresTransaction) async throws {
        var statements: [PostgresQuery] = []
        for key in Set(old.settings.keys).union(new.settings.keys) where old.settings[key] != new.settings[key] {
            if let setting = new.settings[key] {
                statements.append("""
                    INSERT INTO project_options (project_id, option_key, included, value)
                    VALUES (\(projectID), \(key), \(setting.included), \(setting.value.map { PostgresJSON($0.canonicalText) }))
                    ON CONFLICT (project_id, option_key) DO UPDATE SET included = EXCLUDED.included, value = EXCLUDED.value
                    """)
            } else {
                statements.append("DELETE FROM project_options WHERE project_id = \(projectID) AND option_key = \(key)")
            }
        }
        var start = 0
        while start < statements.count {
            let end = min(start + 1000, statements.count)
            _ = try await transaction.pipeline(Array(statements[start..<end]))
            start = end
        }
    }

    /// The audit JSON of what changed between two drafts: each changed option's setting
    /// before and after.
    static func draftChange(from old: Draft, to new: Draft) -> (before: JSONValue, after: JSONValue) {
        var before: [String: JSONValue] = [:]
        var after: [String: JSONValue] = [:]
        for key in Set(old.settings.keys).union(new.settings.keys) where old.settings[key] != new.settings[key] {
            before[key] = old.settings[key]?.json ?? .null
            after[key] = new.settings[key]?.json ?? .null
        }
        return (.object(before), .object(after))
    }

    // MARK: - Evaluation

    /// What the rules service says of a draft, with options the catalog no longer has as
    /// violations of their own.
    struct Verdict: Sendable {
        var valid: Bool
        var violations: [Stb_Rules_V1_Violation]
        var catalogRevision: UInt64
        var rulesRevision: UInt64

        var errors: [Stb_Rules_V1_Violation] { violations.filter { $0.severity != .warning } }
        var warnings: [Stb_Rules_V1_Violation] { violations.filter { $0.severity == .warning } }
    }

    /// Evaluates `draft` with the rules service, as `metadata`'s caller (a user's forwarded
    /// token, or the service account's credentials when empty). With `project`, the
    /// selection goes by difference from the project's last evaluated one when the rules
    /// service still holds it (`base_selection_hash`), whole otherwise.
    func evaluate(_ draft: Draft, catalog: ProjectCatalog, metadata: Metadata, project: Int64? = nil) async throws -> Verdict {
        let base = project.flatMap { id in state.withLock { $0.ruleBases[id] } }
        var response: Stb_Rules_V1_EvaluateResponse?
        if let base, base.catalogRevision == catalog.revision {
            let request = Stb_Rules_V1_EvaluateRequest(options: draft.ruleChoices(in: catalog, from: base.draft), baseSelectionHash: base.hash)
            do {
                response = try await callEvaluate(request, metadata: metadata)
            } catch let error as RPCError where error.code == .failedPrecondition {
                response = nil  // the base was evicted: send the whole selection
            }
        }
        let answer: Stb_Rules_V1_EvaluateResponse
        if let response {
            answer = response
        } else {
            answer = try await callEvaluate(Stb_Rules_V1_EvaluateRequest(options: draft.ruleChoices(in: catalog)), metadata: metadata)
        }
        if let project, !answer.selectionHash.isEmpty {
            state.withLock { state in
                if state.ruleBases.count > 100_000 { state.ruleBases.removeAll() }
                state.ruleBases[project] = RuleBase(hash: answer.selectionHash, draft: draft, catalogRevision: catalog.revision)
            }
        }
        rulesChanged(revision: answer.rulesRevision)
        let rulesRevision = state.withLock { $0.rulesRevision }
        var violations = answer.violations
        let missing = draft.missing(in: catalog)
        for key in missing {
            violations.append(Self.missingOption(key, draft.settings[key]))
        }
        return Verdict(valid: answer.valid && missing.isEmpty, violations: violations, catalogRevision: catalog.revision, rulesRevision: rulesRevision)
    }

    private func callEvaluate(_ request: Stb_Rules_V1_EvaluateRequest, metadata: Metadata) async throws -> Stb_Rules_V1_EvaluateResponse {
        do {
            return try await rules.unary(Stb_Rules_V1_Rules.evaluate, request: request, metadata: metadata, timeout: .seconds(10))
        } catch let error as RPCError where error.code == .unavailable || error.code == .deadlineExceeded {
            throw RPCError(code: .unavailable, message: "the rules service cannot check the selection now; retry shortly")
        } catch let error as RPCError where error.code == .permissionDenied || error.code == .unauthenticated {
            throw error
        } catch let error as RPCError where error.code == .failedPrecondition && !request.baseSelectionHash.isEmpty {
            throw error
        } catch let error as RPCError {
            logger.warning("the rules service refused an evaluation", metadata: ["code": "\(error.code)", "error": "\(error.message)"])
            throw RPCError(code: .unavailable, message: "the rules service could not check the selection; retry shortly")
        }
    }

    static func missingOption(_ key: String, _ setting: OptionSetting?) -> Stb_Rules_V1_Violation {
        Stb_Rules_V1_Violation(
            ruleKey: "option:\(key)/missing", type: .unspecified, severity: .error,
            message: "option \(quoted(key)) is no longer in the catalog",
            references: [Stb_Rules_V1_Reference(optionKey: key, included: setting?.included ?? false, valueJson: setting?.value?.canonicalText ?? "")],
            explanation: "\(key) is set by the project but the catalog no longer has it", constraint: "missing")
    }

    /// FAILED_PRECONDITION listing each error-severity violation (rule, message, the
    /// options it refers to with their values).
    static func refused(_ verdict: Verdict, what: String) -> RPCError {
        let errors = verdict.errors
        let violations = errors.prefix(100).map { violation in
            let references = violation.references.map { reference in
                "\(reference.optionKey)=\(reference.included ? (reference.valueJson.isEmpty ? "included" : reference.valueJson) : "excluded")"
            }.joined(separator: ", ")
            let text = [violation.message, violation.explanation].filter { !$0.isEmpty }.joined(separator: ": ")
            return Google_Rpc_PreconditionFailure.Violation(
                type: "RULE_VIOLATION", subject: violation.ruleKey,
                description_p: references.isEmpty ? text : "\(text) [\(references)]")
        }
        let first = errors.first.map { ": \($0.ruleKey): \($0.message.isEmpty ? $0.explanation : $0.message)" } ?? ""
        return RPCError(
            code: .failedPrecondition,
            message: "\(what) breaks \(errors.count) rule\(errors.count == 1 ? "" : "s")\(first)",
            details: [.preconditionFailure(Google_Rpc_PreconditionFailure(violations: Array(violations))),
                      .errorInfo(reason: "RULE_VIOLATION", metadata: ["violations": String(errors.count)])])
    }

    static func encodeViolations(_ violations: [Stb_Rules_V1_Violation]) -> [UInt8] {
        Stb_Rules_V1_ViolationList(violations: violations).serializedBytes()
    }

    static func decodeViolations(_ bytes: [UInt8]) -> [Stb_Rules_V1_Violation] {
        guard !bytes.isEmpty else { return [] }
        return (try? Stb_Rules_V1_ViolationList(serializedBytes: bytes))?.violations ?? []
    }

    // MARK: - SetOptions

    public func setOptions(_ request: Stb_Project_V1_SetOptionsRequest, context: ServerContext) async throws -> Stb_Project_V1_SetOptionsResponse {
        let caller = context.caller
        let access = try await access(caller, request.projectKey, least: .editor, changing: true)
        let catalog = try catalog()
        let changes = try Self.validate(request.changes, catalog: catalog, at: "changes")
        let metadata = Metadata().forwardingAuthorization(from: context.metadata)
        let (response, stored) = try await change(caller) { transaction, log -> (Stb_Project_V1_SetOptionsResponse, (Int64, Draft)?) in
            let current = try await transaction.query(
                "SELECT draft_hash, draft_revision FROM projects WHERE id = \(access.id) FOR UPDATE")
            guard let row = current.first else { throw Self.notFound(access.key) }
            let (oldHash, revision) = try row.decode([UInt8].self, Int64.self)
            if !request.expectedHash.isEmpty && request.expectedHash != oldHash {
                throw RPCError(code: .aborted, message: "the draft changed since the expected hash; read it again and retry")
            }
            let old = try await cachedDraft(access.id, revision: revision, in: transaction)
            let new = Self.apply(changes, to: old)
            guard new != old else {
                return (Stb_Project_V1_SetOptionsResponse(hash_p: oldHash, warnings: [], changed: false), nil)
            }
            let config = EffectiveConfig(catalog: catalog, draft: new)
            let verdict = try await evaluate(new, catalog: catalog, metadata: metadata, project: access.id)
            guard verdict.valid else { throw Self.refused(verdict, what: "this change") }
            try await Self.storeDraft(access.id, from: old, to: new, in: transaction)
            try await storeVerdict(access.id, verdict: verdict, hash: config.hash, draftChanged: true, in: transaction)
            let (before, after) = Self.draftChange(from: old, to: new)
            log.record((access.id, access.key), entity: "options", action: .updated, before: before, after: after,
                       oldHash: oldHash, newHash: config.hash)
            return (Stb_Project_V1_SetOptionsResponse(hash_p: config.hash, warnings: verdict.warnings, changed: true), (revision + 1, new))
        }
        invalidateConfig(access.id)
        // Kept only once committed: the next change of this project starts from it.
        if let (revision, draft) = stored { rememberDraft(access.id, revision: revision, draft: draft) }
        return response
    }

    /// The project's draft at `revision` (its `draft_revision`, read under the project
    /// row's lock): from memory when the last committed change here left it, else loaded.
    func cachedDraft(_ projectID: Int64, revision: Int64, in transaction: PostgresTransaction) async throws -> Draft {
        if let cached = state.withLock({ $0.drafts[projectID] }), cached.revision == revision { return cached.draft }
        let draft = try await Self.loadDraft(projectID, in: transaction)
        rememberDraft(projectID, revision: revision, draft: draft)
        return draft
    }

    func rememberDraft(_ projectID: Int64, revision: Int64, draft: Draft) {
        state.withLock { state in
            if state.drafts.count > 10_000 { state.drafts.removeAll() }
            state.drafts[projectID] = (revision, draft)
        }
    }

    /// Records the draft's hash and validity on the project row.
    func storeVerdict(_ projectID: Int64, verdict: Verdict, hash: [UInt8], draftChanged: Bool, in transaction: PostgresTransaction) async throws {
        _ = try await transaction.query("""
            UPDATE projects SET draft_hash = \(hash), valid = \(verdict.valid), violations = \(Self.encodeViolations(verdict.violations)),
                catalog_revision = \(Int64(verdict.catalogRevision)), rules_revision = \(Int64(verdict.rulesRevision)),
                draft_revision = draft_revision + \(draftChanged ? 1 : 0), updated_at = now()
            WHERE id = \(projectID)
            """)
    }

    // MARK: - GetProjectConfig

    public func getProjectConfig(_ request: Stb_Project_V1_GetProjectConfigRequest, context: ServerContext) async throws -> Stb_Project_V1_ProjectConfig {
        let access = try await access(context.caller, request.projectKey)
        let catalog = try catalog()
        let config: Stb_Project_V1_ProjectConfig
        let (cached, generation) = state.withLock { ($0.configs[access.id], $0.generations[access.id, default: 0]) }
        if let cached, cached.catalogRevision == catalog.revision {
            config = cached.config
        } else if !request.knownHash.isEmpty, try await storedHashMatches(access, request.knownHash, catalog: catalog, caller: context.caller) {
            // Not built here yet, but the row's hash (computed at this catalog) says the
            // caller's copy is current: no tree to build.
            return Stb_Project_V1_ProjectConfig(unchanged: true, projectKey: access.key, hash_p: request.knownHash)
        } else {
            config = try await withIdentity(context.caller) { transaction in
                try await buildConfig(access, catalog: catalog, in: transaction)
            }
            state.withLock { state in
                // Kept only when nothing changed since the build started.
                guard state.catalog?.revision == catalog.revision, state.generations[access.id, default: 0] == generation else { return }
                state.configs[access.id] = CachedConfig(catalogRevision: catalog.revision, config: config)
                state.ids[access.key] = access.id
            }
        }
        if !request.knownHash.isEmpty && request.knownHash == config.hash_p {
            return Stb_Project_V1_ProjectConfig(unchanged: true, projectKey: access.key, hash_p: config.hash_p)
        }
        return config
    }

    /// Whether the project row's draft hash, computed at the current catalog, is `known`.
    func storedHashMatches(_ access: ProjectAccess, _ known: [UInt8], catalog: ProjectCatalog, caller: CallerIdentity) async throws -> Bool {
        try await withIdentity(caller) { transaction in
            let rows = try await transaction.query("SELECT draft_hash, catalog_revision FROM projects WHERE id = \(access.id)")
            guard let row = rows.first else { return false }
            let (hash, revision) = try row.decode([UInt8].self, Int64.self)
            return revision == Int64(catalog.revision) && hash == known
        }
    }

    /// The draft's configuration: the catalog tree with each option's effective state.
    func buildConfig(_ access: ProjectAccess, catalog: ProjectCatalog, in transaction: PostgresTransaction) async throws -> Stb_Project_V1_ProjectConfig {
        let rows = try await transaction.query(
            "SELECT valid, violations, catalog_revision, rules_revision FROM projects WHERE id = \(access.id)")
        guard let row = rows.first else { throw Self.notFound(access.key) }
        let (valid, violations, catalogRevision, rulesRevision) = try row.decode(Bool.self, [UInt8].self, Int64.self, Int64.self)
        let draft = try await Self.loadDraft(access.id, in: transaction)
        var config = Self.tree(catalog: catalog, draft: draft)
        config.projectKey = access.key
        config.valid = valid
        config.violations = Self.decodeViolations(violations)
        config.catalogRevision = UInt64(catalogRevision)
        config.rulesRevision = UInt64(rulesRevision)
        return config
    }

    /// The catalog tree with `draft`'s effective values, its canonical form and hash.
    static func tree(catalog: ProjectCatalog, draft: Draft) -> Stb_Project_V1_ProjectConfig {
        let effective = EffectiveConfig(catalog: catalog, draft: draft)
        var config = Stb_Project_V1_ProjectConfig()
        config.modules.reserveCapacity(catalog.modules.count)
        for module in catalog.modules {
            var groups: [Stb_Project_V1_ProjectGroup] = []
            for group in module.groups {
                var options: [Stb_Project_V1_ProjectOption] = []
                options.reserveCapacity(group.optionKeys.count)
                for key in group.optionKeys {
                    guard let option = catalog.options[key], let entry = effective.entry(key) else { continue }
                    options.append(Stb_Project_V1_ProjectOption(
                        key: key, name: option.name, type: option.type.rawValue, included: entry.included,
                        includedSource: entry.includedOverridden ? .override : .default, valueJson: entry.value.canonicalText,
                        valueSource: entry.valueOverridden ? .override : .default, defaultJson: option.defaultValue.canonicalText,
                        editable: option.editable, metaJson: option.metaJSON))
                }
                groups.append(Stb_Project_V1_ProjectGroup(key: group.key, name: group.name, options: options))
            }
            config.modules.append(Stb_Project_V1_ProjectModule(key: module.key, name: module.name, groups: groups))
        }
        config.hash_p = effective.hash
        config.canonicalJson = effective.canonical
        config.missingOptions = draft.missing(in: catalog)
        return config
    }
}
