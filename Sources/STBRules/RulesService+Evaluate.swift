import STBAPI
import STBJSON
import STBMessages
import STBRPC
import STBService
import Synchronization

/// Evaluate: a whole selection, or the differences from one evaluated before.
extension RulesService {
    /// How many evaluated selections the service keeps for `base_selection_hash`.
    public static let selectionCacheCapacity = 4_096

    /// Evaluate as served: the request read from its wire bytes, the reply in wire form.
    static let evaluateEncodedMethod = ProtoMethod<EvaluateRequestBytes, EvaluateReply>(
        path: Stb_Rules_V1_Rules.evaluate.path, kind: .unary
    )

    /// Every method, with `Evaluate` served from wire bytes (`evaluateEncoded`).
    public func register(in router: inout RPCRouter) {
        registerMethods(in: &router)
        router.register(Self.evaluateEncodedMethod, unary: { request, context in try self.evaluateEncoded(request, context: context) })
        // Not registered as an immediate answer (`register(_:immediate:)`), although it needs
        // no I/O: measured against the task per call under bench-rules' RPC load, the sparse
        // selection's evaluations per server CPU-second fell by about a fifth.
    }

    /// Whether a selection is valid against the rules and the catalog copy, and why not;
    /// with `base_selection_hash`, the selection is that base with the request's choices
    /// applied (FAILED_PRECONDITION `UNKNOWN_BASE_SELECTION` when the base is not held).
    /// The RPC is served by `evaluateEncoded`; this is the same answer as a message.
    public func evaluate(_ request: Stb_Rules_V1_EvaluateRequest, context: ServerContext) throws -> Stb_Rules_V1_EvaluateResponse {
        let reply = try evaluateEncoded(EvaluateRequestBytes(bytes: request.serializedBytes()), context: context)
        return try Stb_Rules_V1_EvaluateResponse(serializedBytes: reply.bytes)
    }

    /// `evaluate`, from the request's wire bytes to the reply's: the choices are read
    /// straight into the engine's per-option arrays (`EvaluateRequestScanner`), and the
    /// defaults' violations that the selection leaves as they are are copied from their
    /// encoding, made once per engine.
    func evaluateEncoded(_ request: EvaluateRequestBytes, context: ServerContext) throws -> EvaluateReply {
        let (engine, _, catalogRevision, rulesRevision) = try currentEngine()
        let revisions = Revisions(catalog: catalogRevision, rules: rulesRevision)
        var selection = engine.slotSelection()
        let (baseHash, given) = try Self.readChoices(request.bytes, into: &selection, engine: engine)
        if let baseHash {
            guard let base = selections.selection(baseHash) else { throw Self.unknownBase }
            Self.lay(base, under: &selection, given: given, engine: engine)
        }
        let evaluated = engine.evaluateListed(selection)
        if evaluated.isDefault && evaluated.evaluation.unknownSelections.isEmpty {
            return defaultReply(engine, revisions)
        }
        let hash = Selection.hash(differences: evaluated.differences)
        // A selection evaluated again is held already: its choices are not made into a dictionary again.
        if !selections.contains(hash) {
            selections.insert(hash, HeldSelection(differences: evaluated.differences, engine: engine))
        }
        return EvaluateReply(bytes: EvaluateReplyEncoder.reply(
            evaluated.evaluation, defaults: encodedDefaults(engine), revisions: revisions, selectionHash: hash))
    }

    /// An EvaluateRequest's wire bytes read as Evaluate reads them: the selection by
    /// option slot of `engine`, and `base_selection_hash` (nil when empty). Throws what
    /// Evaluate answers for a request it refuses. Choices that are the defaults' own are
    /// left out (see `readChoices`), so the selection is the request's whole meaning only
    /// without a base: a base is laid with `lay(_:under:given:)`, which knows them.
    public static func slotSelection(wire bytes: [UInt8], engine: RuleEngine) throws -> (selection: RuleEngine.SlotSelection, baseHash: [UInt8]?) {
        var selection = engine.slotSelection()
        let hash = try readChoices(bytes, into: &selection, engine: engine).baseHash
        return (selection, hash)
    }

    /// Gives `base`'s choices to `selection` for the options the request did not give a
    /// choice for (`given`, which counts those it gave as the defaults' own and left out of
    /// `selection`): the request's choices replace the base's for the same option.
    static func lay(_ base: HeldSelection, under selection: inout RuleEngine.SlotSelection, given: GivenSlots, engine: RuleEngine) {
        if base.keyTable === engine.keyTable {
            for (slot, choice) in base.slots where !given.contains(slot) { selection.choose(slot, choice) }
            return
        }
        // Held from another catalog copy: its keys looked up in this one.
        for (key, choice) in base.selection.choices {
            if let slot = engine.slot(of: key) {
                if !given.contains(slot) { selection.choose(slot, choice) }
            } else {
                selection.addUnknown(key)
            }
        }
    }

    /// The option slots a request gave a choice for, one bit each.
    struct GivenSlots {
        private var words: [UInt64]

        init(count: Int) {
            words = [UInt64](repeating: 0, count: (count + 63) / 64)
        }

        /// Marks `slot` given; whether it was given before.
        @inline(__always)
        mutating func markGiven(_ slot: Int) -> Bool {
            let bit = UInt64(1) << UInt64(slot & 63)
            let word = words[slot >> 6]
            words[slot >> 6] = word | bit
            return word & bit != 0
        }

        func contains(_ slot: Int) -> Bool {
            words[slot >> 6] & UInt64(1) << UInt64(slot & 63) != 0
        }
    }

    /// Reads an EvaluateRequest's choices from its wire bytes into `selection`, with the
    /// checks `resolveChoices` makes and the generated decoder's refusals, as the router
    /// reports them (a string that is not UTF-8 or holds a NUL: INVALID_ARGUMENT naming
    /// it; bytes that are not protobuf: INTERNAL). Returns `base_selection_hash`, nil when
    /// empty, and every slot the request gave a choice for.
    ///
    /// A slot's first choice that is the defaults' own (no value, and `included` absent or
    /// as the default) is left out of `selection`: laid over the defaults it changes
    /// nothing, and a selection listing every option is mostly such choices. A later
    /// choice for the same slot still replaces it, and `given` keeps a base selection's
    /// choice from taking its place.
    static func readChoices(
        _ bytes: [UInt8], into selection: inout RuleEngine.SlotSelection, engine: RuleEngine, at path: String = "options"
    ) throws -> (baseHash: [UInt8]?, given: GivenSlots) {
        var problems: [String] = []
        let types = engine.valueTypes
        let defaultIncluded = engine.defaultIncluded
        var given = GivenSlots(count: defaultIncluded.count)
        let scanned = bytes.withUnsafeBytes { raw -> Result<Range<Int>?, WireDecodeProblem> in
            do throws(WireDecodeProblem) {
                return .success(try EvaluateRequestScanner.scan(raw, keys: engine.keyTable, valueText: false) { index, option in
                    guard let slot = option.slot else {
                        let key = option.unknownKey ?? ""
                        problems.append(key.isEmpty ? "\(path)[\(index)].key: required" : "\(path)[\(index)].key: unknown option \(quoted(key))")
                        return
                    }
                    let givenBefore = given.markGiven(slot)
                    if option.value == nil, !givenBefore, (option.included ?? defaultIncluded[slot]) == defaultIncluded[slot] { return }
                    var choice = Selection.Choice(included: option.included)
                    if let value = option.value {
                        do throws(ChoiceValueProblem) {
                            choice.value = try choiceValue(bytes: UnsafeRawBufferPointer(rebasing: raw[value]), types[slot])
                        } catch {
                            problems.append("\(path)[\(index)].value_json: \(error.message)")
                        }
                    }
                    selection.choose(slot, choice)
                })
            } catch {
                return .failure(error)
            }
        }
        let hashRange: Range<Int>?
        switch scanned {
        case .success(let range):
            hashRange = range
        case .failure(let problem):
            // As the router reports the generated decoder's refusals.
            let decoding = problem.decodingError(byteCount: bytes.count)
            switch problem.kind {
            case .malformed: throw RPCError(code: .internal, message: "could not decode the request as \(decoding.messageName)")
            case .invalidUTF8, .nulCharacter: throw RPCError(code: .invalidArgument, message: decoding.description)
            }
        }
        try check(problems)
        return (hashRange.map { Array(bytes[$0]) }, given)
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
