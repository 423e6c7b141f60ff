import STBMessages
import STBRPC
import STBService
import Synchronization

/// Evaluate: a whole selection, or the differences from one evaluated before.
extension RulesService {
    /// How many evaluated selections the service keeps for `base_selection_hash`.
    public static let selectionCacheCapacity = 4_096

    /// Whether a selection is valid against the rules and the catalog copy, and why not;
    /// with `base_selection_hash`, the selection is that base with the request's choices
    /// applied (FAILED_PRECONDITION `UNKNOWN_BASE_SELECTION` when the base is not held).
    public func evaluate(_ request: Stb_Rules_V1_EvaluateRequest, context: ServerContext) throws -> Stb_Rules_V1_EvaluateResponse {
        let (engine, model, catalogRevision, rulesRevision) = try currentEngine()
        let revisions = Revisions(catalog: catalogRevision, rules: rulesRevision)
        var selection = try Self.selection(request, catalog: model, at: "options")
        if !request.baseSelectionHash.isEmpty {
            guard let base = selections.selection(request.baseSelectionHash) else { throw Self.unknownBase }
            var choices = base.choices
            for (key, choice) in selection.choices { choices[key] = choice }
            selection = Selection(choices: choices)
        }
        let evaluated = engine.evaluateWithDifferences(selection)
        if evaluated.isDefault && evaluated.evaluation.unknownSelections.isEmpty {
            return defaultReply(engine, revisions)
        }
        let hash = Selection.hash(differences: evaluated.differences)
        selections.insert(hash, Selection(choices: Dictionary(evaluated.differences, uniquingKeysWith: { $1 })))
        var response = Self.response(evaluated.evaluation, revisions)
        response.selectionHash = hash
        return response
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

    /// The response for the catalog defaults, built once per engine and revisions.
    func defaultReply(_ engine: RuleEngine, _ revisions: Revisions) -> Stb_Rules_V1_EvaluateResponse {
        if let cached = defaultResponse.withLock({ $0 }), cached.engine === engine, cached.revisions == revisions {
            return cached.response
        }
        var response = Self.response(engine.defaultEvaluation, revisions)
        response.selectionHash = Self.defaultSelectionHash
        defaultResponse.withLock { $0 = (engine, revisions, response) }
        return response
    }

    static var unknownBase: RPCError {
        let description = "this service does not hold the selection named by base_selection_hash (evicted, or evaluated elsewhere); send the whole selection"
        return RPCError(code: .failedPrecondition, message: description, details: [
            .preconditionFailure(type: "UNKNOWN_BASE_SELECTION", subject: "base_selection_hash", description: description),
            .errorInfo(reason: "UNKNOWN_BASE_SELECTION", metadata: [:]),
        ])
    }
}
