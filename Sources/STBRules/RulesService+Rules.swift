import STBJSON
import STBMessages
import STBOptionValues
import STBPostgres
import STBRPC
import STBService
import Synchronization

/// CRUD and import of rules: validated against the catalog copy, written with an audit
/// row, an outbox event and a revision bump in the same transaction.
extension RulesService {
    /// The engine's rule for a stored or requested one; throws `RuleParseError`.
    public static func compile(_ message: Stb_Rules_V1_Rule) throws -> Rule {
        let payload: JSONValue
        do {
            payload = try JSONValue.parse(message.payloadJson)
        } catch {
            throw RuleParseError(path: "payload_json", message: "\(error)")
        }
        return try Rule.parse(
            key: message.key, subject: message.subject, type: typeName(message.type) ?? "unspecified", payload: payload,
            severity: message.severity == .warning ? .warning : .error, message: message.message, active: message.active)
    }

    /// Every problem with `rule`: shape, payload, and options unknown to the catalog.
    func problems(with rule: RuleMessage, at path: String) -> [String] {
        var problems: [String] = []
        if !isValidKey(rule.key) { problems.append("\(path).key: \(quoted(rule.key)) is not a valid key (lowercase letters, digits, '_', '.', '-'; at most 64 characters)") }
        if rule.subject.isEmpty { problems.append("\(path).subject: required") }
        if let problem = TextLimit.name.problem(rule.subject) { problems.append("\(path).subject: \(problem)") }
        if let problem = TextLimit.message.problem(rule.message) { problems.append("\(path).message: \(problem)") }
        if let problem = TextLimit.json.problem(rule.payloadJson) { problems.append("\(path).payload_json: \(problem)") }
        if Self.typeName(rule.type) == nil { problems.append("\(path).type: must be one of requires, forbidden, validation, choice") }
        if !problems.isEmpty { return problems }
        let compiled: Rule
        do {
            compiled = try Self.compile(rule)
        } catch let error as RuleParseError {
            return ["\(path).\(error.path): \(error.message)"]
        } catch {
            return ["\(path): \(error)"]
        }
        guard let model = state.withLock({ $0.model }) else { return problems }
        if case .choice = compiled.kind {} else if rule.subject != Rule.globalSubject, model.options[rule.subject] == nil {
            problems.append("\(path).subject: option \(quoted(rule.subject)) is not in the catalog")
        }
        for key in compiled.listedOptions where model.options[key] == nil {
            problems.append("\(path).payload: option \(quoted(key)) is not in the catalog")
        }
        return problems
    }

    private func requireCatalog() throws {
        try state.withLock { state in
            guard state.model != nil else {
                throw RPCError(code: .unavailable, message: "no copy of the catalog yet: rules cannot be checked; retry shortly")
            }
            try requireCurrentCatalog(state)
        }
    }

    func createRule(_ request: Stb_Rules_V1_CreateRuleRequest, _ actor: String) async throws -> RuleMessage {
        guard var input = request.rule else { throw RPCError(code: .invalidArgument, message: "rule: required") }
        if input.severity == .unspecified { input.severity = .error }
        try requireCatalog()
        try check(problems(with: input, at: "rule"))
        let payload = try JSONValue.parse(input.payloadJson).canonicalText
        return try await change(actor: actor) { transaction, changes in
            let rows = try await transaction.query(PostgresQuery(sql: """
                WITH r AS (INSERT INTO rules (key, subject, type, payload, severity, message, active)
                           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING RETURNING *)
                SELECT \(ruleColumns) FROM r
                """, bindings: PostgresBindings(input.key, input.subject, Self.typeName(input.type)!, PostgresJSON(payload),
                                     input.severity == .warning ? "warning" : "error", input.message, input.active)))
            guard let row = rows.first else { throw RPCError(code: .alreadyExists, message: "rule \(quoted(input.key)) already exists") }
            let rule = try Self.rule(row)
            changes.record(.created, rule, before: nil)
            return rule
        }
    }

    func getRule(_ ref: Stb_Rules_V1_RuleRef) async throws -> RuleMessage {
        try await pool.withConnection { try await loadRule(ref, on: $0) }
    }

    func listRules(_ request: Stb_Rules_V1_ListRulesRequest) async throws -> Stb_Rules_V1_ListRulesResponse {
        // page_size is a UInt32: it always fits an Int.
        let size = Int(request.page?.pageSize ?? 0) == 0 ? 100 : min(Int(request.page!.pageSize), 1000)
        let token = request.page?.pageToken ?? ""
        // A token is a rule id as written below; other spellings of a number are not tokens.
        guard let after = token.isEmpty ? 0 : Int64(token), after >= 0, token.isEmpty || String(after) == token else {
            throw RPCError(code: .invalidArgument, message: "page.page_token: not a token this service issued")
        }
        let rows = try await pool.query(PostgresQuery(sql: """
            SELECT \(ruleColumns), (SELECT count(*) FROM rules WHERE $3 = '' OR subject = $3)
            FROM rules r WHERE r.id > $1 AND ($3 = '' OR r.subject = $3) ORDER BY r.id LIMIT $2
            """, bindings: PostgresBindings(after, Int64(size), request.subject)))
        var response = Stb_Rules_V1_ListRulesResponse()
        response.rules = try rows.map(Self.rule)
        var page = Stb_Common_V1_PageInfo()
        if let first = rows.first { page.total = UInt64(try first.decode(10, as: Int64.self)) }
        if rows.count == size, let last = response.rules.last { page.nextPageToken = String(last.id) }
        response.page = page
        return response
    }

    func updateRule(_ request: Stb_Rules_V1_UpdateRuleRequest, _ actor: String) async throws -> RuleMessage {
        guard let ref = request.ref else { throw RPCError(code: .invalidArgument, message: "ref: required") }
        try requireCatalog()
        return try await change(actor: actor) { transaction, changes in
            let before = try await loadRule(ref, on: transaction.connection, forUpdate: true)
            var after = before
            if let subject = request.subject { after.subject = subject }
            if let type = request.type { after.type = type }
            if let payload = request.payloadJson { after.payloadJson = payload }
            if let severity = request.severity { after.severity = severity }
            if let message = request.message { after.message = message }
            if let active = request.active { after.active = active }
            try check(problems(with: after, at: "rule"))
            after.payloadJson = try JSONValue.parse(after.payloadJson).canonicalText
            guard Self.json(after) != Self.json(before) else { return before }
            let rows = try await transaction.query(PostgresQuery(sql: """
                WITH r AS (UPDATE rules SET subject = $2, type = $3, payload = $4, severity = $5, message = $6, active = $7,
                           updated_at = now() WHERE id = $1 RETURNING *)
                SELECT \(ruleColumns) FROM r
                """, bindings: PostgresBindings(before.id, after.subject, Self.typeName(after.type)!, PostgresJSON(after.payloadJson),
                                     after.severity == .warning ? "warning" : "error", after.message, after.active)))
            let updated = try Self.rule(rows[0])
            changes.record(.updated, updated, before: before)
            return updated
        }
    }

    func deleteRule(_ ref: Stb_Rules_V1_RuleRef, _ actor: String) async throws -> Stb_Common_V1_Empty {
        try await change(actor: actor) { transaction, changes in
            let rule = try await loadRule(ref, on: transaction.connection, forUpdate: true)
            _ = try await transaction.query("DELETE FROM rules WHERE id = \(rule.id)")
            changes.record(.deleted, rule, before: rule)
            return Stb_Common_V1_Empty()
        }
    }

    func loadRule(_ ref: Stb_Rules_V1_RuleRef, on connection: PostgresConnection, forUpdate: Bool = false) async throws -> RuleMessage {
        let lock = forUpdate ? " FOR UPDATE" : ""
        let rows: PostgresRows
        let name: String
        switch ref.ref {
        case .id(let id):
            rows = try await connection.query(PostgresQuery(sql: "SELECT \(ruleColumns) FROM rules r WHERE r.id = $1\(lock)", bindings: PostgresBindings(id)))
            name = "id \(id)"
        case .key(let key):
            rows = try await connection.query(PostgresQuery(sql: "SELECT \(ruleColumns) FROM rules r WHERE r.key = $1\(lock)", bindings: PostgresBindings(key)))
            name = quoted(key)
        case nil:
            throw RPCError(code: .invalidArgument, message: "ref: give an id or a key")
        }
        guard let row = rows.first else { throw RPCError(code: .notFound, message: "rule \(name) not found") }
        return try Self.rule(row)
    }

    // MARK: - Import

    /// Reads the `rules` section of a seed document; applies the plan by rule key in one
    /// transaction. Importing the same document again writes nothing.
    func importRules(_ request: Stb_Rules_V1_ImportRulesRequest, actor: String) async throws -> Stb_Rules_V1_ImportRulesResponse {
        try requireCatalog()
        if let problem = TextLimit.fileName.problem(request.fileName) {
            throw RPCError(code: .invalidArgument, message: "file_name: \(problem)")
        }
        let document: JSONValue
        do {
            document = try JSONValue.parse(request.documentJson)
        } catch {
            throw RPCError(code: .invalidArgument, message: "rules document is invalid: \(error)")
        }
        guard case .object(let top) = document else {
            throw RPCError(code: .invalidArgument, message: "rules document is invalid: the document must be a JSON object")
        }
        var wanted: [RuleMessage] = []
        var problems: [String] = []
        var seen = Set<String>()
        let entries: [JSONValue]
        switch top["rules"] {
        case .array(let list)?: entries = list
        case nil, .null?: entries = []
        case let other?: entries = []; problems.append("rules: must be an array, not \(other.typeName)")
        }
        for (index, entry) in entries.enumerated() {
            let path = "rules[\(index)]"
            guard case .object(let fields) = entry else {
                problems.append("\(path): must be an object")
                continue
            }
            for name in fields.keys.sorted() where !["key", "subject", "type", "payload", "severity", "message", "active"].contains(name) {
                problems.append("\(path).\(name): unknown member")
            }
            var rule = RuleMessage()
            rule.key = fields["key"]?.stringValue ?? ""
            rule.subject = fields["subject"]?.stringValue ?? ""
            rule.type = fields["type"]?.stringValue.flatMap(Self.ruleType(named:)) ?? .unspecified
            rule.payloadJson = fields["payload"]?.canonicalText ?? ""
            switch fields["severity"]?.stringValue ?? "error" {
            case "error": rule.severity = .error
            case "warning": rule.severity = .warning
            default: problems.append("\(path).severity: must be error or warning")
            }
            rule.message = fields["message"]?.stringValue ?? ""
            if case .bool(let active)? = fields["active"] { rule.active = active } else { rule.active = true }
            if fields["payload"] == nil { problems.append("\(path).payload: required") }
            problems += self.problems(with: rule, at: path)
            if !rule.key.isEmpty, !seen.insert(rule.key).inserted { problems.append("\(path).key: \(quoted(rule.key)) is listed twice") }
            wanted.append(rule)
        }
        if !problems.isEmpty {
            var message = problems.prefix(50).joined(separator: "; ")
            if problems.count > 50 { message += "; and \(problems.count - 50) more" }
            throw RPCError(code: .invalidArgument, message: "rules document is invalid: \(message)")
        }
        for index in wanted.indices { wanted[index].payloadJson = try JSONValue.parse(wanted[index].payloadJson).canonicalText }

        let plan: (Stb_Rules_V1_ImportRulesResponse, UInt64) = try await change(actor: actor) { transaction, changes in
            if !request.dryRun { _ = try await transaction.query("SELECT pg_advisory_xact_lock(\(Int64(0x5354_425F_5255_4C45)))") }
            let rows = try await transaction.query(PostgresQuery(sql: "SELECT \(ruleColumns) FROM rules r ORDER BY r.key FOR UPDATE"))
            let existing = Dictionary(uniqueKeysWithValues: try rows.map(Self.rule).map { ($0.key, $0) })
            var response = Stb_Rules_V1_ImportRulesResponse()
            var statements: [(PostgresQuery, RuleMessage?, Stb_Common_V1_ChangeAction)] = []
            for rule in wanted {
                if let current = existing[rule.key] {
                    if Self.json(current) == Self.json(rule) {
                        response.unchanged += 1
                        continue
                    }
                    response.updated.append(rule.key)
                    statements.append((PostgresQuery(sql: """
                        WITH r AS (UPDATE rules SET subject = $2, type = $3, payload = $4, severity = $5, message = $6, active = $7,
                                   updated_at = now() WHERE id = $1 RETURNING *)
                        SELECT \(ruleColumns) FROM r
                        """, bindings: PostgresBindings(current.id, rule.subject, Self.typeName(rule.type)!, PostgresJSON(rule.payloadJson),
                                             rule.severity == .warning ? "warning" : "error", rule.message, rule.active)), current, .updated))
                } else {
                    response.created.append(rule.key)
                    statements.append((PostgresQuery(sql: """
                        WITH r AS (INSERT INTO rules (key, subject, type, payload, severity, message, active)
                                   VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *)
                        SELECT \(ruleColumns) FROM r
                        """, bindings: PostgresBindings(rule.key, rule.subject, Self.typeName(rule.type)!, PostgresJSON(rule.payloadJson),
                                             rule.severity == .warning ? "warning" : "error", rule.message, rule.active)), nil, .created))
                }
            }
            if request.prune {
                let keep = Set(wanted.map(\.key))
                for (key, current) in existing.sorted(by: { $0.key < $1.key }) where !keep.contains(key) {
                    response.deleted.append(key)
                    statements.append((PostgresQuery(sql: "WITH r AS (DELETE FROM rules WHERE id = $1 RETURNING *) SELECT \(ruleColumns) FROM r",
                                                     bindings: PostgresBindings(current.id)), current, .deleted))
                }
            }
            if request.dryRun || statements.isEmpty { return (response, 0) }
            let results = try await transaction.pipeline(statements.map(\.0))
            for (result, statement) in zip(results, statements) {
                let written = try Self.rule(result[0])
                changes.record(statement.2, written, before: statement.1)
            }
            _ = try await transaction.query("""
                INSERT INTO rule_imports (file_name, document, actor, outcome, summary)
                VALUES (\(request.fileName), \(request.documentJson), \(actor), 'applied',
                        \("created \(response.created.count), updated \(response.updated.count), deleted \(response.deleted.count), unchanged \(response.unchanged)"))
                """)
            response.applied = true
            return (response, 0)
        }
        var response = plan.0
        response.revision = state.withLock { $0.rulesRevision }
        return response
    }
}
