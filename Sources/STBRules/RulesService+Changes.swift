import STBJSON
import STBMessages
import STBPostgres
import STBRPC
import STBService

extension ChangeLog {
    /// Records a change to `rule` (its state before, for updates and deletions), with a
    /// `ChangeEvent` carrying the rule as it now is (as it was, for a deletion).
    func record(_ action: Stb_Common_V1_ChangeAction, _ rule: RuleMessage, before: RuleMessage?) {
        let actor = self.actor, actorID = self.actorID
        record(
            entity: RuleMessage.entityName, key: rule.entityKey, action: action, before: before?.auditJSON,
            after: action == .deleted ? nil : rule.auditJSON
        ) { revision, atMs in
            Stb_Rules_V1_ChangeEvent(
                entity: RuleMessage.entityName, key: rule.key, action: action, state: rule, actor: actor, atMs: atMs, revision: revision, actorID: actorID
            ).serializedBytes()
        }
    }
}

extension RulesService {
    /// Runs `body` in a transaction whose changes are recorded; reloads the engine after
    /// a commit that changed something.
    func change<R: Sendable>(actor: CallerIdentity, _ body: (PostgresTransaction, ChangeLog) async throws -> R) async throws -> R {
        let (result, changed) = try await pool.withTransaction(maxAttempts: 3) { transaction in
            let changes = ChangeLog(caller: actor)
            let result = try await body(transaction, changes)
            return (result, try await changes.write(in: transaction, outbox: outbox) != nil)
        }
        if changed { try await reloadRules() }
        return result
    }

    /// `change` for a body that changes one rule and says how (nil: nothing to apply). After
    /// the commit, when no other change came between (the revision taken is the one after
    /// the engine's), the engine is updated with that rule alone; otherwise every rule is
    /// reloaded.
    func changeRule<R: Sendable>(actor: CallerIdentity, _ body: (PostgresTransaction, ChangeLog) async throws -> (R, RuleEdit?)) async throws -> R {
        let (result, edit, revision) = try await pool.withTransaction(maxAttempts: 3) { transaction in
            let changes = ChangeLog(caller: actor)
            let (result, edit) = try await body(transaction, changes)
            return (result, edit, try await changes.write(in: transaction, outbox: outbox))
        }
        guard let revision else { return result }
        if let edit, applyCommitted(edit, revision: revision) { return result }
        try await reloadRules()
        return result
    }

    /// Replays rule events after a cursor, then follows them live (see `STBService.watch`).
    public func watch(_ request: Stb_Rules_V1_WatchRequest, writer: RPCWriter<Stb_Rules_V1_ChangeEvent>, context: ServerContext) async throws {
        try await STBService.watch(after: request.after, feed: feed, reload: "reload the rules and watch again", to: writer) { stored in
            var event = try stored.payload.withUnsafeBytes { try Stb_Rules_V1_ChangeEvent(serializedBytes: $0) }
            event.cursor = stored.cursor.description
            return event
        }
    }
}
