import STBJSON
import STBMessages
import STBOptionValues
import STBRPC
import STBService
import Synchronization

/// The calls the compiled engine answers from memory: evaluation, analysis, impact and
/// the module state machines.
extension RulesService {
    /// Whether a selection is valid against the rules and the catalog copy, and why not.
    public func evaluate(_ request: Stb_Rules_V1_EvaluateRequest, context: ServerContext) throws -> Stb_Rules_V1_EvaluateResponse {
        let (engine, model, revision) = try engine()
        return Self.response(engine.evaluate(try Self.selection(request, catalog: model, at: "options")), catalogRevision: revision)
    }

    /// The wire form of an evaluation.
    public static func response(_ evaluation: Evaluation, catalogRevision revision: UInt64) -> Stb_Rules_V1_EvaluateResponse {
        var response = Stb_Rules_V1_EvaluateResponse()
        response.valid = evaluation.valid
        response.violations = evaluation.violations.map(Self.message)
        response.closure = evaluation.closure.map(\.optionKey)
        response.conflicts = evaluation.conflicts.map { conflict in
            var message = Stb_Rules_V1_ClosureConflict()
            message.ruleKey = conflict.ruleKey
            message.chain = conflict.chain
            message.explanation = conflict.explanation
            return message
        }
        response.catalogRevision = revision
        return response
    }

    /// The analysis of the whole rule set: cycles, dead options, unknown references,
    /// contradictions, and rules that no longer compile.
    public func checkRules(_ request: Stb_Rules_V1_CheckRulesRequest, context: ServerContext) throws -> Stb_Rules_V1_CheckRulesResponse {
        let (engine, _, revision) = try engine()
        let report = engine.check()
        var response = Stb_Rules_V1_CheckRulesResponse()
        response.cycles = report.cycles.map { chain in
            var cycle = Stb_Rules_V1_Cycle()
            cycle.chain = chain
            return cycle
        }
        response.deadOptions = report.deadOptions.map { dead in
            var message = Stb_Rules_V1_DeadOption()
            message.optionKey = dead.key
            message.reason = dead.explanation
            return message
        }
        response.unknownReferences = report.unknownReferences.map { unknown in
            var message = Stb_Rules_V1_UnknownReference()
            message.ruleKey = unknown.ruleKey
            message.optionKey = unknown.optionKey
            return message
        }
        response.contradictions = report.contradictoryChoices.map(\.explanation)
            + state.withLock { $0.problems }
        response.catalogRevision = revision
        return response
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
            throw RPCError(code: .invalidArgument, message: "change: give add, remove_key or replace")
        }
        var selections: [String: Selection] = [:]
        for (name, selection) in request.selections {
            if let problem = TextLimit.name.problem(name) { throw RPCError(code: .invalidArgument, message: "selections: a name is \(problem)") }
            selections[name] = try Self.selection(selection, catalog: model, at: "selections[\(quoted(name))].options")
        }
        var response = Stb_Rules_V1_ImpactResponse()
        for (name, violations) in engine.impact(of: change, selections: selections) {
            var list = Stb_Rules_V1_ViolationList()
            list.violations = violations.map(Self.message)
            response.newlyInvalid[name] = list
        }
        return response
    }

    /// The state an event moves a module to; FAILED_PRECONDITION when it cannot.
    public func fire(_ request: Stb_Rules_V1_FireRequest, context: ServerContext) throws -> Stb_Rules_V1_FireResponse {
        let (engine, _, _) = try engine()
        let context = try Self.context(request.contextJson)
        switch engine.fire(module: request.moduleKey, state: request.state, event: request.event, context: context) {
        case .moved(let to):
            var response = Stb_Rules_V1_FireResponse()
            response.nextState = to
            return response
        case .noTransition(let available):
            let listed = available.isEmpty ? "none" : available.joined(separator: ", ")
            throw RPCError(code: .failedPrecondition, message: "no transition for event \(quoted(request.event)) from state \(quoted(request.state)) in module \(quoted(request.moduleKey)); events from that state: \(listed)")
        case .conditionFailed(let condition, let values):
            let seen = values.map { "\($0.variable) [=\($0.value?.canonicalText ?? "missing")]" }.joined(separator: ", ")
            throw RPCError(code: .failedPrecondition, message: "the condition \(condition) of \(request.moduleKey)/\(request.state)/\(request.event) does not hold; it saw \(seen.isEmpty ? "no values" : seen)")
        case .conditionError(let condition, let message):
            throw RPCError(code: .failedPrecondition, message: "the condition \(condition) could not be evaluated: \(message)")
        case .unknownModule:
            throw RPCError(code: .notFound, message: "module \(quoted(request.moduleKey)) not found in the catalog")
        }
    }

    /// The events a module in a state can take now, with the states they lead to.
    public func availableEvents(_ request: Stb_Rules_V1_AvailableEventsRequest, context: ServerContext) throws -> Stb_Rules_V1_AvailableEventsResponse {
        let (engine, model, _) = try engine()
        guard model.modules[request.moduleKey] != nil else {
            throw RPCError(code: .notFound, message: "module \(quoted(request.moduleKey)) not found in the catalog")
        }
        var response = Stb_Rules_V1_AvailableEventsResponse()
        response.events = engine.availableEvents(module: request.moduleKey, state: request.state, context: try Self.context(request.contextJson)).map { available in
            var event = Stb_Rules_V1_AvailableEvent()
            event.event = available.event
            event.toState = available.to
            return event
        }
        return response
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
        var problems: [String] = []
        for (index, option) in request.options.enumerated() {
            var choice = Selection.Choice(included: option.included)
            guard !option.key.isEmpty else {
                problems.append("\(path)[\(index)].key: required")
                continue
            }
            guard let info = catalog.options[option.key] else {
                problems.append("\(path)[\(index)].key: unknown option \(quoted(option.key))")
                continue
            }
            if let text = option.valueJson {
                do {
                    let json = try JSONValue.parse(text)
                    choice.value = try info.type.valueType.value(fromJSON: json).json
                } catch let error as OptionValueProblem {
                    problems.append("\(path)[\(index)].value_json: \(error.message)")
                } catch {
                    problems.append("\(path)[\(index)].value_json: \(error)")
                }
            }
            choices[option.key] = choice
        }
        try check(problems)
        return Selection(choices: choices)
    }

    static func context(_ text: String) throws -> JSONValue {
        if text.isEmpty { return .object([:]) }
        do {
            return try JSONValue.parse(text)
        } catch {
            throw RPCError(code: .invalidArgument, message: "context_json: \(error)")
        }
    }

    static func message(_ violation: Violation) -> Stb_Rules_V1_Violation {
        var message = Stb_Rules_V1_Violation()
        message.ruleKey = violation.ruleKey
        message.type = Stb_Rules_V1_RuleType(named: violation.kind) ?? .unspecified
        message.severity = violation.severity == .warning ? .warning : .error
        message.message = violation.message
        message.explanation = violation.explanation
        message.constraint = violation.constraint ?? ""
        message.references = violation.references.map { reference in
            var item = Stb_Rules_V1_Reference()
            item.optionKey = reference.optionKey
            item.included = reference.included
            item.valueJson = reference.value?.canonicalText ?? ""
            return item
        }
        return message
    }
}
