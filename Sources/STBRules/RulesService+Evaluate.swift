import STBAPI
import STBMessages
import STBRPC
import STBService
import Synchronization

/// Evaluate: a whole selection, or the differences from one evaluated before.
extension RulesService {
    /// How many evaluated selections the service keeps for `base_selection_hash`.
    public static let selectionCacheCapacity = 4_096

    /// Evaluate answered with `EvaluateReply`, the wire form built by `evaluateEncoded`.
    static let evaluateEncodedMethod = ProtoMethod<Stb_Rules_V1_EvaluateRequest, EvaluateReply>(
        path: Stb_Rules_V1_Rules.evaluate.path, kind: .unary
    )

    /// Every method, with `Evaluate` answered in wire form (`evaluateEncoded`).
    public func register(in router: inout RPCRouter) {
        registerMethods(in: &router)
        router.register(Self.evaluateEncodedMethod, unary: { request, context in try self.evaluateEncoded(request, context: context) })
    }

    /// Whether a selection is valid against the rules and the catalog copy, and why not;
    /// with `base_selection_hash`, the selection is that base with the request's choices
    /// applied (FAILED_PRECONDITION `UNKNOWN_BASE_SELECTION` when the base is not held).
    /// The RPC is served by `evaluateEncoded`; this is the same answer as a message.
    public func evaluate(_ request: Stb_Rules_V1_EvaluateRequest, context: ServerContext) throws -> Stb_Rules_V1_EvaluateResponse {
        try Stb_Rules_V1_EvaluateResponse(serializedBytes: evaluateEncoded(request, context: context).bytes)
    }

    /// `evaluate`, in wire form: the defaults' violations that the selection leaves as
    /// they are are copied from their encoding, made once per engine.
    func evaluateEncoded(_ request: Stb_Rules_V1_EvaluateRequest, context: ServerContext) throws -> EvaluateReply {
        let (engine, _, catalogRevision, rulesRevision) = try currentEngine()
        let revisions = Revisions(catalog: catalogRevision, rules: rulesRevision)
        // Keys resolve to the engine's option slots once; no dictionary of keys is built.
        var choices = try Self.slotChoices(request, engine: engine, at: "options")
        var unknown: [String] = []
        if !request.baseSelectionHash.isEmpty {
            guard let base = selections.selection(request.baseSelectionHash) else { throw Self.unknownBase }
            // The base's choices first: the request's, later, replace them.
            var merged: [(slot: Int, choice: Selection.Choice)] = []
            merged.reserveCapacity(base.choices.count + choices.count)
            for (key, choice) in base.choices {
                if let slot = engine.slot(of: key) { merged.append((slot, choice)) } else { unknown.append(key) }
            }
            merged.append(contentsOf: choices)
            choices = merged
        }
        let evaluated = engine.evaluateWithDifferences(slots: choices, unknown: unknown)
        if evaluated.isDefault && evaluated.evaluation.unknownSelections.isEmpty {
            return defaultReply(engine, revisions)
        }
        let hash = Selection.hash(differences: evaluated.differences)
        selections.insert(hash, Selection(choices: Dictionary(evaluated.differences, uniquingKeysWith: { $1 })))
        return EvaluateReply(bytes: EvaluateReplyEncoder.reply(
            evaluated.evaluation, defaults: encodedDefaults(engine), revisions: revisions, selectionHash: hash))
    }

    /// The defaults' encoded violations for `engine`, made at its first evaluation.
    func encodedDefaults(_ engine: RuleEngine) -> EncodedDefaults {
        if let cached = encodedDefaultsCache.withLock({ $0 }), cached.engine === engine { return cached }
        let made = EncodedDefaults(engine)
        encodedDefaultsCache.withLock { $0 = made }
        return made
    }

    /// The catalog and rules revisions an evaluation was computed from.
    public struct Revisions: Sendable, Hashable {
        public var catalog: UInt64
        public var rules: UInt64

        public init(catalog: UInt64, rules: UInt64) {
            self.catalog = catalog
            self.rules = rules
        }
    }

    /// The wire form of an evaluation.
    public static func response(_ evaluation: Evaluation, _ revisions: Revisions) -> Stb_Rules_V1_EvaluateResponse {
        var response = Stb_Rules_V1_EvaluateResponse(
            valid: evaluation.valid, violations: evaluation.violations.map(Self.message), closure: evaluation.closure.map(\.optionKey),
            conflicts: evaluation.conflicts.map { Stb_Rules_V1_ClosureConflict(ruleKey: $0.ruleKey, chain: $0.chain, explanation: $0.explanation) },
            catalogRevision: revisions.catalog)
        response.rulesRevision = revisions.rules
        return response
    }

    /// The hash of the catalog defaults (a selection without differences).
    static let defaultSelectionHash = Selection.hash(differences: [])

    /// The reply for the catalog defaults, built once per engine and revisions.
    func defaultReply(_ engine: RuleEngine, _ revisions: Revisions) -> EvaluateReply {
        if let cached = defaultResponse.withLock({ $0 }), cached.engine === engine, cached.revisions == revisions {
            return cached.reply
        }
        let reply = EvaluateReply(bytes: EvaluateReplyEncoder.reply(
            engine.defaultEvaluation, defaults: encodedDefaults(engine), revisions: revisions, selectionHash: Self.defaultSelectionHash))
        defaultResponse.withLock { $0 = (engine, revisions, reply) }
        return reply
    }

    static var unknownBase: RPCError {
        let description = "this service does not hold the selection named by base_selection_hash (evicted, or evaluated elsewhere); send the whole selection"
        return RPCError(code: .failedPrecondition, message: description, details: [
            .preconditionFailure(type: "UNKNOWN_BASE_SELECTION", subject: "base_selection_hash", description: description),
            .errorInfo(reason: "UNKNOWN_BASE_SELECTION", metadata: [:]),
        ])
    }
}
