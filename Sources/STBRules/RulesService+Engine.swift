import STBJSON
import STBMessages
import STBOptionValues
import STBRPC
import STBService
import Synchronization

/// The calls the compiled engine answers from memory: evaluation, analysis, impact and
/// the module state machines.
extension RulesService {
    /// The analysis of the whole rule set: cycles, dead options, unknown references,
    /// contradictions, and rules that no longer compile.
    public func checkRules(_ request: Stb_Rules_V1_CheckRulesRequest, context: ServerContext) throws -> Stb_Rules_V1_CheckRulesResponse {
        let (engine, _, revision) = try engine()
        let report = engine.check()
        return Stb_Rules_V1_CheckRulesResponse(
            cycles: report.cycles.map { Stb_Rules_V1_Cycle(chain: $0) },
            deadOptions: report.deadOptions.map { Stb_Rules_V1_DeadOption(optionKey: $0.key, reason: $0.explanation) },
            unknownReferences: report.unknownReferences.map { Stb_Rules_V1_UnknownReference(ruleKey: $0.ruleKey, optionKey: $0.optionKey) },
            contradictions: report.contradictoryChoices.map(\.explanation) + state.withLock { $0.problems },
            catalogRevision: revision)
    }

    /// Which of the named selections a proposed rule change would make invalid.
    public func impact(_ request: Stb_Rules_V1_ImpactRequest, context: ServerContext) throws -> Stb_Rules_V1_ImpactResponse {
        let (engine, model, _) = try engine()
        let change: RuleChange
        switch request.change {
        case .add(let rule):
            try check(problems(with: rule, at: "add"))
            change = .add(try Self.compile(rule))
        case .replace(let rule):
            try check(problems(with: rule, at: "replace"))
            change = .replace(try Self.compile(rule))
        case .removeKey(let key):
            change = .remove(key)
        case nil:
            throw invalidArgument(["change: give add, remove_key or replace"])
        }
        var selections: [String: Selection] = [:]
        for (name, selection) in request.selections {
            if let problem = TextLimit.name.problem(name) { throw invalidArgument(["selections: a name is \(problem)"]) }
            selections[name] = try Self.selection(selection, catalog: model, at: "selections[\(quoted(name))].options")
        }
        var response = Stb_Rules_V1_ImpactResponse()
        for (name, violations) in engine.impact(of: change, selections: selections) {
            response.newlyInvalid[name] = Stb_Rules_V1_ViolationList(violations: violations.map(Self.message))
        }
        return response
    }

    /// The state an event moves a module to; FAILED_PRECONDITION when it cannot, with a
    /// `PreconditionFailure` (`NO_TRANSITION`, `CONDITION_FAILED` or `CONDITION_ERROR`, its
    /// subject `module/state/event`) and an `ErrorInfo` with the same reason.
    public func fire(_ request: Stb_Rules_V1_FireRequest, context: ServerContext) throws -> Stb_Rules_V1_FireResponse {
        let (engine, _, _) = try engine()
        switch engine.fire(module: request.moduleKey, state: request.state, event: request.event, context: try Self.context(request.contextJson)) {
        case .moved(let to):
            return Stb_Rules_V1_FireResponse(nextState: to)
        case .noTransition(let available):
            let listed = available.isEmpty ? "none" : available.joined(separator: ", ")
            let message = "no transition for event \(quoted(request.event)) from state \(quoted(request.state)) in module \(quoted(request.moduleKey)); events from that state: \(listed)"
            throw Self.refusal("NO_TRANSITION", request, message: message, description: message)
        case .conditionFailed(let condition, let values):
            let listed = values.map { "\($0.variable) [=\($0.value?.canonicalText ?? "missing")]" }.joined(separator: ", ")
            let seen = listed.isEmpty ? "no values" : listed
            throw Self.refusal(
                "CONDITION_FAILED", request,
                message: "the condition \(condition) of \(request.moduleKey)/\(request.state)/\(request.event) does not hold; it saw \(seen)",
                description: "the condition \(condition) does not hold; it saw \(seen)")
        case .conditionError(let condition, let message):
            throw Self.refusal(
                "CONDITION_ERROR", request, message: "the condition \(condition) could not be evaluated: \(message)",
                description: "the condition \(condition) could not be evaluated: \(message)")
        case .unknownModule:
            throw RPCError(code: .notFound, message: "module \(quoted(request.moduleKey)) not found in the catalog")
        }
    }

    /// A refused `Fire`: FAILED_PRECONDITION whose details name the transition.
    static func refusal(_ type: String, _ request: Stb_Rules_V1_FireRequest, message: String, description: String) -> RPCError {
        RPCError(code: .failedPrecondition, message: message, details: [
            .preconditionFailure(type: type, subject: "\(request.moduleKey)/\(request.state)/\(request.event)", description: description),
            .errorInfo(reason: type, metadata: ["module": request.moduleKey, "state": request.state, "event": request.event]),
        ])
    }

    /// The events a module in a state can take now, with the states they lead to.
    public func availableEvents(_ request: Stb_Rules_V1_AvailableEventsRequest, context: ServerContext) throws -> Stb_Rules_V1_AvailableEventsResponse {
        let (engine, model, _) = try engine()
        guard model.modules[request.moduleKey] != nil else {
            throw RPCError(code: .notFound, message: "module \(quoted(request.moduleKey)) not found in the catalog")
        }
        let available = engine.availableEvents(module: request.moduleKey, state: request.state, context: try Self.context(request.contextJson))
        return Stb_Rules_V1_AvailableEventsResponse(events: available.map { Stb_Rules_V1_AvailableEvent(event: $0.event, toState: $0.to) })
    }

    // MARK: - Conversions

    /// The engine's selection for a request, checked against the catalog copy: a key the
    /// catalog does not have, or a value that is not of its option's type, is
    /// INVALID_ARGUMENT naming the choice under `path` (`options[3].key: unknown option
    /// "nope"`). Values are passed on in canonical form (`5.0` for an integer is 5); whether
    /// they fit the option's constraints is the engine's to report, as violations.
    public static func selection(_ request: Stb_Rules_V1_EvaluateRequest, catalog: CatalogModel, at path: String = "options") throws -> Selection {
        var choices: [String: Selection.Choice] = [:]
        choices.reserveCapacity(request.options.count)
        try resolveChoices(request, at: path, resolve: { catalog.options[$0].map { ((), $0.type.valueType) } }) { key, _, choice in
            choices[key] = choice
        }
        return Selection(choices: choices)
    }

    /// `selection(_:catalog:at:)` resolved straight to `engine`'s option slots, in request
    /// order (no dictionary of keys): the same checks and the same INVALID_ARGUMENT.
    public static func slotChoices(
        _ request: Stb_Rules_V1_EvaluateRequest, engine: RuleEngine, at path: String = "options"
    ) throws -> [(slot: Int, choice: Selection.Choice)] {
        var choices: [(slot: Int, choice: Selection.Choice)] = []
        choices.reserveCapacity(request.options.count)
        try resolveChoices(request, at: path, resolve: { key in engine.slot(of: key).map { ($0, engine.valueType(ofSlot: $0)) } }) {
            _, slot, choice in choices.append((slot, choice))
        }
        return choices
    }

    /// Walks the request's choices: `resolve` gives a key's handle (a slot, or nothing)
    /// and value type, nil for an unknown option; each valid choice goes to `add`, and
    /// every problem (empty key, unknown option, a value not of the type) is collected
    /// into one INVALID_ARGUMENT naming `path[i]`.
    static func resolveChoices<Handle>(
        _ request: Stb_Rules_V1_EvaluateRequest, at path: String, resolve: (String) -> (Handle, OptionValueType)?,
        add: (String, Handle, Selection.Choice) -> Void
    ) throws {
        var problems: [String] = []
        for (index, option) in request.options.enumerated() {
            var choice = Selection.Choice(included: option.included)
            guard !option.key.isEmpty else {
                problems.append("\(path)[\(index)].key: required")
                continue
            }
            guard let (handle, valueType) = resolve(option.key) else {
                problems.append("\(path)[\(index)].key: unknown option \(quoted(option.key))")
                continue
            }
            if let text = option.valueJson {
                do {
                    choice.value = try choiceValue(text, valueType)
                } catch {
                    problems.append("\(path)[\(index)].value_json: \(error.message)")
                }
            }
            add(option.key, handle, choice)
        }
        try check(problems)
    }

    /// Why a choice's `value_json` is refused, as the caller is told.
    struct ChoiceValueProblem: Error {
        var message: String
    }

    /// A choice's `value_json` for an option of `type`, in canonical form (`5.0` for an
    /// integer is 5): not JSON, or not of the type, is refused.
    static func choiceValue(_ text: String, _ type: OptionValueType) throws(ChoiceValueProblem) -> JSONValue {
        if let value = literalValue(text, type) { return value }
        return try parsedValue(text, type)
    }

    /// The common spellings read without the JSON parser: `true` and `false` for a boolean,
    /// plain decimal digits (at most 18, no leading zero or `-0`) for an integer; nil for
    /// anything else. The same value `parsedValue` gives, which a test checks.
    static func literalValue(_ text: String, _ type: OptionValueType) -> JSONValue? {
        switch type {
        case .boolean:
            if text == "true" { return .bool(true) }
            if text == "false" { return .bool(false) }
            return nil
        case .integer:
            var text = text
            return text.withUTF8 { plainInteger(UnsafeRawBufferPointer($0)) }.map { .integer($0) }
        default:
            return nil
        }
    }

    /// `choiceValue` through the JSON parser.
    static func parsedValue(_ text: String, _ type: OptionValueType) throws(ChoiceValueProblem) -> JSONValue {
        let json: JSONValue
        do {
            json = try JSONValue.parse(text)
        } catch {
            throw ChoiceValueProblem(message: "\(error)")
        }
        do {
            return try type.value(fromJSON: json).json
        } catch {
            throw ChoiceValueProblem(message: error.message)
        }
    }

    static func context(_ text: String) throws -> JSONValue {
        if text.isEmpty { return .object([:]) }
        do {
            return try JSONValue.parse(text)
        } catch {
            throw invalidArgument(["context_json: \(error)"])
        }
    }

    static func message(_ violation: Violation) -> Stb_Rules_V1_Violation {
        Stb_Rules_V1_Violation(
            ruleKey: violation.ruleKey, type: Stb_Rules_V1_RuleType(named: violation.kind) ?? .unspecified,
            severity: violation.severity == .warning ? .warning : .error, message: violation.message,
            references: violation.references.map {
                Stb_Rules_V1_Reference(optionKey: $0.optionKey, included: $0.included, valueJson: $0.value?.canonicalText ?? "")
            },
            explanation: violation.explanation, constraint: violation.constraint ?? "")
    }
}
