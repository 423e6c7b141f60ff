import STBJSON

/// What `var` reads: the top-level data (through the lookup), an element of `map` & co., or reduce's pair.
enum LogicScope {
    case top(whole: JSONValue?)
    case element(JSONValue)
    case reduce(current: JSONValue, accumulator: JSONValue)
}

struct EvalState {
    var iterations = 0
}

enum LogicEvaluator {
    typealias Lookup = (String) -> JSONValue?

    static func eval(_ node: LogicNode, _ scope: LogicScope, _ state: inout EvalState, _ lookup: Lookup) throws(JSONLogicError) -> JSONValue {
        switch node {
        case .literal(let value):
            return value
        case .variable(let path, let fallback):
            if let value = try resolve(path, scope, lookup) { return value }
            if let fallback { return try eval(fallback, scope, &state, lookup) }
            return .null
        case .dynamicVariable(let nameNode, let fallback, let path):
            let nameValue = try eval(nameNode, scope, &state, lookup)
            guard let name = variableName(nameValue) else {
                throw JSONLogicError(path: path, message: "a variable name must be a string, a number or null, not \(nameValue.typeName)")
            }
            if let value = try resolve(LogicPath(name), scope, lookup, errorPath: path) { return value }
            if let fallback { return try eval(fallback, scope, &state, lookup) }
            return .null
        case .array(let elements):
            var values: [JSONValue] = []
            values.reserveCapacity(elements.count)
            for element in elements { values.append(try eval(element, scope, &state, lookup)) }
            return .array(values)
        case .operation(let op, let args, let path):
            return try operate(op, args, path, scope, &state, lookup)
        }
    }

    // MARK: - Variables

    /// The text of a variable name: strings as they are, numbers as JS prints them, null as "" (the whole data).
    static func variableName(_ value: JSONValue) -> String? {
        switch value {
        case .string(let name): name
        case .integer(let number): String(number)
        case .double(let number) where number.isFinite: jsNumberString(number)
        case .null: ""
        default: nil
        }
    }

    static func member(of value: JSONValue, key: String, index: Int?) -> JSONValue? {
        switch value {
        case .object(let members): return members[key]
        case .array(let elements):
            guard let index, index < elements.count else { return nil }
            return elements[index]
        default: return nil
        }
    }

    static func walk(_ start: JSONValue, _ components: ArraySlice<LogicPath.Component>) -> JSONValue? {
        var current = start
        for component in components {
            guard let next = member(of: current, key: component.key, index: component.index) else { return nil }
            current = next
        }
        return current
    }

    /// The value at `path`, nil when absent (json-logic's `undefined`).
    static func resolve(_ path: LogicPath, _ scope: LogicScope, _ lookup: Lookup, errorPath: String = "var") throws(JSONLogicError) -> JSONValue? {
        if path.components.isEmpty {
            switch scope {
            case .top(let whole):
                guard let whole else {
                    throw JSONLogicError(path: errorPath, message: "the whole data ({\"var\": \"\"}) is not available when evaluating with a lookup")
                }
                return whole
            case .element(let value): return value
            case .reduce(let current, let accumulator): return .object(["current": current, "accumulator": accumulator])
            }
        }
        switch scope {
        case .top:
            if let value = lookup(path.name) { return value }
            if path.components.count == 1 { return nil }
            guard let first = lookup(path.components[0].key) else { return nil }
            return walk(first, path.components.dropFirst())
        case .element(let value):
            return walk(value, path.components[...])
        case .reduce(let current, let accumulator):
            let first: JSONValue
            switch path.components[0].key {
            case "current": first = current
            case "accumulator": first = accumulator
            default: return nil
            }
            return walk(first, path.components.dropFirst())
        }
    }

    // MARK: - Operators

    static func operate(
        _ op: LogicOp, _ args: [LogicNode], _ path: String, _ scope: LogicScope, _ state: inout EvalState, _ lookup: Lookup
    ) throws(JSONLogicError) -> JSONValue {
        switch op {
        case .ifThen:
            var index = 0
            while index < args.count - 1 {
                if JSONLogic.isTruthy(try eval(args[index], scope, &state, lookup)) {
                    return try eval(args[index + 1], scope, &state, lookup)
                }
                index += 2
            }
            return index == args.count - 1 ? try eval(args[index], scope, &state, lookup) : .null
        case .and:
            var current = JSONValue.null
            for arg in args {
                current = try eval(arg, scope, &state, lookup)
                if !JSONLogic.isTruthy(current) { return current }
            }
            return current
        case .or:
            var current = JSONValue.null
            for arg in args {
                current = try eval(arg, scope, &state, lookup)
                if JSONLogic.isTruthy(current) { return current }
            }
            return current
        case .not:
            return .bool(!JSONLogic.isTruthy(try eval(args[0], scope, &state, lookup)))
        case .notNot:
            return .bool(JSONLogic.isTruthy(try eval(args[0], scope, &state, lookup)))
        case .equal, .notEqual, .strictEqual, .strictNotEqual:
            let a = try eval(args[0], scope, &state, lookup)
            let b = try eval(args[1], scope, &state, lookup)
            switch op {
            case .equal: return .bool(looseEquals(a, b))
            case .notEqual: return .bool(!looseEquals(a, b))
            case .strictEqual: return .bool(strictEquals(a, b))
            default: return .bool(!strictEquals(a, b))
            }
        case .less, .lessOrEqual:
            let orEqual = op == .lessOrEqual
            let a = try eval(args[0], scope, &state, lookup)
            let b = try eval(args[1], scope, &state, lookup)
            guard compare(a, b, orEqual: orEqual) else { return .bool(false) }
            if args.count == 3 {
                let c = try eval(args[2], scope, &state, lookup)
                return .bool(compare(b, c, orEqual: orEqual))
            }
            return .bool(true)
        case .greater, .greaterOrEqual:
            let a = try eval(args[0], scope, &state, lookup)
            let b = try eval(args[1], scope, &state, lookup)
            return .bool(compare(b, a, orEqual: op == .greaterOrEqual))
        case .max, .min:
            var allIntegers = true
            var best = 0.0
            var bestInteger: Int64 = 0
            for (index, arg) in args.enumerated() {
                let value = try eval(arg, scope, &state, lookup)
                if allIntegers, case .integer(let integer) = value {
                    if index == 0 || (op == .max ? integer > bestInteger : integer < bestInteger) { bestInteger = integer }
                    continue
                }
                if allIntegers {
                    allIntegers = false
                    best = Double(bestInteger)
                }
                let number = toNumber(value)
                if number.isNaN { throw notFinite(path) }
                if index == 0 || (op == .max ? number > best : number < best) { best = number }
            }
            return allIntegers ? .integer(bestInteger) : try number(best, path)
        case .add, .multiply:
            let isAdd = op == .add
            var integer: Int64 = isAdd ? 0 : 1
            var double = 0.0
            var exact = true
            for arg in args {
                let value = try eval(arg, scope, &state, lookup)
                if exact, case .integer(let operand) = value {
                    let (result, overflow) = isAdd ? integer.addingReportingOverflow(operand) : integer.multipliedReportingOverflow(by: operand)
                    if !overflow {
                        integer = result
                        continue
                    }
                }
                if exact {
                    exact = false
                    double = Double(integer)
                }
                let operand = parseFloat(value)
                double = isAdd ? double + operand : double * operand
            }
            return exact ? .integer(integer) : try number(double, path)
        case .subtract:
            let a = try eval(args[0], scope, &state, lookup)
            if args.count == 1 {
                if case .integer(let integer) = a, integer != .min { return .integer(-integer) }
                return try number(-toNumber(a), path)
            }
            let b = try eval(args[1], scope, &state, lookup)
            if case .integer(let x) = a, case .integer(let y) = b {
                let (result, overflow) = x.subtractingReportingOverflow(y)
                if !overflow { return .integer(result) }
            }
            return try number(toNumber(a) - toNumber(b), path)
        case .divide:
            let a = try eval(args[0], scope, &state, lookup)
            let b = try eval(args[1], scope, &state, lookup)
            let divisor = toNumber(b)
            if divisor == 0 { throw JSONLogicError(path: path, message: "division by zero") }
            if case .integer(let x) = a, case .integer(let y) = b, x % y == 0, !(x == .min && y == -1) {
                return .integer(x / y)
            }
            return try number(toNumber(a) / divisor, path)
        case .modulo:
            let a = try eval(args[0], scope, &state, lookup)
            let b = try eval(args[1], scope, &state, lookup)
            let divisor = toNumber(b)
            if divisor == 0 { throw JSONLogicError(path: path, message: "modulo by zero") }
            if case .integer(let x) = a, case .integer(let y) = b {
                let (result, overflow) = x.remainderReportingOverflow(dividingBy: y)
                return .integer(overflow ? 0 : result)
            }
            return try number(toNumber(a).truncatingRemainder(dividingBy: divisor), path)
        case .map, .filter, .all, .none, .some:
            let source = try eval(args[0], scope, &state, lookup)
            guard case .array(let elements) = source else {
                switch op {
                case .map, .filter: return .array([])
                case .none: return .bool(true)
                default: return .bool(false)
                }
            }
            try checkIterations(elements.count, path, &state)
            switch op {
            case .map:
                var results: [JSONValue] = []
                results.reserveCapacity(elements.count)
                for element in elements { results.append(try eval(args[1], .element(element), &state, lookup)) }
                return .array(results)
            case .filter:
                var results: [JSONValue] = []
                for element in elements where JSONLogic.isTruthy(try eval(args[1], .element(element), &state, lookup)) {
                    results.append(element)
                }
                return .array(results)
            case .all:
                if elements.isEmpty { return .bool(false) }
                for element in elements where !JSONLogic.isTruthy(try eval(args[1], .element(element), &state, lookup)) {
                    return .bool(false)
                }
                return .bool(true)
            default:  // none, some
                for element in elements where JSONLogic.isTruthy(try eval(args[1], .element(element), &state, lookup)) {
                    return .bool(op == .some)
                }
                return .bool(op == .none)
            }
        case .reduce:
            let source = try eval(args[0], scope, &state, lookup)
            var accumulator = args.count == 3 ? try eval(args[2], scope, &state, lookup) : .null
            guard case .array(let elements) = source else { return accumulator }
            try checkIterations(elements.count, path, &state)
            for element in elements {
                accumulator = try eval(args[1], .reduce(current: element, accumulator: accumulator), &state, lookup)
            }
            return accumulator
        case .merge:
            var results: [JSONValue] = []
            for arg in args {
                let value = try eval(arg, scope, &state, lookup)
                if case .array(let elements) = value { results.append(contentsOf: elements) } else { results.append(value) }
                if results.count > JSONLogic.maxIterationArray * 10 {
                    throw JSONLogicError(path: path, message: "result has more than \(JSONLogic.maxIterationArray * 10) elements")
                }
            }
            return .array(results)
        case .inArray:
            let needle = try eval(args[0], scope, &state, lookup)
            let haystack = try eval(args[1], scope, &state, lookup)
            switch haystack {
            case .array(let elements): return .bool(elements.contains { strictEquals(needle, $0) })
            case .string(let text):
                let part = jsString(needle)
                return .bool(part.isEmpty || text.contains(part))
            default: return .bool(false)
            }
        case .cat:
            var text = ""
            for arg in args {
                let value = try eval(arg, scope, &state, lookup)
                if case .null = value { continue }
                text += jsString(value)
            }
            return .string(text)
        case .substr:
            let source = jsString(try eval(args[0], scope, &state, lookup))
            let start = toInteger(toNumber(try eval(args[1], scope, &state, lookup)))
            var units = Array(source.utf16)
            var begin = start < 0 ? max(units.count + start, 0) : min(start, units.count)
            units = Array(units[begin...])
            begin = 0
            if args.count == 3 {
                let lengthValue = try eval(args[2], scope, &state, lookup)
                let length = toInteger(toNumber(lengthValue))
                let end = length < 0 ? max(units.count + length, 0) : min(length, units.count)
                units = Array(units[..<end])
            }
            return .string(String(decoding: units, as: UTF16.self))
        case .missing:
            var keys: [JSONValue] = []
            for (index, arg) in args.enumerated() {
                let value = try eval(arg, scope, &state, lookup)
                if index == 0, case .array(let list) = value {
                    keys = list
                    break
                }
                keys.append(value)
            }
            return .array(try missingKeys(keys, path, scope, lookup))
        case .missingSome:
            let needed = toNumber(try eval(args[0], scope, &state, lookup))
            let options = try eval(args[1], scope, &state, lookup)
            guard case .array(let keys) = options else {
                throw JSONLogicError(path: path, message: "the second argument must be an array of names, not \(options.typeName)")
            }
            let missing = try missingKeys(keys, path, scope, lookup)
            return Double(keys.count - missing.count) >= needed ? .array([]) : .array(missing)
        }
    }

    static func missingKeys(_ keys: [JSONValue], _ path: String, _ scope: LogicScope, _ lookup: Lookup) throws(JSONLogicError) -> [JSONValue] {
        var missing: [JSONValue] = []
        for key in keys {
            guard let name = variableName(key) else {
                throw JSONLogicError(path: path, message: "a variable name must be a string, a number or null, not \(key.typeName)")
            }
            switch try resolve(LogicPath(name), scope, lookup, errorPath: path) {
            case nil, .null?, .string("")?: missing.append(key)
            default: break
            }
        }
        return missing
    }

    static func checkIterations(_ count: Int, _ path: String, _ state: inout EvalState) throws(JSONLogicError) {
        guard count <= JSONLogic.maxIterationArray else {
            throw JSONLogicError(path: path, message: "array has \(count) elements, more than \(JSONLogic.maxIterationArray)")
        }
        state.iterations += count
        guard state.iterations <= JSONLogic.maxIterationsPerEvaluation else {
            throw JSONLogicError(path: path, message: "evaluation runs more than \(JSONLogic.maxIterationsPerEvaluation) iterations")
        }
    }

    static func notFinite(_ path: String) -> JSONLogicError {
        JSONLogicError(path: path, message: "result is not a finite number")
    }

    /// A numeric result: `.integer` when exact, `.double` otherwise; non-finite is an error.
    static func number(_ value: Double, _ path: String) throws(JSONLogicError) -> JSONValue {
        guard value.isFinite else { throw notFinite(path) }
        if let integer = Int64(exactly: value) { return .integer(integer) }
        return .double(value)
    }
}
