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

    func importSeed(_ request: Stb_Catalog_V1_ImportSeedRequest, actor: String) async throws -> Stb_Catalog_V1_ImportSeedResponse {
        if let problem = TextLimit.fileName.problem(request.fileName) {
            throw RPCError(code: .invalidArgument, message: "file_name: \(problem)")
        }
        let document: Document
        do {
            document = try Self.parse(request.documentJson)
        } catch {
            if !request.dryRun { await storeRejected(request, actor: actor, problems: error.problems) }
            throw RPCError(code: .invalidArgument, message: Self.invalidMessage(error.problems))
        }

        if request.dryRun {
            let (catalog, revision) = try await service.pool.withTransaction(isolationLevel: .repeatableRead) { transaction in
                try await Self.load(transaction, lock: false)
            }
            let plan = Self.plan(document, current: catalog, prune: request.prune)
            return Self.response(plan, applied: false, revision: revision, seedID: 0)
        }

        do {
            let response = try await service.change(actor: actor) { transaction, changes in
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
        PostgresQuery(sql: "SELECT \(Columns.module) FROM modules m ORDER BY m.id"),
        PostgresQuery(sql: "SELECT \(Columns.group) FROM groups g JOIN modules m ON m.id = g.module_id ORDER BY g.id"),
        PostgresQuery(sql: """
            SELECT \(Columns.option) FROM options o JOIN groups g ON g.id = o.group_id JOIN modules m ON m.id = g.module_id
            ORDER BY o.id
            """),
        PostgresQuery(sql: "SELECT \(Columns.state) FROM states s JOIN modules m ON m.id = s.module_id ORDER BY s.id"),
        PostgresQuery(sql: "SELECT \(Columns.transition) FROM transitions t JOIN modules m ON m.id = t.module_id ORDER BY t.id"),
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
        catalog.modules = try results[base].map(Columns.module)
        catalog.groups = try results[base + 1].map(Columns.group)
        catalog.options = try results[base + 2].map(Columns.option)
        catalog.states = try results[base + 3].map(Columns.state)
        catalog.transitions = try results[base + 4].map(Columns.transition)
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
        func add(_ step: Step, _ sql: String, _ rows: [[String]]) {
            guard let width = rows.first?.count else { return }
            var start = 0
            while start < rows.count {
                let end = min(start + Self.chunkSize, rows.count)
                var bindings = PostgresBindings()
                for column in 0..<width { bindings.append(rows[start..<end].map { $0[column] }) }
                queries.append(PostgresQuery(sql: sql, bindings: bindings))
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

        queries.append(PostgresQuery(sql: SQL.insertSeed, bindings: PostgresBindings(request.fileName, request.documentJson, actor, plan.summary)))
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
            case .written(.module): for row in rows { let e = try Columns.module(row); modules[e.entityKey] = e }
            case .written(.group): for row in rows { let e = try Columns.group(row); groups[e.entityKey] = e }
            case .written(.option): for row in rows { let e = try Columns.option(row); options[e.entityKey] = e }
            case .written(.state): for row in rows { let e = try Columns.state(row); states[e.entityKey] = e }
            case .written(.transition): for row in rows { let e = try Columns.transition(row); transitions[e.entityKey] = e }
            case .deleted(.module): for row in rows { let e = try Columns.module(row); deletedModules[e.entityKey] = e }
            case .deleted(.group): for row in rows { let e = try Columns.group(row); deletedGroups[e.entityKey] = e }
            case .deleted(.option): for row in rows { let e = try Columns.option(row); deletedOptions[e.entityKey] = e }
            case .deleted(.state): for row in rows { let e = try Columns.state(row); deletedStates[e.entityKey] = e }
            case .deleted(.transition): for row in rows { let e = try Columns.transition(row); deletedTransitions[e.entityKey] = e }
            case .seed: seedID = try rows[0].decode(0, as: Int64.self)
            case .revision: revision = try rows[0].decode(0, as: Int64.self)
            }
        }

        try record(plan.modules, written: modules, kind: .module, changes: changes)
        try record(plan.groups, written: groups, kind: .group, changes: changes)
        try record(plan.options, written: options, kind: .option, changes: changes)
        try record(plan.states, written: states, kind: .state, changes: changes)
        try record(plan.transitions, written: transitions, kind: .transition, changes: changes)
        try recordDeletions(plan.transitions, deletedTransitions, .transition, changes)
        try recordDeletions(plan.states, deletedStates, .state, changes)
        try recordDeletions(plan.options, deletedOptions, .option, changes)
        try recordDeletions(plan.groups, deletedGroups, .group, changes)
        try recordDeletions(plan.modules, deletedModules, .module, changes)
        return (seedID, UInt64(revision + 1))
    }

    /// Creations and updates of one kind, with the rows as written.
    private func record<E: SeedEntity>(_ planned: Changes<E>, written: [String: E], kind: EntityKind, changes: ChangeSet) throws {
        for entity in planned.created {
            guard let row = written[entity.entityKey] else { throw Self.raced(kind, entity.entityKey) }
            changes.created(kind, row.entityKey, after: row.json, state: row.catalogEntity)
        }
        for update in planned.updated {
            guard let row = written[update.after.entityKey] else { throw Self.raced(kind, update.after.entityKey) }
            changes.updated(kind, row.entityKey, before: update.before.json, after: row.json, state: row.catalogEntity)
        }
    }

    /// Deletions of one kind, with the rows as they were when deleted.
    private func recordDeletions<E: SeedEntity>(_ planned: Changes<E>, _ deleted: [String: E], _ kind: EntityKind, _ changes: ChangeSet) throws {
        for entity in planned.deleted {
            guard let row = deleted[entity.entityKey] else { throw Self.raced(kind, entity.entityKey) }
            changes.deleted(kind, row.entityKey, before: row.json, state: row.catalogEntity)
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
            _ = try await service.pool.query(PostgresQuery(sql: SQL.insertRejectedSeed, bindings: PostgresBindings(request.fileName, request.documentJson, actor, summary)))
        } catch {
            service.logger.warning("could not record a rejected seed document", metadata: ["error": "\(error)"])
        }
    }

    static func invalidMessage(_ problems: [String]) -> String {
        var message = "seed document is invalid: " + problems.prefix(reportedProblems).joined(separator: "; ")
        if problems.count > reportedProblems { message += "; and \(problems.count - reportedProblems) more" }
        return message
    }

    static func response(_ plan: Plan, applied: Bool, revision: UInt64, seedID: Int64) -> Stb_Catalog_V1_ImportSeedResponse {
        Stb_Catalog_V1_ImportSeedResponse(plan: plan.message, applied: applied, revision: revision, seedID: seedID)
    }

    /// The statements, each for up to `chunkSize` rows given as parallel text arrays.
    private enum SQL {
        static let insertModules = """
            WITH m AS (
                INSERT INTO modules (key, name, description, active, initial_state, meta)
                SELECT u.k, u.n, u.d, u.a::bool, '', u.j::jsonb
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u (k, n, d, a, j)
                RETURNING *)
            SELECT \(Columns.module) FROM m
            """
        static let updateModules = """
            WITH m AS (
                UPDATE modules AS x SET name = u.n, description = u.d, active = u.a::bool, initial_state = u.s,
                    meta = u.j::jsonb, updated_at = now()
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u (k, n, d, a, s, j)
                WHERE x.key = u.k
                RETURNING x.*)
            SELECT \(Columns.module) FROM m
            """
        static let insertGroups = """
            WITH g AS (
                INSERT INTO groups (module_id, key, name, description, position, meta)
                SELECT pm.id, u.k, u.n, u.d, u.p::int4, u.j::jsonb
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u (mk, k, n, d, p, j)
                JOIN modules pm ON pm.key = u.mk
                RETURNING *)
            SELECT \(Columns.group) FROM g JOIN modules m ON m.id = g.module_id
            """
        static let updateGroups = """
            WITH g AS (
                UPDATE groups AS x SET name = u.n, description = u.d, position = u.p::int4, meta = u.j::jsonb, updated_at = now()
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u (i, n, d, p, j)
                WHERE x.id = u.i::int8
                RETURNING x.*)
            SELECT \(Columns.group) FROM g JOIN modules m ON m.id = g.module_id
            """
        static let insertOptions = """
            WITH o AS (
                INSERT INTO options (group_id, key, name, description, type, default_value, editable, included_by_default, meta)
                SELECT pg.id, u.k, u.n, u.d, u.ty, u.v, u.e::bool, u.ib::bool, u.j::jsonb
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                            $9::text[], $10::text[]) AS u (k, mk, gk, n, d, ty, v, e, ib, j)
                JOIN modules pm ON pm.key = u.mk
                JOIN groups pg ON pg.module_id = pm.id AND pg.key = u.gk
                RETURNING *)
            SELECT \(Columns.option) FROM o JOIN groups g ON g.id = o.group_id JOIN modules m ON m.id = g.module_id
            """
        /// Also moves options to their (module, group).
        static let updateOptions = """
            WITH o AS (
                UPDATE options AS x SET group_id = pg.id, name = u.n, description = u.d, type = u.ty, default_value = u.v,
                    editable = u.e::bool, included_by_default = u.ib::bool, meta = u.j::jsonb, updated_at = now()
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                            $9::text[], $10::text[]) AS u (i, mk, gk, n, d, ty, v, e, ib, j)
                JOIN modules pm ON pm.key = u.mk
                JOIN groups pg ON pg.module_id = pm.id AND pg.key = u.gk
                WHERE x.id = u.i::int8
                RETURNING x.*)
            SELECT \(Columns.option) FROM o JOIN groups g ON g.id = o.group_id JOIN modules m ON m.id = g.module_id
            """
        static let insertStates = """
            WITH s AS (
                INSERT INTO states (module_id, name, meta)
                SELECT pm.id, u.n, u.j::jsonb
                FROM unnest($1::text[], $2::text[], $3::text[]) AS u (mk, n, j)
                JOIN modules pm ON pm.key = u.mk
                RETURNING *)
            SELECT \(Columns.state) FROM s JOIN modules m ON m.id = s.module_id
            """
        static let updateStates = """
            WITH s AS (
                UPDATE states AS x SET meta = u.j::jsonb
                FROM unnest($1::text[], $2::text[]) AS u (i, j)
                WHERE x.id = u.i::int8
                RETURNING x.*)
            SELECT \(Columns.state) FROM s JOIN modules m ON m.id = s.module_id
            """
        static let insertTransitions = """
            WITH t AS (
                INSERT INTO transitions (module_id, from_state, event, to_state, condition, meta)
                SELECT pm.id, u.f, u.e, u.t, nullif(u.c, '')::jsonb, u.j::jsonb
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u (mk, f, e, t, c, j)
                JOIN modules pm ON pm.key = u.mk
                RETURNING *)
            SELECT \(Columns.transition) FROM t JOIN modules m ON m.id = t.module_id
            """
        static let updateTransitions = """
            WITH t AS (
                UPDATE transitions AS x SET to_state = u.t, condition = nullif(u.c, '')::jsonb, meta = u.j::jsonb, updated_at = now()
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u (i, t, c, j)
                WHERE x.id = u.i::int8
                RETURNING x.*)
            SELECT \(Columns.transition) FROM t JOIN modules m ON m.id = t.module_id
            """
        static let deleteTransitions = """
            WITH t AS (DELETE FROM transitions WHERE id = ANY ($1::text[]::int8[]) RETURNING *)
            SELECT \(Columns.transition) FROM t JOIN modules m ON m.id = t.module_id
            """
        static let deleteStates = """
            WITH s AS (DELETE FROM states WHERE id = ANY ($1::text[]::int8[]) RETURNING *)
            SELECT \(Columns.state) FROM s JOIN modules m ON m.id = s.module_id
            """
        static let deleteOptions = """
            WITH o AS (DELETE FROM options WHERE id = ANY ($1::text[]::int8[]) RETURNING *)
            SELECT \(Columns.option) FROM o JOIN groups g ON g.id = o.group_id JOIN modules m ON m.id = g.module_id
            """
        static let deleteGroups = """
            WITH g AS (DELETE FROM groups WHERE id = ANY ($1::text[]::int8[]) RETURNING *)
            SELECT \(Columns.group) FROM g JOIN modules m ON m.id = g.module_id
            """
        static let deleteModules = """
            WITH m AS (DELETE FROM modules WHERE id = ANY ($1::text[]::int8[]) RETURNING *)
            SELECT \(Columns.module) FROM m
            """
        static let insertSeed = """
            INSERT INTO seeds (file_name, document, sha256, actor, outcome, summary)
            VALUES ($1, $2, encode(sha256(convert_to($2, 'UTF8')), 'hex'), $3, 'applied', $4)
            RETURNING id
            """
        static let insertRejectedSeed = """
            INSERT INTO seeds (file_name, document, sha256, actor, outcome, summary)
            VALUES ($1, $2, encode(sha256(convert_to($2, 'UTF8')), 'hex'), $3, 'rejected', $4)
            """
    }
}

// MARK: - The document

extension SeedImporter {
    /// A valid seed document: the entities it describes, as they would be stored (no ids,
    /// no timestamps), in document order. Meta and conditions hold canonical JSON text,
    /// option defaults their canonical text ("true", "80", "1080p").
    struct Document: Equatable, Sendable {
        var modules: [Module] = []
        var groups: [Group] = []
        var options: [Option] = []
        var states: [State] = []
        var transitions: [Transition] = []
    }

    /// Everything wrong with a document, each as `path: problem`, in document order.
    struct Invalid: Error, Equatable {
        var problems: [String]
    }

    /// Parses and validates a seed document; throws every problem found.
    static func parse(_ text: String) throws(Invalid) -> Document {
        let root: JSONValue
        do {
            root = try JSONValue.parse(text)
        } catch {
            throw Invalid(problems: [error.description])
        }
        var reader = DocumentReader()
        let document = reader.document(root)
        // The only way to a NUL in a parsed string is the \u0000 escape; Postgres text
        // and jsonb cannot hold one.
        if Self.mentionsNUL(text) { reader.findNUL(in: root) }
        guard reader.problems.isEmpty else { throw Invalid(problems: reader.problems) }
        return document
    }
}

extension SeedImporter {
    /// Whether the text may hold the escape `\u0000` (a quick scan from backslash to
    /// backslash; `\\u0000` counts too, and the walk that follows sorts it out).
    static func mentionsNUL(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            guard let start = bytes.baseAddress else { return false }
            var offset = 0
            while offset < bytes.count, let found = memchr(start + offset, Int32(UInt8(ascii: "\\")), bytes.count - offset) {
                let at = start.distance(to: found.assumingMemoryBound(to: UInt8.self))
                if bytes.count - at < 6 { return false }
                if bytes[at + 1] == UInt8(ascii: "u") && bytes[at + 2] == UInt8(ascii: "0") && bytes[at + 3] == UInt8(ascii: "0")
                    && bytes[at + 4] == UInt8(ascii: "0") && bytes[at + 5] == UInt8(ascii: "0")
                {
                    return true
                }
                offset = at + 1
            }
            return false
        }
    }
}

/// Top-level members other than `modules`: ignored here (`rules` is the rules service's).
private let documentFields = ["modules", "rules", "$schema", "version", "description"]
private let moduleFields = ["key", "name", "description", "active", "initial_state", "meta", "states", "transitions", "groups"]
private let stateFields = ["name", "meta"]
private let transitionFields = ["from", "event", "to", "condition", "meta"]
private let groupFields = ["key", "name", "description", "position", "meta", "options"]
private let optionFields = ["key", "name", "description", "type", "default", "editable", "included_by_default", "meta"]

/// Where an object sits in the document; spelled out only for messages.
private enum Where: CustomStringConvertible {
    case document
    case module(Int)
    case state(Int, Int)
    case transition(Int, Int)
    case group(Int, Int)
    case option(Int, Int, Int)

    var description: String {
        switch self {
        case .document: ""
        case .module(let m): "modules[\(m)]"
        case .state(let m, let s): "modules[\(m)].states[\(s)]"
        case .transition(let m, let t): "modules[\(m)].transitions[\(t)]"
        case .group(let m, let g): "modules[\(m)].groups[\(g)]"
        case .option(let m, let g, let o): "modules[\(m)].groups[\(g)].options[\(o)]"
        }
    }
}

/// One JSON object being read, and where it is.
private struct Fields {
    let members: [String: JSONValue]
    let at: Where
    let known: [String]

    subscript(name: String) -> JSONValue? { members[name] }

    /// The path of one of its fields: `modules[0].name`.
    func path(_ name: String) -> String {
        let base = at.description
        return base.isEmpty ? name : "\(base).\(name)"
    }
}

/// Reads a document into entities, collecting problems as it goes. Paths are spelled out
/// only when there is a problem to report (a 10,000-option document has none, usually).
private struct DocumentReader {
    var problems: [String] = []
    private var document = SeedImporter.Document()
    /// Option keys are one namespace across the catalog: key → where first seen.
    private var optionPaths: [String: Where] = [:]

    mutating func document(_ root: JSONValue) -> SeedImporter.Document {
        guard let top = fields(root, at: .document, known: documentFields) else { return document }
        if let schema = string(top, "$schema") { checkText(schema, .fileName, top, "$schema") }
        if let description = string(top, "description") { checkText(description, .description, top, "description") }
        if let version = top["version"], version.stringValue == nil, version.integerValue == nil {
            problems.append("version: must be an integer or a string, not \(version.typeName)")
        } else if let version = top["version"]?.stringValue {
            checkText(version, .fileName, top, "version")
        }
        if let modules = top["modules"] {
            guard case .array(let values) = modules else {
                problems.append("modules: must be an array, not \(modules.typeName)")
                unknownFields(top)
                return document
            }
            document.modules.reserveCapacity(values.count)
            var modulePaths: [String: Where] = [:]
            for (index, value) in values.enumerated() {
                module(value, at: index, modulePaths: &modulePaths)
            }
        } else {
            problems.append("modules: required")
        }
        unknownFields(top)
        return document
    }

    private mutating func module(_ value: JSONValue, at index: Int, modulePaths: inout [String: Where]) {
        guard let f = fields(value, at: .module(index), known: moduleFields) else { return }
        var module = Module()
        if let key = string(f, "key", required: true) {
            checkKey(key, f, "key")
            if let first = modulePaths[key] {
                problems.append("\(f.path("key")): duplicate module key \(quoted(key)) (first at \(first))")
            } else {
                modulePaths[key] = f.at
            }
            module.key = key
        }
        if let name = string(f, "name", required: true) {
            checkName(name, f, "name")
            module.name = name
        }
        module.description_p = string(f, "description") ?? ""
        checkText(module.description_p, .description, f, "description")
        module.active = bool(f, "active", default: true)
        let initialState = string(f, "initial_state") ?? ""
        module.initialState = initialState
        module.metaJson = meta(f).canonicalText

        // States, then what refers to them.
        var statePaths: [String: Where] = [:]
        for (position, value) in array(f, "states").enumerated() {
            state(value, at: .state(index, position), module: module.key, statePaths: &statePaths)
        }
        if !initialState.isEmpty, statePaths[initialState] == nil {
            problems.append("\(f.path("initial_state")): state \(quoted(initialState)) is not one of the module's states")
        }
        var transitionPaths: [String: Where] = [:]
        for (position, value) in array(f, "transitions").enumerated() {
            transition(value, at: .transition(index, position), module: module.key, statePaths: statePaths, transitionPaths: &transitionPaths)
        }
        document.modules.append(module)

        var groupPaths: [String: Where] = [:]
        for (position, value) in array(f, "groups").enumerated() {
            group(value, at: (index, position), module: module.key, groupPaths: &groupPaths)
        }
        unknownFields(f)
    }

    private mutating func state(_ value: JSONValue, at place: Where, module: String, statePaths: inout [String: Where]) {
        guard let f = fields(value, at: place, known: stateFields) else { return }
        var state = State()
        state.moduleKey = module
        if let name = string(f, "name", required: true) {
            checkKey(name, f, "name")
            if let first = statePaths[name] {
                problems.append("\(f.path("name")): duplicate state \(quoted(name)) (first at \(first))")
            } else {
                statePaths[name] = place
            }
            state.name = name
        }
        state.metaJson = meta(f).canonicalText
        unknownFields(f)
        document.states.append(state)
    }

    private mutating func transition(
        _ value: JSONValue, at place: Where, module: String, statePaths: [String: Where], transitionPaths: inout [String: Where]
    ) {
        guard let f = fields(value, at: place, known: transitionFields) else { return }
        var transition = Transition()
        transition.moduleKey = module
        let from = string(f, "from", required: true)
        let event = string(f, "event", required: true)
        let to = string(f, "to", required: true)
        for (field, name) in [("from", from), ("to", to)] {
            if let name, statePaths[name] == nil {
                problems.append("\(f.path(field)): state \(quoted(name)) is not one of the module's states")
            }
        }
        if let event, !Validation.event(event, at: "").isEmpty { problems += Validation.event(event, at: f.path("event")) }
        if let from, let event {
            let key = "\(from)/\(event)"
            if let first = transitionPaths[key] {
                problems.append("\(place): duplicate transition from \(quoted(from)) on \(quoted(event)) (first at \(first))")
            } else {
                transitionPaths[key] = place
            }
        }
        transition.fromState = from ?? ""
        transition.event = event ?? ""
        transition.toState = to ?? ""
        if let condition = f["condition"], condition != .null {
            transition.conditionJson = SeedImporter.normalized(condition).canonicalText
            problems += Validation.condition(transition.conditionJson, at: f.path("condition"))
        }
        transition.metaJson = meta(f).canonicalText
        unknownFields(f)
        document.transitions.append(transition)
    }

    private mutating func group(_ value: JSONValue, at place: (module: Int, group: Int), module: String, groupPaths: inout [String: Where]) {
        guard let f = fields(value, at: .group(place.module, place.group), known: groupFields) else { return }
        var group = Group()
        group.moduleKey = module
        if let key = string(f, "key", required: true) {
            checkKey(key, f, "key")
            if let first = groupPaths[key] {
                problems.append("\(f.path("key")): duplicate group key \(quoted(key)) in module \(quoted(module)) (first at \(first))")
            } else {
                groupPaths[key] = f.at
            }
            group.key = key
        }
        if let name = string(f, "name", required: true) {
            checkName(name, f, "name")
            group.name = name
        }
        group.description_p = string(f, "description") ?? ""
        checkText(group.description_p, .description, f, "description")
        group.position = Int32(clamping: place.group)
        if let position = f["position"] {
            if let number = position.integerValue, let value = Int32(exactly: number) {
                group.position = value
            } else if position.integerValue != nil {
                problems.append("\(f.path("position")): \(position.canonicalText) is out of range")
            } else if position.numberValue != nil {
                problems.append("\(f.path("position")): \(position.canonicalText) is not an integer")
            } else {
                problems.append("\(f.path("position")): must be an integer, not \(position.typeName)")
            }
        }
        group.metaJson = meta(f).canonicalText
        document.groups.append(group)
        for (index, value) in array(f, "options").enumerated() {
            option(value, at: .option(place.module, place.group, index), module: module, group: group.key)
        }
        unknownFields(f)
    }

    private mutating func option(_ value: JSONValue, at place: Where, module: String, group: String) {
        guard let f = fields(value, at: place, known: optionFields) else { return }
        var option = Option()
        option.moduleKey = module
        option.groupKey = group
        if let key = string(f, "key", required: true) {
            checkKey(key, f, "key")
            if let first = optionPaths[key] {
                problems.append("\(f.path("key")): duplicate option key \(quoted(key)) (first at \(first)); option keys are unique across the catalog")
            } else {
                optionPaths[key] = place
            }
            option.key = key
        }
        if let name = string(f, "name", required: true) {
            checkName(name, f, "name")
            option.name = name
        }
        option.description_p = string(f, "description") ?? ""
        checkText(option.description_p, .description, f, "description")
        let typeName = string(f, "type", required: true)
        let defaultValue = f["default"]
        option.editable = bool(f, "editable", default: true)
        option.includedByDefault = bool(f, "included_by_default", default: false)
        let (meta, metaValid) = metaChecked(f)
        option.metaJson = meta.canonicalText

        guard let typeName else {
            if defaultValue == nil { problems.append("\(f.path("default")): required") }
            unknownFields(f)
            document.options.append(option)
            return
        }
        if let type = Validation.optionType(named: typeName) {
            option.type = type
            var typeProblem: String?
            if let defaultValue {
                let (text, problem) = Self.defaultText(defaultValue, type: type, at: f)
                option.defaultValue = text ?? ""
                typeProblem = problem
            } else {
                typeProblem = "\(f.path("default")): required"
            }
            // The shared rules, first without paths: they are spelled out only for problems.
            let checked = metaValid ? Validation.option(type: type, defaultValue: option.defaultValue, meta: meta, typePath: "", defaultPath: "", metaPath: "") : nil
            if typeProblem == nil, let checked { option.defaultValue = checked.defaultValue }
            if let checked, !checked.problems.isEmpty {
                let defaultPath = f.path("default")
                var optionProblems = Validation.option(
                    type: type, defaultValue: option.defaultValue, meta: meta,
                    typePath: f.path("type"), defaultPath: defaultPath, metaPath: f.path("meta")).problems
                if typeProblem != nil {
                    // The default's own problem replaces what the rules say of its text.
                    optionProblems.removeAll { $0.hasPrefix("\(defaultPath):") }
                }
                if let typeProblem { problems.append(typeProblem) }
                problems += optionProblems
            } else if let typeProblem {
                problems.append(typeProblem)
            }
        } else {
            problems.append("\(f.path("type")): \(quoted(typeName)) is not one of boolean, integer, string, enum")
            if defaultValue == nil { problems.append("\(f.path("default")): required") }
        }
        unknownFields(f)
        document.options.append(option)
    }

    private mutating func checkKey(_ value: String, _ f: Fields, _ name: String) {
        if !isValidKey(value) { problems += Validation.key(value, at: f.path(name)) }
    }

    private mutating func checkName(_ value: String, _ f: Fields, _ name: String) {
        if !Validation.name(value, at: "").isEmpty { problems += Validation.name(value, at: f.path(name)) }
    }

    private mutating func checkText(_ value: String, _ limit: TextLimit, _ f: Fields, _ name: String) {
        if let problem = limit.problem(value) { problems.append("\(f.path(name)): \(problem)") }
    }

    /// An option default's canonical text, or why the JSON value does not suit the type.
    static func defaultText(_ value: JSONValue, type: Stb_Catalog_V1_OptionType, at f: Fields) -> (String?, String?) {
        var path: String { f.path("default") }
        switch type {
        case .boolean:
            switch value {
            case .bool(let flag): return (flag ? "true" : "false", nil)
            case .string(let text) where text == "true" || text == "false":
                return (nil, "\(path): \(quoted(text)) is a string; write \(text) without quotes")
            case .string(let text): return (nil, "\(path): \(quoted(text)) is not a boolean (true or false)")
            default: return (nil, "\(path): must be a boolean, not \(value.typeName)")
            }
        case .integer:
            switch value {
            case .integer(let number): return (String(number), nil)
            case .double:
                if let number = value.integerValue { return (String(number), nil) }
                return (nil, "\(path): \(value.canonicalText) is not an integer")
            case .string(let text) where Int64(text) != nil:
                return (nil, "\(path): \(quoted(text)) is a string; write the integer without quotes")
            case .string(let text): return (nil, "\(path): \(quoted(text)) is not an integer")
            default: return (nil, "\(path): must be an integer, not \(value.typeName)")
            }
        default:  // string, enum
            if case .string(let text) = value { return (text, nil) }
            return (nil, "\(path): must be a string, not \(value.typeName)")
        }
    }

    // MARK: Field readers

    private mutating func fields(_ value: JSONValue, at place: Where, known: [String]) -> Fields? {
        guard case .object(let members) = value else {
            let path = place.description
            problems.append("\(path.isEmpty ? "document" : path): must be an object, not \(value.typeName)")
            return nil
        }
        return Fields(members: members, at: place, known: known)
    }

    private mutating func unknownFields(_ f: Fields) {
        guard f.members.keys.contains(where: { !f.known.contains($0) }) else { return }
        for name in f.members.keys.sorted() where !f.known.contains(name) {
            problems.append("\(f.path(name)): unknown field (known: \(f.known.joined(separator: ", ")))")
        }
    }

    private mutating func string(_ f: Fields, _ name: String, required: Bool = false) -> String? {
        guard let value = f[name] else {
            if required { problems.append("\(f.path(name)): required") }
            return nil
        }
        guard case .string(let text) = value else {
            problems.append("\(f.path(name)): must be a string, not \(value.typeName)")
            return nil
        }
        return text
    }

    private mutating func bool(_ f: Fields, _ name: String, default defaultValue: Bool) -> Bool {
        guard let value = f[name] else { return defaultValue }
        guard case .bool(let flag) = value else {
            problems.append("\(f.path(name)): must be a boolean, not \(value.typeName)")
            return defaultValue
        }
        return flag
    }

    private mutating func array(_ f: Fields, _ name: String) -> [JSONValue] {
        guard let value = f[name] else { return [] }
        guard case .array(let values) = value else {
            problems.append("\(f.path(name)): must be an array, not \(value.typeName)")
            return []
        }
        return values
    }

    private mutating func meta(_ f: Fields) -> JSONValue { metaChecked(f).0 }

    /// `meta`, normalized ({} when absent), and whether it was a usable object.
    private mutating func metaChecked(_ f: Fields) -> (JSONValue, Bool) {
        guard let value = f["meta"] else { return (.object([:]), true) }
        guard case .object = value else {
            problems.append("\(f.path("meta")): must be an object, not \(value.typeName)")
            return (.object([:]), false)
        }
        let normalized = SeedImporter.normalized(value)
        // Limited as stored: the canonical text, as `meta_json` is in the CRUD calls.
        if let problem = TextLimit.json.problem(normalized.canonicalText) {
            problems.append("\(f.path("meta")): \(problem)")
            return (.object([:]), false)
        }
        return (normalized, true)
    }

    /// Reports strings and member names holding NUL (ignoring `rules`).
    mutating func findNUL(in root: JSONValue) {
        func walk(_ value: JSONValue, _ path: String, _ problems: inout [String]) {
            switch value {
            case .string(let text) where text.unicodeScalars.contains("\u{0}"):
                problems.append("\(path.isEmpty ? "document" : path): contains a NUL character (\\u0000), which the catalog cannot store")
            case .array(let values):
                for (index, element) in values.enumerated() { walk(element, "\(path)[\(index)]", &problems) }
            case .object(let members):
                for name in members.keys.sorted() where !(path.isEmpty && name == "rules") {
                    let child = path.isEmpty ? name : "\(path).\(name)"
                    if name.unicodeScalars.contains("\u{0}") {
                        problems.append("\(child): the member name contains a NUL character (\\u0000), which the catalog cannot store")
                    }
                    walk(members[name]!, child, &problems)
                }
            default:
                break
            }
        }
        walk(root, "", &problems)
    }
}

extension SeedImporter {
    /// `value` with every whole number as an integer (`2.0` → `2`), so what is stored
    /// (jsonb, read back as text) compares equal to what the document says.
    static func normalized(_ value: JSONValue) -> JSONValue {
        switch value {
        case .double(let number) where number.rounded() == number && abs(number) < 9.0e18:
            return .integer(Int64(number))
        case .array(let values):
            return .array(values.map(normalized))
        case .object(let members):
            return .object(members.mapValues(normalized))
        default:
            return value
        }
    }
}

// MARK: - Planning

extension SeedImporter {
    /// The catalog as it is.
    struct Catalog: Sendable {
        var modules: [Module] = []
        var groups: [Group] = []
        var options: [Option] = []
        var states: [State] = []
        var transitions: [Transition] = []
    }

    struct Update<Entity> {
        /// The stored entity.
        var before: Entity
        /// What the document wants, with the stored entity's id and timestamps.
        var after: Entity
    }

    /// What happens to the entities of one kind.
    struct Changes<Entity> {
        /// In document order.
        var created: [Entity] = []
        var updated: [Update<Entity>] = []
        /// Only with `prune`: stored entities the document does not mention, by id.
        var deleted: [Entity] = []
        var unchanged = 0

        var count: Int { created.count + updated.count + deleted.count }
    }

    struct Plan {
        var modules = Changes<Module>()
        var groups = Changes<Group>()
        var options = Changes<Option>()
        var states = Changes<State>()
        var transitions = Changes<Transition>()

        var created: Int { modules.created.count + groups.created.count + options.created.count + states.created.count + transitions.created.count }
        var updated: Int { modules.updated.count + groups.updated.count + options.updated.count + states.updated.count + transitions.updated.count }
        var deleted: Int { modules.deleted.count + groups.deleted.count + options.deleted.count + states.deleted.count + transitions.deleted.count }
        var unchanged: Int { modules.unchanged + groups.unchanged + options.unchanged + states.unchanged + transitions.unchanged }
        var isEmpty: Bool { created == 0 && updated == 0 && deleted == 0 }

        /// "created 12, updated 0, deleted 0, unchanged 85"
        var summary: String { "created \(created), updated \(updated), deleted \(deleted), unchanged \(unchanged)" }

        static func summaryText(of plan: Stb_Catalog_V1_ImportPlan) -> String {
            "created \(plan.created.count), updated \(plan.updated.count), deleted \(plan.deleted.count), unchanged \(plan.unchanged)"
        }

        /// As the API reports it: created and updated parents first, deleted children first.
        var message: Stb_Catalog_V1_ImportPlan {
            func items<E: SeedEntity>(_ entities: [E]) -> [Stb_Catalog_V1_PlanItem] {
                entities.map { Stb_Catalog_V1_PlanItem(entity: E.seedKind.rawValue, key: $0.entityKey) }
            }
            var plan = Stb_Catalog_V1_ImportPlan()
            plan.created = items(modules.created) + items(groups.created) + items(options.created) + items(states.created) + items(transitions.created)
            plan.updated = items(modules.updated.map(\.after)) + items(groups.updated.map(\.after)) + items(options.updated.map(\.after))
                + items(states.updated.map(\.after)) + items(transitions.updated.map(\.after))
            plan.deleted = items(transitions.deleted) + items(states.deleted) + items(options.deleted) + items(groups.deleted) + items(modules.deleted)
            plan.unchanged = UInt32(clamping: unchanged)
            return plan
        }
    }

    /// Compares a document with the catalog by key: an entity is unchanged when its
    /// `.json` form is the same, else updated (an option elsewhere is moved); with
    /// `prune`, stored entities the document does not mention are deleted.
    static func plan(_ document: Document, current: Catalog, prune: Bool) -> Plan {
        var plan = Plan()
        plan.modules = diff(document.modules, current.modules, prune: prune)
        plan.groups = diff(document.groups, current.groups, prune: prune)
        plan.options = diff(document.options, current.options, prune: prune)
        plan.states = diff(document.states, current.states, prune: prune)
        plan.transitions = diff(document.transitions, current.transitions, prune: prune)
        return plan
    }

    private static func diff<E: SeedEntity>(_ wanted: [E], _ current: [E], prune: Bool) -> Changes<E> {
        var changes = Changes<E>()
        var stored: [String: Int] = [:]
        stored.reserveCapacity(current.count)
        for (index, entity) in current.enumerated() { stored[entity.entityKey] = index }
        var mentioned = Set<String>()
        mentioned.reserveCapacity(wanted.count)
        var cache = JSONTextCache()
        for var entity in wanted {
            let key = entity.entityKey
            mentioned.insert(key)
            guard let index = stored[key] else {
                changes.created.append(entity)
                continue
            }
            let before = current[index]
            // The field-by-field check settles the common case cheaply; `.json` decides the rest.
            if entity.matches(stored: before, cache: &cache) || before.json == entity.json {
                changes.unchanged += 1
            } else {
                entity.adoptIdentity(of: before)
                changes.updated.append(Update(before: before, after: entity))
            }
        }
        if prune {
            changes.deleted = current.filter { !mentioned.contains($0.entityKey) }
        }
        return changes
    }
}

/// What planning and applying need of each entity type.
protocol SeedEntity {
    static var seedKind: EntityKind { get }
    var entityKey: String { get }
    var json: JSONValue { get }
    var catalogEntity: Stb_Catalog_V1_CatalogEntity { get }
    /// Takes the stored entity's id and timestamps.
    mutating func adoptIdentity(of stored: Self)
    /// True when every field `.json` shows is the same as the stored entity's, with JSON
    /// texts compared by value (parsed once per distinct text). A quick path only: when
    /// it says false, `.json` decides. Keep it in step with `.json` (the tests check the
    /// fields `.json` shows).
    func matches(stored: Self, cache: inout JSONTextCache) -> Bool
}

/// Parsed JSON texts (meta, conditions), by text: catalogs repeat the same few metas.
struct JSONTextCache {
    private var meta: [String: JSONValue] = [:]
    private var conditions: [String: JSONValue] = [:]

    /// As `Module.metaValue`: empty or invalid text is `{}`.
    mutating func sameMeta(_ a: String, _ b: String) -> Bool {
        a == b || metaValue(a) == metaValue(b)
    }

    /// As `Transition.json` shows a condition: empty is null, invalid text a string.
    mutating func sameCondition(_ a: String, _ b: String) -> Bool {
        a == b || conditionValue(a) == conditionValue(b)
    }

    private mutating func metaValue(_ text: String) -> JSONValue {
        if let value = meta[text] { return value }
        let value = Module.metaValue(text)
        meta[text] = value
        return value
    }

    private mutating func conditionValue(_ text: String) -> JSONValue {
        if text.isEmpty { return .null }
        if let value = conditions[text] { return value }
        let value = (try? JSONValue.parse(text)) ?? .string(text)
        conditions[text] = value
        return value
    }
}

extension Module: SeedEntity {
    static var seedKind: EntityKind { .module }
    func matches(stored: Self, cache: inout JSONTextCache) -> Bool {
        key == stored.key && name == stored.name && description_p == stored.description_p && active == stored.active
            && initialState == stored.initialState && cache.sameMeta(metaJson, stored.metaJson)
    }
    mutating func adoptIdentity(of stored: Self) {
        id = stored.id
        createdAtMs = stored.createdAtMs
        updatedAtMs = stored.updatedAtMs
    }
}

extension Group: SeedEntity {
    static var seedKind: EntityKind { .group }
    func matches(stored: Self, cache: inout JSONTextCache) -> Bool {
        moduleKey == stored.moduleKey && key == stored.key && name == stored.name && description_p == stored.description_p
            && position == stored.position && cache.sameMeta(metaJson, stored.metaJson)
    }
    mutating func adoptIdentity(of stored: Self) {
        id = stored.id
        createdAtMs = stored.createdAtMs
        updatedAtMs = stored.updatedAtMs
    }
}

extension Option: SeedEntity {
    static var seedKind: EntityKind { .option }
    func matches(stored: Self, cache: inout JSONTextCache) -> Bool {
        moduleKey == stored.moduleKey && groupKey == stored.groupKey && key == stored.key && name == stored.name
            && description_p == stored.description_p && type == stored.type && defaultValue == stored.defaultValue
            && editable == stored.editable && includedByDefault == stored.includedByDefault
            && cache.sameMeta(metaJson, stored.metaJson)
    }
    mutating func adoptIdentity(of stored: Self) {
        id = stored.id
        createdAtMs = stored.createdAtMs
        updatedAtMs = stored.updatedAtMs
    }
}

extension State: SeedEntity {
    static var seedKind: EntityKind { .state }
    func matches(stored: Self, cache: inout JSONTextCache) -> Bool {
        moduleKey == stored.moduleKey && name == stored.name && cache.sameMeta(metaJson, stored.metaJson)
    }
    mutating func adoptIdentity(of stored: Self) {
        id = stored.id
        createdAtMs = stored.createdAtMs
    }
}

extension Transition: SeedEntity {
    static var seedKind: EntityKind { .transition }
    func matches(stored: Self, cache: inout JSONTextCache) -> Bool {
        moduleKey == stored.moduleKey && fromState == stored.fromState && event == stored.event && toState == stored.toState
            && cache.sameCondition(conditionJson, stored.conditionJson) && cache.sameMeta(metaJson, stored.metaJson)
    }
    mutating func adoptIdentity(of stored: Self) {
        id = stored.id
        createdAtMs = stored.createdAtMs
        updatedAtMs = stored.updatedAtMs
    }
}
