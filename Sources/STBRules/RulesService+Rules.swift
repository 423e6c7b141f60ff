import STBJSON
import STBMessages
import STBOptionValues
import STBPostgres
import STBRPC
import STBService
import Synchronization

/// CRUD of rules: validated against the catalog copy, written with an audit row, an
/// outbox event and a revision bump in the same transaction.
extension RulesService {
    /// Creates a rule; ALREADY_EXISTS when its key is taken.
    public func createRule(_ request: Stb_Rules_V1_CreateRuleRequest, context: ServerContext) async throws -> Stb_Rules_V1_Rule {
        guard var input = request.rule else { throw invalidArgument(["rule: required"]) }
        if input.severity == .unspecified { input.severity = .error }
        try requireCatalog()
        try check(problems(with: input, at: "rule"))
        input.payloadJson = try JSONValue.parse(input.payloadJson).canonicalText
        return try await change(actor: context.caller) { transaction, changes in
            guard let row = try await transaction.query(input.insertion(skippingExisting: true)).first else {
                throw RPCError(code: .alreadyExists, message: "rule \(quoted(input.key)) already exists")
            }
            let rule = try RuleMessage(row: row)
            changes.record(.created, rule, before: nil)
            return rule
        }
    }

    /// The rule `request` names.
    public func getRule(_ request: Stb_Rules_V1_RuleRef, context: ServerContext) async throws -> Stb_Rules_V1_Rule {
        try await pool.withConnection { try await loadRule(request, on: $0) }
    }

    /// A page of the rules, by id; of one subject when the request names it.
    public func listRules(_ request: Stb_Rules_V1_ListRulesRequest, context: ServerContext) async throws -> Stb_Rules_V1_ListRulesResponse {
        let (rules, info) = try await RuleMessage.list(try Page(request.page), filters: [ListFilter("r.subject", request.subject)], pool: pool)
        return Stb_Rules_V1_ListRulesResponse(rules: rules, page: info)
    }

    /// Changes the fields the request sets; an update that changes nothing writes nothing.
    public func updateRule(_ request: Stb_Rules_V1_UpdateRuleRequest, context: ServerContext) async throws -> Stb_Rules_V1_Rule {
        guard let ref = request.ref else { throw invalidArgument(["ref: required"]) }
        try requireCatalog()
        return try await changeRule(actor: context.caller) { transaction, changes in
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
            guard after.auditJSON != before.auditJSON else { return (before, nil) }
            let updated = try RuleMessage(row: try await transaction.query(after.update(id: before.id))[0])
            changes.record(.updated, updated, before: before)
            return (updated, .updated(updated))
        }
    }

    /// Deletes the rule `request` names.
    public func deleteRule(_ request: Stb_Rules_V1_RuleRef, context: ServerContext) async throws -> Stb_Common_V1_Empty {
        try await changeRule(actor: context.caller) { transaction, changes in
            let rule = try await loadRule(request, on: transaction.connection, forUpdate: true)
            try await rule.delete(in: transaction)
            changes.record(.deleted, rule, before: rule)
            return (Stb_Common_V1_Empty(), .deleted(key: rule.key))
        }
    }

    /// The rule `ref` names, locked for the transaction when `forUpdate`; NOT_FOUND when
    /// there is none.
    func loadRule(_ ref: Stb_Rules_V1_RuleRef, on connection: PostgresConnection, forUpdate: Bool = false) async throws -> RuleMessage {
        let found: RuleMessage?
        let name: String
        switch ref.ref {
        case .id(let id):
            found = try await RuleMessage.fetch(where: "r.id", equals: id, forUpdate: forUpdate, on: connection)
            name = "id \(id)"
        case .key(let key):
            found = try await RuleMessage.fetch(where: "r.key", equals: key, forUpdate: forUpdate, on: connection)
            name = quoted(key)
        case nil:
            throw invalidArgument(["ref: give an id or a key"])
        }
        guard let found else { throw RPCError(code: .notFound, message: "rule \(name) not found") }
        return found
    }

    // MARK: - Validation

    /// The engine's rule for a stored or requested one; throws `RuleParseError`.
    public static func compile(_ message: Stb_Rules_V1_Rule) throws -> Rule {
        let payload: JSONValue
        do {
            payload = try JSONValue.parse(message.payloadJson)
        } catch {
            throw RuleParseError(path: "payload_json", message: "\(error)")
        }
        return try Rule.parse(
            key: message.key, subject: message.subject, type: message.type.name ?? "unspecified", payload: payload,
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
        if rule.type.name == nil { problems.append("\(path).type: must be one of requires, forbidden, validation, choice") }
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

    /// UNAVAILABLE until a catalog copy exists, and while it is known to be stale: rules
    /// are checked against it.
    func requireCatalog() throws {
        try state.withLock { state in
            guard state.model != nil else {
                throw RPCError(code: .unavailable, message: "no copy of the catalog yet: rules cannot be checked; retry shortly")
            }
            try requireCurrentCatalog(state)
        }
    }
}
