import STBJSON
import Glibc
import Logging
import STBMessages
import STBOptionValues
import STBPostgres
import STBRPC
import STBService

/// Seed imports: validate a document, plan the changes by key, apply them in one transaction.
///
/// The document (services/catalog/seed.schema.json) describes modules with their groups,
/// options, states and transitions. An import:
///
/// 1. parses and validates the whole document (`parse`), collecting every problem with
///    its path (`modules[2].groups[0].options[5].default: "abc" is not an integer`). An
///    invalid document is refused with INVALID_ARGUMENT and, unless `dry_run`, stored in
///    `seeds` as 'rejected' (its own statement: no audit rows, no events, no revision);
/// 2. in the import transaction, takes the seed advisory lock (`lockKey`) so imports run
///    one at a time, and reads the whole current catalog in one round trip;
/// 3. compares the document with it by key (`plan`): created, updated (the entity's
///    `.json` form differs; an option under another module/group is moved), unchanged,
///    and with `prune` deleted (what the document does not mention);
/// 4. applies the plan with set-based statements (`unnest` of ≤1000 rows each), all sent
///    in one pipeline, records every change in the `ChangeSet` with the rows as written,
///    and stores the document as 'applied'.
///
/// A document that changes nothing writes nothing: no seed row, no audit rows, no events,
/// no revision bump. `dry_run` only reads.
struct SeedImporter {
    let service: CatalogService

    /// The transaction-level advisory lock every import takes first ("STB_SEED"): two
    /// imports never plan against the same snapshot, so overlapping documents end
    /// consistent (the second sees the first's result and plans against it). Plain CRUD
    /// calls do not take it; a CRUD change that lands between an import's read and its
    /// writes makes the import fail cleanly (ABORTED, retry) or win by key.
    static let lockKey: Int64 = 0x5354_425F_5345_4544

    /// Problems listed in the error message; the rest are counted.
    static let reportedProblems = 50
    /// Rows per statement when applying.
    static let chunkSize = 1000

    func importSeed(_ request: Stb_Catalog_V1_ImportSeedRequest, caller: CallerIdentity) async throws -> Stb_Catalog_V1_ImportSeedResponse {
        let actor = caller.name
        if let problem = TextLimit.fileName.problem(request.fileName) {
            throw invalidArgument(["file_name: \(problem)"])
        }
        let document: Document
        do {
            document = try Self.parse(request.documentJson)
        } catch {
            if !request.dryRun { await storeRejected(request, actor: actor, problems: error.problems) }
            throw Self.invalid(error.problems)
        }

        if request.dryRun {
            let (catalog, revision) = try await service.pool.withTransaction(isolationLevel: .repeatableRead) { transaction in
                try await Self.load(transaction, lock: false)
            }
            let plan = Self.plan(document, current: catalog, prune: request.prune)
            return Self.response(plan, applied: false, revision: revision, seedID: 0)
        }

        do {
            let response = try await service.change(actor: caller) { transaction, changes in
                let (catalog, revision) = try await Self.load(transaction, lock: true)
                let plan = Self.plan(document, current: catalog, prune: request.prune)
                guard !plan.isEmpty else {
                    return Self.response(plan, applied: false, revision: revision, seedID: 0)
                }
                let (seedID, newRevision) = try await apply(plan, request: request, actor: actor, in: transaction, changes: changes)
                return Self.response(plan, applied: true, revision: newRevision, seedID: seedID)
            }
            if response.applied {
                service.logger.info("seed imported", metadata: [
                    "file": "\(request.fileName)", "actor": "\(actor)", "seed_id": "\(response.seedID)",
                    "revision": "\(response.revision)", "summary": "\(Plan.summaryText(of: response.plan ?? .init()))",
                ])
            }
            return response
        } catch let error as PostgresError where error.code == .uniqueViolation || error.code == .foreignKeyViolation {
            // Only a change made beside the import (not under its lock) can cause these.
            throw RPCError(code: .aborted, message: "the catalog changed while the seed was imported; retry")
        }
    }

    // MARK: - Reading the catalog

    private static let loadQueries: [PostgresQuery] = [
        Module.selectAll(orderedBy: "m.id"), Group.selectAll(orderedBy: "g.id"), Option.selectAll(orderedBy: "o.id"),
        State.selectAll(orderedBy: "s.id"), Transition.selectAll(orderedBy: "t.id"),
        "SELECT revision FROM catalog_revision",
    ]

    /// The whole catalog and its revision, in one round trip (after the lock, when asked).
    static func load(_ transaction: PostgresTransaction, lock: Bool) async throws -> (Catalog, UInt64) {
        var queries: [PostgresQuery] = []
        if lock { queries.append("SELECT pg_advisory_xact_lock(\(lockKey))") }
        queries += loadQueries
        let results = try await transaction.pipeline(queries)
        let base = lock ? 1 : 0
        var catalog = Catalog()
        catalog.modules = try Module.decode(results[base])
        catalog.groups = try Group.decode(results[base + 1])
        catalog.options = try Option.decode(results[base + 2])
        catalog.states = try State.decode(results[base + 3])
        catalog.transitions = try Transition.decode(results[base + 4])
        let revision = try results[base + 5][0].decode(0, as: Int64.self)
        return (catalog, UInt64(revision))
    }

    // MARK: - Applying

    private enum Step {
        case written(EntityKind)
        case deleted(EntityKind)
        case seed
        case revision
    }

    /// Writes the plan (one pipeline), records the changes, stores the document; returns
    /// the seed id and the revision the transaction will commit as.
    private func apply(
        _ plan: Plan, request: Stb_Catalog_V1_ImportSeedRequest, actor: String,
        in transaction: PostgresTransaction, changes: ChangeSet
    ) async throws -> (Int64, UInt64) {
        var queries: [PostgresQuery] = []
        var steps: [Step] = []
        func add(_ step: Step, _ statement: ([[String]]) -> PostgresQuery, _ rows: [[String]]) {
            guard let width = rows.first?.count else { return }
            var start = 0
            while start < rows.count {
                let end = min(start + Self.chunkSize, rows.count)
                queries.append(statement((0..<width).map { column in rows[start..<end].map { $0[column] } }))
                steps.append(step)
                start = end
            }
        }
        // Order matters: parents before children, states before the modules' initial
        // states and the transitions that use them, moves before the groups they leave
        // are deleted, deletions children first.
        add(.written(.module), SQL.insertModules, plan.modules.created.map { [$0.key, $0.name, $0.description_p, String($0.active), $0.metaJson] })
        add(.written(.group), SQL.insertGroups, plan.groups.created.map {
            [$0.moduleKey, $0.key, $0.name, $0.description_p, String($0.position), $0.metaJson]
        })
        add(.written(.group), SQL.updateGroups, plan.groups.updated.map(\.after).map {
            [String($0.id), $0.name, $0.description_p, String($0.position), $0.metaJson]
        })
        func optionRow(_ option: Option) -> [String] {
            [option.moduleKey, option.groupKey, option.name, option.description_p, Validation.typeName(option.type) ?? "",
             option.defaultValue, String(option.editable), String(option.includedByDefault), option.metaJson]
        }
        add(.written(.option), SQL.insertOptions, plan.options.created.map { [$0.key] + optionRow($0) })
        add(.written(.option), SQL.updateOptions, plan.options.updated.map(\.after).map { [String($0.id)] + optionRow($0) })
        add(.written(.state), SQL.insertStates, plan.states.created.map { [$0.moduleKey, $0.name, $0.metaJson] })
        add(.written(.state), SQL.updateStates, plan.states.updated.map(\.after).map { [String($0.id), $0.metaJson] })
        // New modules were inserted without their initial state; now their states exist.
        let moduleUpdates = plan.modules.updated.map(\.after) + plan.modules.created.filter { !$0.initialState.isEmpty }
        add(.written(.module), SQL.updateModules, moduleUpdates.map {
            [$0.key, $0.name, $0.description_p, String($0.active), $0.initialState, $0.metaJson]
        })
        add(.written(.transition), SQL.insertTransitions, plan.transitions.created.map {
            [$0.moduleKey, $0.fromState, $0.event, $0.toState, $0.conditionJson, $0.metaJson]
        })
        add(.written(.transition), SQL.updateTransitions, plan.transitions.updated.map(\.after).map {
            [String($0.id), $0.toState, $0.conditionJson, $0.metaJson]
        })
        add(.deleted(.transition), SQL.deleteTransitions, plan.transitions.deleted.map { [String($0.id)] })
        add(.deleted(.state), SQL.deleteStates, plan.states.deleted.map { [String($0.id)] })
        add(.deleted(.option), SQL.deleteOptions, plan.options.deleted.map { [String($0.id)] })
        add(.deleted(.group), SQL.deleteGroups, plan.groups.deleted.map { [String($0.id)] })
        add(.deleted(.module), SQL.deleteModules, plan.modules.deleted.map { [String($0.id)] })

        queries.append(SQL.insertSeed(request, actor: actor, outcome: "applied", summary: plan.summary))
        steps.append(.seed)
        // Held until commit, so the revision ChangeSet.write bumps is this one plus one.
        queries.append("SELECT revision FROM catalog_revision FOR UPDATE")
        steps.append(.revision)

        let results = try await transaction.pipeline(queries)

        var modules: [String: Module] = [:], groups: [String: Group] = [:], options: [String: Option] = [:]
        var states: [String: State] = [:], transitions: [String: Transition] = [:]
        var deletedModules: [String: Module] = [:], deletedGroups: [String: Group] = [:], deletedOptions: [String: Option] = [:]
        var deletedStates: [String: State] = [:], deletedTransitions: [String: Transition] = [:]
        var seedID: Int64 = 0
        var revision: Int64 = 0
        for (step, rows) in zip(steps, results) {
            switch step {
            case .written(.module): for row in rows { let e = try Module(row: row); modules[e.entityKey] = e }
            case .written(.group): for row in rows { let e = try Group(row: row); groups[e.entityKey] = e }
            case .written(.option): for row in rows { let e = try Option(row: row); options[e.entityKey] = e }
            case .written(.state): for row in rows { let e = try State(row: row); states[e.entityKey] = e }
            case .written(.transition): for row in rows { let e = try Transition(row: row); transitions[e.entityKey] = e }
            case .deleted(.module): for row in rows { let e = try Module(row: row); deletedModules[e.entityKey] = e }
            case .deleted(.group): for row in rows { let e = try Group(row: row); deletedGroups[e.entityKey] = e }
            case .deleted(.option): for row in rows { let e = try Option(row: row); deletedOptions[e.entityKey] = e }
            case .deleted(.state): for row in rows { let e = try State(row: row); deletedStates[e.entityKey] = e }
            case .deleted(.transition): for row in rows { let e = try Transition(row: row); deletedTransitions[e.entityKey] = e }
            case .seed: seedID = try rows[0].decode(0, as: Int64.self)
            case .revision: revision = try rows[0].decode(0, as: Int64.self)
            }
        }

        try record(plan.modules, written: modules, changes: changes)
        try record(plan.groups, written: groups, changes: changes)
        try record(plan.options, written: options, changes: changes)
        try record(plan.states, written: states, changes: changes)
        try record(plan.transitions, written: transitions, changes: changes)
        try recordDeletions(plan.transitions, deletedTransitions, changes)
        try recordDeletions(plan.states, deletedStates, changes)
        try recordDeletions(plan.options, deletedOptions, changes)
        try recordDeletions(plan.groups, deletedGroups, changes)
        try recordDeletions(plan.modules, deletedModules, changes)
        return (seedID, UInt64(revision + 1))
    }

    /// Creations and updates of one kind, with the rows as written.
    private func record<E: SeedEntity>(_ planned: Changes<E>, written: [String: E], changes: ChangeSet) throws {
        for entity in planned.created {
            guard let row = written[entity.entityKey] else { throw Self.raced(E.kind, entity.entityKey) }
            changes.created(row)
        }
        for update in planned.updated {
            guard let row = written[update.after.entityKey] else { throw Self.raced(E.kind, update.after.entityKey) }
            changes.updated(update.before, to: row)
        }
    }

    /// Deletions of one kind, with the rows as they were when deleted.
    private func recordDeletions<E: SeedEntity>(_ planned: Changes<E>, _ deleted: [String: E], _ changes: ChangeSet) throws {
        for entity in planned.deleted {
            guard let row = deleted[entity.entityKey] else { throw Self.raced(E.kind, entity.entityKey) }
            changes.deleted(row)
        }
    }

    /// A planned row was not written: something outside the import changed it meanwhile.
    private static func raced(_ kind: EntityKind, _ key: String) -> RPCError {
        RPCError(code: .aborted, message: "\(kind.rawValue) \(quoted(key)) changed while the seed was imported; retry")
    }

    /// Records a refused document. Best effort: the caller hears about its document's
    /// problems even when this fails.
    private func storeRejected(_ request: Stb_Catalog_V1_ImportSeedRequest, actor: String, problems: [String]) async {
        var summary = problems.prefix(1000).joined(separator: "\n")
        if problems.count > 1000 { summary += "\nand \(problems.count - 1000) more" }
        do {
            _ = try await service.pool.query(SQL.insertSeed(request, actor: actor, outcome: "rejected", summary: summary))
        } catch {
            service.logger.warning("could not record a rejected seed document", metadata: ["error": "\(error)"])
        }
    }

    /// INVALID_ARGUMENT for a document's problems: the first `reportedProblems` listed
    /// (and given as field violations), the rest counted.
    static func invalid(_ problems: [String]) -> RPCError {
        invalidArgument(problems, limit: reportedProblems, preface: "seed document is invalid: ")
    }

    static func response(_ plan: Plan, applied: Bool, revision: UInt64, seedID: Int64) -> Stb_Catalog_V1_ImportSeedResponse {
        Stb_Catalog_V1_ImportSeedResponse(plan: plan.message, applied: applied, revision: revision, seedID: seedID)
    }

    /// The statements, each for up to `chunkSize` rows given as parallel text arrays.
    private enum SQL {
        static func insertModules(_ c: [[String]]) -> PostgresQuery {
            """
            WITH m AS (
                INSERT INTO modules (key, name, description, active, initial_state, meta)
                SELECT u.k, u.n, u.d, u.a::bool, '', u.j::jsonb
                FROM unnest(\(c[0])::text[], \(c[1])::text[], \(c[2])::text[], \(c[3])::text[], \(c[4])::text[]) AS u (k, n, d, a, j)
                RETURNING *)
            \(unescaped: Module.selectWritten)
            """
        }
        static func updateModules(_ c: [[String]]) -> PostgresQuery {
            """
            WITH m AS (
                UPDATE modules AS x SET name = u.n, description = u.d, active = u.a::bool, initial_state = u.s,
                    meta = u.j::jsonb, updated_at = now()
                FROM unnest(\(c[0])::text[], \(c[1])::text[], \(c[2])::text[], \(c[3])::text[], \(c[4])::text[], \(c[5])::text[]) AS u (k, n, d, a, s, j)
                WHERE x.key = u.k
                RETURNING x.*)
            \(unescaped: Module.selectWritten)
            """
        }
        static func insertGroups(_ c: [[String]]) -> PostgresQuery {
            """
            WITH g AS (
                INSERT INTO groups (module_id, key, name, description, position, meta)
                SELECT pm.id, u.k, u.n, u.d, u.p::int4, u.j::jsonb
                FROM unnest(\(c[0])::text[], \(c[1])::text[], \(c[2])::text[], \(c[3])::text[], \(c[4])::text[], \(c[5])::text[]) AS u (mk, k, n, d, p, j)
                JOIN modules pm ON pm.key = u.mk
                RETURNING *)
            \(unescaped: Group.selectWritten)
            """
        }
        static func updateGroups(_ c: [[String]]) -> PostgresQuery {
            """
            WITH g AS (
                UPDATE groups AS x SET name = u.n, description = u.d, position = u.p::int4, meta = u.j::jsonb, updated_at = now()
                FROM unnest(\(c[0])::text[], \(c[1])::text[], \(c[2])::text[], \(c[3])::text[], \(c[4])::text[]) AS u (i, n, d, p, j)
                WHERE x.id = u.i::int8
                RETURNING x.*)
            \(unescaped: Group.selectWritten)
            """
        }
        static func insertOptions(_ c: [[String]]) -> PostgresQuery {
            """
            WITH o AS (
                INSERT INTO options (group_id, key, name, description, type, default_value, editable, included_by_default, meta)
                SELECT pg.id, u.k, u.n, u.d, u.ty, u.v, u.e::bool, u.ib::bool, u.j::jsonb
                FROM unnest(\(c[0])::text[], \(c[1])::text[], \(c[2])::text[], \(c[3])::text[], \(c[4])::text[], \(c[5])::text[], \(c[6])::text[], \(c[7])::text[],
                            \(c[8])::text[], \(c[9])::text[]) AS u (k, mk, gk, n, d, ty, v, e, ib, j)
                JOIN modules pm ON pm.key = u.mk
                JOIN groups pg ON pg.module_id = pm.id AND pg.key = u.gk
                RETURNING *)
            \(unescaped: Option.selectWritten)
            """
        }
        /// Also moves options to their (module, group).
        static func updateOptions(_ c: [[String]]) -> PostgresQuery {
            """
            WITH o AS (
                UPDATE options AS x SET group_id = pg.id, name = u.n, description = u.d, type = u.ty, default_value = u.v,
                    editable = u.e::bool, included_by_default = u.ib::bool, meta = u.j::jsonb, updated_at = now()
                FROM unnest(\(c[0])::text[], \(c[1])::text[], \(c[2])::text[], \(c[3])::text[], \(c[4])::text[], \(c[5])::text[], \(c[6])::text[], \(c[7])::text[],
                            \(c[8])::text[], \(c[9])::text[]) AS u (i, mk, gk, n, d, ty, v, e, ib, j)
                JOIN modules pm ON pm.key = u.mk
                JOIN groups pg ON pg.module_id = pm.id AND pg.key = u.gk
                WHERE x.id = u.i::int8
                RETURNING x.*)
            \(unescaped: Option.selectWritten)
            """
        }
        static func insertStates(_ c: [[String]]) -> PostgresQuery {
            """
            WITH s AS (
                INSERT INTO states (module_id, name, meta)
                SELECT pm.id, u.n, u.j::jsonb
                FROM unnest(\(c[0])::text[], \(c[1])::text[], \(c[2])::text[]) AS u (mk, n, j)
                JOIN modules pm ON pm.key = u.mk
                RETURNING *)
            \(unescaped: State.selectWritten)
            """
        }
        static func updateStates(_ c: [[String]]) -> PostgresQuery {
            """
            WITH s AS (
                UPDATE states AS x SET meta = u.j::jsonb
                FROM unnest(\(c[0])::text[], \(c[1])::text[]) AS u (i, j)
                WHERE x.id = u.i::int8
                RETURNING x.*)
            \(unescaped: State.selectWritten)
            """
        }
        static func insertTransitions(_ c: [[String]]) -> PostgresQuery {
            """
            WITH t AS (
                INSERT INTO transitions (module_id, from_state, event, to_state, condition, meta)
                SELECT pm.id, u.f, u.e, u.t, nullif(u.c, '')::jsonb, u.j::jsonb
                FROM unnest(\(c[0])::text[], \(c[1])::text[], \(c[2])::text[], \(c[3])::text[], \(c[4])::text[], \(c[5])::text[]) AS u (mk, f, e, t, c, j)
                JOIN modules pm ON pm.key = u.mk
                RETURNING *)
            \(unescaped: Transition.selectWritten)
            """
        }
        static func updateTransitions(_ c: [[String]]) -> PostgresQuery {
            """
            WITH t AS (
                UPDATE transitions AS x SET to_state = u.t, condition = nullif(u.c, '')::jsonb, meta = u.j::jsonb, updated_at = now()
                FROM unnest(\(c[0])::text[], \(c[1])::text[], \(c[2])::text[], \(c[3])::text[]) AS u (i, t, c, j)
                WHERE x.id = u.i::int8
                RETURNING x.*)
            \(unescaped: Transition.selectWritten)
            """
        }
        static func deleteTransitions(_ c: [[String]]) -> PostgresQuery {
            """
            WITH t AS (DELETE FROM transitions WHERE id = ANY (\(c[0])::text[]::int8[]) RETURNING *)
            \(unescaped: Transition.selectWritten)
            """
        }
        static func deleteStates(_ c: [[String]]) -> PostgresQuery {
            """
            WITH s AS (DELETE FROM states WHERE id = ANY (\(c[0])::text[]::int8[]) RETURNING *)
            \(unescaped: State.selectWritten)
            """
        }
        static func deleteOptions(_ c: [[String]]) -> PostgresQuery {
            """
            WITH o AS (DELETE FROM options WHERE id = ANY (\(c[0])::text[]::int8[]) RETURNING *)
            \(unescaped: Option.selectWritten)
            """
        }
        static func deleteGroups(_ c: [[String]]) -> PostgresQuery {
            """
            WITH g AS (DELETE FROM groups WHERE id = ANY (\(c[0])::text[]::int8[]) RETURNING *)
            \(unescaped: Group.selectWritten)
            """
        }
        static func deleteModules(_ c: [[String]]) -> PostgresQuery {
            """
            WITH m AS (DELETE FROM modules WHERE id = ANY (\(c[0])::text[]::int8[]) RETURNING *)
            \(unescaped: Module.selectWritten)
            """
        }
        /// Records a document, applied or rejected.
        static func insertSeed(_ request: Stb_Catalog_V1_ImportSeedRequest, actor: String, outcome: String, summary: String) -> PostgresQuery {
            """
            INSERT INTO seeds (file_name, document, sha256, actor, outcome, summary)
            VALUES (\(request.fileName), \(request.documentJson), encode(sha256(convert_to(\(request.documentJson), 'UTF8')), 'hex'),
                    \(actor), \(outcome), \(summary))
            RETURNING id
            """
        }
    }
}
