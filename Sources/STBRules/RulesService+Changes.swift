import STBJSON
import STBMessages
import STBPostgres
import STBRPC
import STBService

/// What one rules transaction changed; written (audit rows, events, revision bump) at
/// its end, so a change, its audit row and its event commit together.
final class RuleChanges {
    struct Change {
        let action: Stb_Common_V1_ChangeAction
        let rule: RuleMessage
        let before: RuleMessage?
    }

    let actor: String
    private(set) var changes: [Change] = []

    init(actor: String) {
        self.actor = actor
    }

    func record(_ action: Stb_Common_V1_ChangeAction, _ rule: RuleMessage, before: RuleMessage?) {
        changes.append(Change(action: action, rule: rule, before: before))
    }

    func write(in transaction: PostgresTransaction, outbox: Outbox) async throws {
        guard !changes.isEmpty else { return }
        let bumped = try await transaction.query("""
            UPDATE rules_revision SET revision = revision + 1 RETURNING revision, (extract(epoch FROM now()) * 1000)::int8
            """)
        let (revision, nowMs) = try bumped[0].decode(Int64.self, Int64.self)
        var audits: [PostgresQuery] = []
        var events: [NewOutboxEvent] = []
        for change in changes {
            let action = change.action == .created ? "created" : change.action == .updated ? "updated" : "deleted"
            let before = change.before.map { PostgresJSON(RulesService.json($0).canonicalText) }
            let after = change.action == .deleted ? nil : PostgresJSON(RulesService.json(change.rule).canonicalText)
            audits.append("""
                INSERT INTO audit_log (actor, entity, entity_key, action, before, after, revision)
                VALUES (\(actor), 'rule', \(change.rule.key), \(action), \(before), \(after), \(revision))
                """)
            var event = Stb_Rules_V1_ChangeEvent()
            event.entity = "rule"
            event.key = change.rule.key
            event.action = change.action
            event.state = change.rule
            event.actor = actor
            event.atMs = nowMs
            event.revision = UInt64(revision)
            events.append(NewOutboxEvent(entity: "rule", key: change.rule.key, action: action, payload: event.serializedBytes(), actor: actor))
        }
        var start = 0
        while start < audits.count {
            let end = min(start + 1000, audits.count)
            _ = try await transaction.pipeline(Array(audits[start..<end]))
            start = end
        }
        try await outbox.append(events, in: transaction)
    }
}

extension RulesService {
    /// Runs `body` in a transaction whose changes are recorded; reloads the engine after
    /// a commit that changed something.
    func change<R: Sendable>(actor: String, _ body: (PostgresTransaction, RuleChanges) async throws -> R) async throws -> R {
        let (result, changed) = try await pool.withTransaction(maxAttempts: 3) { transaction in
            let changes = RuleChanges(actor: actor)
            let result = try await body(transaction, changes)
            try await changes.write(in: transaction, outbox: outbox)
            return (result, !changes.changes.isEmpty)
        }
        if changed { try await reloadRules() }
        return result
    }

    /// Replays rule events after a cursor, then follows them live (see `STBService.watch`).
    func watch(_ request: Stb_Rules_V1_WatchRequest, _ writer: RPCWriter<Stb_Rules_V1_ChangeEvent>) async throws {
        try await STBService.watch(after: request.after, feed: feed, reload: "reload the rules and watch again", to: writer) { stored in
            var event = try stored.payload.withUnsafeBytes { try Stb_Rules_V1_ChangeEvent(serializedBytes: $0) }
            event.cursor = stored.cursor.description
            return event
        }
    }
}
