import Logging
import STBJSON
import STBMessages
import STBPostgres
import STBRPC
import STBService
import ServiceLifecycle
import Synchronization

typealias RuleMessage = Stb_Rules_V1_Rule
typealias RulesAPI = Stb_Rules_V1_Rules

/// The rules service: CRUD and import of rules, evaluation of selections, analysis of
/// the rule set, state machines, and the change feed.
///
/// The compiled engine is rebuilt whenever the rules (a commit here, or a notification
/// from another instance) or the catalog copy change; calls read the current engine
/// without touching the database or the catalog.
public final class RulesService: RPCService, Sendable {
    let pool: PostgresPool
    /// The change feed: one event per change, in commit order.
    public let outbox: Outbox
    let feed: OutboxFeed
    let logger: Logger
    let calls: ServiceCalls
    let state = Mutex(EngineState())
    private let rulesChanged: ChangeSignal

    /// The outbox channel woken on every rules commit.
    public static let channel = "rules_events"

    struct EngineState {
        var rules: [RuleMessage] = []
        var rulesRevision: UInt64 = 0
        var catalog: Stb_Catalog_V1_GetConfigResponse?
        var model: CatalogModel?
        var engine: RuleEngine?
        var problems: [String] = []
        /// Why the catalog copy is known to be stale, when it is.
        var catalogBehind: String?
    }

    public init(pool: PostgresPool, signal: ChangeSignal, logger: Logger) {
        self.pool = pool
        self.outbox = Outbox(table: "events", channel: Self.channel, revisionTable: "rules_revision")
        self.feed = OutboxFeed(outbox: outbox, pool: pool, signal: signal)
        self.rulesChanged = signal
        self.logger = logger
        self.calls = ServiceCalls(service: "rules", logger: logger)
    }

    public func register(in router: inout RPCRouter) {
        router.register(RulesAPI.createRule, unary: { request, context in try await self.calls.run(context) { try await self.createRule(request, $0) } })
        router.register(RulesAPI.getRule, unary: { request, context in try await self.calls.run(context) { _ in try await self.getRule(request) } })
        router.register(RulesAPI.listRules, unary: { request, context in try await self.calls.run(context) { _ in try await self.listRules(request) } })
        router.register(RulesAPI.updateRule, unary: { request, context in try await self.calls.run(context) { try await self.updateRule(request, $0) } })
        router.register(RulesAPI.deleteRule, unary: { request, context in try await self.calls.run(context) { try await self.deleteRule(request, $0) } })
        router.register(RulesAPI.importRules, unary: { request, context in try await self.calls.run(context) { try await self.importRules(request, actor: $0) } })
        router.register(RulesAPI.evaluate, unary: { request, context in try await self.calls.run(context) { _ in try self.evaluate(request) } })
        router.register(RulesAPI.checkRules, unary: { request, context in try await self.calls.run(context) { _ in try self.checkRules() } })
        router.register(RulesAPI.impact, unary: { request, context in try await self.calls.run(context) { _ in try self.impact(request) } })
        router.register(RulesAPI.fire, unary: { request, context in try await self.calls.run(context) { _ in try self.fire(request) } })
        router.register(RulesAPI.availableEvents, unary: { request, context in try await self.calls.run(context) { _ in try self.availableEvents(request) } })
        router.register(RulesAPI.watch, serverStreaming: { request, writer, context in
            try await self.calls.run(context) { _ in try await self.watch(request, writer) }
        })
    }

    // MARK: - Engine state

    /// Loads every rule from the database and rebuilds the engine.
    public func reloadRules() async throws {
        let rows = try await pool.query(PostgresQuery(sql: "SELECT \(ruleColumns) FROM rules r ORDER BY r.key"))
        let rules = try rows.map(Self.rule)
        let revision = try await pool.query("SELECT revision FROM rules_revision")[0].decode(0, as: Int64.self)
        state.withLock { state in
            state.rules = rules
            state.rulesRevision = UInt64(revision)
            rebuild(&state)
        }
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
                let revision = UInt64(try await pool.query("SELECT revision FROM rules_revision")[0].decode(0, as: Int64.self))
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
            rebuild(&state)
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

    private func rebuild(_ state: inout EngineState) {
        guard let model = state.model else { return }
        var compiled: [Rule] = []
        var problems: [String] = []
        for message in state.rules {
            do {
                compiled.append(try Self.compile(message))
            } catch {
                problems.append("rule \(message.key): \(error)")
            }
        }
        state.engine = RuleEngine(rules: compiled, catalog: model)
        state.problems = problems
    }

    func engine() throws -> (RuleEngine, CatalogModel, UInt64) {
        try state.withLock { state in
            guard let engine = state.engine, let model = state.model, let catalog = state.catalog else {
                throw RPCError(code: .unavailable, message: "no copy of the catalog yet; retry shortly")
            }
            try requireCurrentCatalog(state)
            return (engine, model, catalog.revision)
        }
    }

    // MARK: - Rows

    let ruleColumns = """
        r.id, r.key, r.subject, r.type, r.payload::text, r.severity, r.message, r.active,
        (extract(epoch FROM r.created_at) * 1000)::int8, (extract(epoch FROM r.updated_at) * 1000)::int8
        """

    static func rule(_ row: PostgresRow) throws -> RuleMessage {
        var rule = RuleMessage()
        let type: String
        let severity: String
        (rule.id, rule.key, rule.subject, type, rule.payloadJson, severity, rule.message, rule.active, rule.createdAtMs, rule.updatedAtMs) =
            try row.decode(Int64.self, String.self, String.self, String.self, String.self, String.self, String.self, Bool.self, Int64.self, Int64.self)
        rule.type = ruleType(named: type) ?? .unspecified
        rule.severity = severity == "warning" ? .warning : .error
        return rule
    }

    static func typeName(_ type: Stb_Rules_V1_RuleType) -> String? {
        switch type {
        case .requires: "requires"
        case .forbidden: "forbidden"
        case .validation: "validation"
        case .choice: "choice"
        default: nil
        }
    }

    static func ruleType(named name: String) -> Stb_Rules_V1_RuleType? {
        switch name {
        case "requires": .requires
        case "forbidden": .forbidden
        case "validation": .validation
        case "choice": .choice
        default: nil
        }
    }

    static func json(_ rule: RuleMessage) -> JSONValue {
        .object([
            "key": .string(rule.key), "subject": .string(rule.subject), "type": .string(typeName(rule.type) ?? "unspecified"),
            "payload": (try? JSONValue.parse(rule.payloadJson)) ?? .string(rule.payloadJson),
            "severity": .string(rule.severity == .warning ? "warning" : "error"),
            "message": .string(rule.message), "active": .bool(rule.active),
        ])
    }
}
