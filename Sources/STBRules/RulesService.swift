import Logging
import STBAPI
import STBMessages
import STBPostgres
import STBRPC
import STBService
import ServiceLifecycle
import Synchronization

typealias RuleMessage = Stb_Rules_V1_Rule

/// The rules service: CRUD and import of rules, evaluation of selections, analysis of
/// the rule set, state machines, and the change feed.
///
/// The compiled engine is rebuilt whenever the rules (a commit here, or a notification
/// from another instance) or the catalog copy change; calls read the current engine
/// without touching the database or the catalog.
public final class RulesService: Stb_Rules_V1_RulesService, Sendable {
    let pool: PostgresPool
    /// The change feed: one event per change, in commit order.
    public let outbox: Outbox
    let feed: OutboxFeed
    let logger: Logger
    let state = Mutex(EngineState())
    /// Recently evaluated selections, bases for `Evaluate` by difference.
    let selections = SelectionCache(capacity: RulesService.selectionCacheCapacity)
    /// The `Evaluate` reply for the catalog defaults, for the engine and revisions it was built for.
    let defaultResponse = Mutex<(engine: RuleEngine, revisions: Revisions, reply: EvaluateReply)?>(nil)
    /// The defaults' violations in wire form, for the current engine.
    let encodedDefaultsCache = Mutex<EncodedDefaults?>(nil)
    private let rulesChanged: ChangeSignal

    /// The outbox channel woken on every rules commit.
    public static let channel = "rules_events"

    struct EngineState {
        var rules: [RuleMessage] = []
        var rulesRevision: UInt64 = 0
        var catalog: Stb_Catalog_V1_GetConfigResponse?
        var model: CatalogModel?
        var engine: RuleEngine?
        /// Each stored rule as last compiled, by key.
        var compiledRules: [String: (message: RuleMessage, outcome: Result<Rule, any Error>)] = [:]
        var problems: [String] = []
        /// Why the catalog copy is known to be stale, when it is.
        var catalogBehind: String?
    }

    /// A service on `pool`'s rules database; `signal` wakes `Watch` streams and the
    /// follower of other instances' changes. Call `reloadRules()` before serving.
    public init(pool: PostgresPool, signal: ChangeSignal, logger: Logger) {
        self.pool = pool
        self.outbox = Outbox(table: "events", channel: Self.channel, revisionTable: "rules_revision")
        self.feed = OutboxFeed(outbox: outbox, pool: pool, signal: signal)
        self.rulesChanged = signal
        self.logger = logger
    }

    // MARK: - Engine state

    /// Loads every rule from the database and rebuilds the engine.
    public func reloadRules() async throws {
        let rows = try await pool.query("SELECT \(unescaped: RuleMessage.columns) FROM \(unescaped: RuleMessage.source) ORDER BY r.key")
        let rules = try rows.map(RuleMessage.init(row:))
        let revision = try await storedRevision()
        state.withLock { state in
            state.rules = rules
            state.rulesRevision = revision
            rebuild(&state)
        }
    }

    private func storedRevision() async throws -> UInt64 {
        UInt64(try await pool.query("SELECT revision FROM rules_revision")[0].decode(0, as: Int64.self))
    }

    /// Reloads the rules when another instance changed them (woken by the outbox
    /// channel's LISTEN, or its periodic poll; one revision query per wake), until
    /// cancelled or the service group shuts down.
    public var ruleChangesFollower: some Service {
        ClosureService { [self] in
            await cancelWhenGracefulShutdown { await self.followRuleChanges() }
        }
    }

    func followRuleChanges() async {
        var seen = rulesChanged.generation
        while !Task.isCancelled {
            seen = await rulesChanged.wait(after: seen)
            if Task.isCancelled { return }
            do {
                let revision = try await storedRevision()
                if revision != state.withLock({ $0.rulesRevision }) { try await reloadRules() }
            } catch {
                logger.warning("reloading the rules failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// A new catalog copy arrived.
    public func catalogChanged(_ configuration: Stb_Catalog_V1_GetConfigResponse) {
        state.withLock { state in
            state.catalog = configuration
            state.model = CatalogModel(configuration)
            rebuild(&state, catalogChanged: true)
        }
        logger.info("catalog copy updated", metadata: ["revision": "\(configuration.revision)"])
    }

    /// Whether evaluation can be served (a catalog copy exists).
    public var isReady: Bool { state.withLock { $0.engine != nil } }

    /// Whether evaluation is served now: a catalog copy exists and is not known to be stale.
    public var isServing: Bool { state.withLock { $0.engine != nil && $0.catalogBehind == nil } }

    /// The catalog copy fell behind (calls that read it answer UNAVAILABLE until it catches
    /// up) or is current again.
    public func catalogFreshnessChanged(_ freshness: CatalogReplica.Freshness) {
        let reason: String? = switch freshness {
        case .current: nil
        case .behind(let have, let announced, _):
            "the catalog copy is behind (revision \(have); the catalog is at \(announced) or later) and cannot be refreshed"
        }
        state.withLock { $0.catalogBehind = reason }
    }

    /// UNAVAILABLE while the catalog copy is known to be stale.
    func requireCurrentCatalog(_ state: EngineState) throws {
        if let behind = state.catalogBehind {
            throw RPCError(code: .unavailable, message: "\(behind); retry later")
        }
    }

    /// Rebuilds the engine after a change of the rules or the catalog copy. A rule whose
    /// stored form is unchanged keeps its compiled form; when only rules changed, the
    /// engine is updated from the previous one (only changed rules are checked again).
    private func rebuild(_ state: inout EngineState, catalogChanged: Bool = false) {
        guard let model = state.model else { return }
        var rules: [Rule] = []
        var problems: [String] = []
        var changedKeys = Set<String>()
        var compiledRules: [String: (message: RuleMessage, outcome: Result<Rule, any Error>)] = [:]
        compiledRules.reserveCapacity(state.rules.count)
        for message in state.rules {
            let outcome: Result<Rule, any Error>
            if let cached = state.compiledRules[message.key], cached.message == message {
                outcome = cached.outcome
            } else {
                outcome = Result { try Self.compile(message) }
                changedKeys.insert(message.key)
            }
            compiledRules[message.key] = (message, outcome)
            switch outcome {
            case .success(let rule): rules.append(rule)
            case .failure(let error): problems.append("rule \(message.key): \(error)")
            }
        }
        if !catalogChanged, let engine = state.engine {
            state.engine = engine.replacingRules(rules, changedKeys: changedKeys)
        } else {
            state.engine = RuleEngine(rules: rules, catalog: model)
        }
        state.compiledRules = compiledRules
        state.problems = problems
    }

    /// One stored rule changed by a commit here.
    enum RuleEdit: Sendable {
        case updated(RuleMessage)
        case deleted(key: String)
    }

    /// Updates the engine with the one rule `edit` changed at `revision`, when that is the
    /// revision after the engine's (no other change between) and the rule compiled before
    /// and after: the rule keeps its place in the rule list, so the engine equals one
    /// rebuilt from every stored rule. False when the rules must be reloaded instead.
    func applyCommitted(_ edit: RuleEdit, revision: UInt64) -> Bool {
        state.withLock { state in
            guard revision == state.rulesRevision + 1, let engine = state.engine else { return false }
            let key: String
            switch edit {
            case .updated(let message): key = message.key
            case .deleted(let deleted): key = deleted
            }
            // The stored order is the database's (ORDER BY key in its collation): found by key.
            guard let position = state.rules.firstIndex(where: { $0.key == key }),
                  case .success? = state.compiledRules[key]?.outcome
            else { return false }
            switch edit {
            case .updated(let message):
                guard let rule = try? Self.compile(message) else { return false }
                state.rules[position] = message
                state.compiledRules[key] = (message, .success(rule))
                state.engine = engine.applying(.replace(rule))
            case .deleted:
                state.rules.remove(at: position)
                state.compiledRules[key] = nil
                state.engine = engine.applying(.remove(key))
            }
            state.rulesRevision = revision
            return true
        }
    }

    func engine() throws -> (RuleEngine, CatalogModel, UInt64) {
        let current = try currentEngine()
        return (current.engine, current.model, current.catalogRevision)
    }

    /// The engine with the catalog copy and the rules it was built from, and their revisions.
    func currentEngine() throws -> (engine: RuleEngine, model: CatalogModel, catalogRevision: UInt64, rulesRevision: UInt64) {
        try state.withLock { state in
            guard let engine = state.engine, let model = state.model, let catalog = state.catalog else {
                throw RPCError(code: .unavailable, message: "no copy of the catalog yet; retry shortly")
            }
            try requireCurrentCatalog(state)
            return (engine, model, catalog.revision, state.rulesRevision)
        }
    }
}
