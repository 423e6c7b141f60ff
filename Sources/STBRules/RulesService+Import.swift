import STBJSON
import STBMessages
import STBOptionValues
import STBPostgres
import STBRPC
import STBService
import Synchronization

/// Import of the `rules` section of a seed document: the document read and checked as a
/// whole, then applied by rule key in one transaction.
extension RulesService {
    /// Creates, updates and (with `prune`) deletes rules to match the document; importing
    /// the same document again writes nothing.
    public func importRules(_ request: Stb_Rules_V1_ImportRulesRequest, context: ServerContext) async throws -> Stb_Rules_V1_ImportRulesResponse {
        try requireCatalog()
        if let problem = TextLimit.fileName.problem(request.fileName) {
            throw invalidArgument(["file_name: \(problem)"])
        }
        let wanted = try rules(inDocument: request.documentJson)
        let actor = context.actor
        var response: Stb_Rules_V1_ImportRulesResponse = try await change(actor: context.caller) { transaction, changes in
            // One import at a time: each plans against the rules the previous one left.
            if !request.dryRun { _ = try await transaction.query("SELECT pg_advisory_xact_lock(\(Int64(0x5354_425F_5255_4C45)))") }
            let rows = try await transaction.query("SELECT \(unescaped: RuleMessage.columns) FROM \(unescaped: RuleMessage.source) ORDER BY r.key FOR UPDATE")
            let existing = Dictionary(uniqueKeysWithValues: try rows.map(RuleMessage.init(row:)).map { ($0.key, $0) })
            var response = Stb_Rules_V1_ImportRulesResponse()
            var statements: [(query: PostgresQuery, before: RuleMessage?, action: Stb_Common_V1_ChangeAction)] = []
            for rule in wanted {
                if let current = existing[rule.key] {
                    if current.auditJSON == rule.auditJSON {
                        response.unchanged += 1
                    } else {
                        response.updated.append(rule.key)
                        statements.append((rule.update(id: current.id), current, .updated))
                    }
                } else {
                    response.created.append(rule.key)
                    statements.append((rule.insertion(), nil, .created))
                }
            }
            if request.prune {
                let keep = Set(wanted.map(\.key))
                for (key, current) in existing.sorted(by: { $0.key < $1.key }) where !keep.contains(key) {
                    response.deleted.append(key)
                    statements.append((current.deletion, current, .deleted))
                }
            }
            if request.dryRun || statements.isEmpty { return response }
            let results = try await transaction.pipeline(statements.map(\.query))
            for (result, statement) in zip(results, statements) {
                changes.record(statement.action, try RuleMessage(row: result[0]), before: statement.before)
            }
            _ = try await transaction.query("""
                INSERT INTO rule_imports (file_name, document, actor, outcome, summary)
                VALUES (\(request.fileName), \(request.documentJson), \(actor), 'applied',
                        \("created \(response.created.count), updated \(response.updated.count), deleted \(response.deleted.count), unchanged \(response.unchanged)"))
                """)
            response.applied = true
            return response
        }
        response.revision = state.withLock { $0.rulesRevision }
        return response
    }

    /// The rules a seed document lists, each checked against the catalog copy, payloads
    /// in canonical form; INVALID_ARGUMENT listing every problem (the first 50).
    private func rules(inDocument text: String) throws -> [RuleMessage] {
        let document: JSONValue
        do {
            document = try JSONValue.parse(text)
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
            rule.type = fields["type"]?.stringValue.flatMap(Stb_Rules_V1_RuleType.init(named:)) ?? .unspecified
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
        try check(problems, limit: 50, preface: "rules document is invalid: ")
        for index in wanted.indices { wanted[index].payloadJson = try JSONValue.parse(wanted[index].payloadJson).canonicalText }
        return wanted
    }
}
