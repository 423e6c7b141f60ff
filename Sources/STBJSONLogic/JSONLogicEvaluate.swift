import STBJSON

/// What `var` reads: the top-level data (through the lookup), an element of `map` & co., or reduce's pair.
enum LogicScope {
    case top(whole: JSONValue?)
    case element(JSONValue)
    case reduce(current: JSONValue, accumulator: JSONValue)
}

/// What one evaluation has used of the bounds `JSONLogic` documents. Errors thrown here carry
/// no path: the operation running when a bound is crossed adds its own.
struct EvalState {
    var steps = 0
    var bytes = 0

    /// Charges `count` steps: nodes evaluated, loop iterations, array elements copied or searched.
    mutating func step(_ count: Int = 1) throws(JSONLogicError) {
        steps += count
        if steps > JSONLogic.maxStepsPerEvaluation {
            throw JSONLogicError(path: "", message: "evaluation takes more than \(JSONLogic.maxStepsPerEvaluation) steps")
        }
    }

    /// Charges `count` bytes built or copied.
    mutating func use(bytes count: Int) throws(JSONLogicError) {
        bytes += count
        if bytes > JSONLogic.maxBytesPerEvaluation {
            throw JSONLogicError(path: "", message: "evaluation builds or reads more than \(JSONLogic.maxBytesPerEvaluation) bytes")
        }
    }

    /// Charges `count` bytes read (compared, converted or searched): reading is work too.
    mutating func read(bytes count: Int) throws(JSONLogicError) {
        try use(bytes: count)
    }

    /// Refuses a string of `count` UTF-8 bytes before it is built.
    func checkString(bytes count: Int) throws(JSONLogicError) {
        if count > JSONLogic.maxStringBytes {
            throw JSONLogicError(path: "", message: "string longer than \(JSONLogic.maxStringBytes) bytes")
        }
    }

    /// Refuses an array of `count` elements before it is built.
    func checkArray(count: Int) throws(JSONLogicError) {
        if count > JSONLogic.maxArrayLength {
            throw JSONLogicError(path: "", message: "array longer than \(JSONLogic.maxArrayLength) elements")
        }
    }

    /// Refuses an array of `count` elements before it is built, and charges it.
    mutating func array(count: Int) throws(JSONLogicError) {
        try checkArray(count: count)
        try use(bytes: count * JSONLogic.bytesPerArrayElement)
    }
}

enum LogicEvaluator {
    typealias Lookup = (String) -> JSONValue?

    static func eval(_ node: LogicNode, _ scope: LogicScope, _ state: inout EvalState, _ lookup: Lookup) throws(JSONLogicError) -> JSONValue {
        try state.step()
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
            do {
                try state.read(bytes: name.utf8.count)
            } catch {
                throw JSONLogicError(path: path, message: error.message)
            }
            if let value = try resolve(LogicPath(name), scope, lookup, errorPath: path) { return value }
            if let fallback { return try eval(fallback, scope, &state, lookup) }
            return .null
        case .array(let elements):
            try state.array(count: elements.count)
            var values: [JSONValue] = []
            values.reserveCapacity(elements.count)
            for element in elements { values.append(try eval(element, scope, &state, lookup)) }
            return .array(values)
        case .operation(let op, let args, let path):
            do {
                return try operate(op, args, path, scope, &state, lookup)
            } catch {
                // Bounds and coercions do not know where they are; the operation running does.
                if error.path.isEmpty { throw JSONLogicError(path: path, message: error.message) }
                throw error
            }
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
            case .equal: return .bool(try looseEquals(a, b, &state))
            case .notEqual: return .bool(!(try looseEquals(a, b, &state)))
            case .strictEqual: return .bool(try strictEquals(a, b, &state))
            default: return .bool(!(try strictEquals(a, b, &state)))
            }
        case .less, .lessOrEqual:
            let orEqual = op == .lessOrEqual
            let a = try eval(args[0], scope, &state, lookup)
            let b = try eval(args[1], scope, &state, lookup)
            guard try compare(a, b, orEqual: orEqual, &state) else { return .bool(false) }
            if args.count == 3 {
                let c = try eval(args[2], scope, &state, lookup)
                return .bool(try compare(b, c, orEqual: orEqual, &state))
            }
            return .bool(true)
        case .greater, .greaterOrEqual:
            let a = try eval(args[0], scope, &state, lookup)
            let b = try eval(args[1], scope, &state, lookup)
            return .bool(try compare(b, a, orEqual: op == .greaterOrEqual, &state))
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
                let number = try toNumber(value, &state)
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
                let operand = try parseFloat(value, &state)
                double = isAdd ? double + operand : double * operand
            }
            return exact ? .integer(integer) : try number(double, path)
        case .subtract:
            let a = try eval(args[0], scope, &state, lookup)
            if args.count == 1 {
                if case .integer(let integer) = a, integer != .min { return .integer(-integer) }
                return try number(-toNumber(a, &state), path)
            }
            let b = try eval(args[1], scope, &state, lookup)
            if case .integer(let x) = a, case .integer(let y) = b {
                let (result, overflow) = x.subtractingReportingOverflow(y)
                if !overflow { return .integer(result) }
            }
            return try number(toNumber(a, &state) - toNumber(b, &state), path)
        case .divide:
            let a = try eval(args[0], scope, &state, lookup)
            let b = try eval(args[1], scope, &state, lookup)
            let divisor = try toNumber(b, &state)
            if divisor == 0 { throw JSONLogicError(path: path, message: "division by zero") }
            if case .integer(let x) = a, case .integer(let y) = b {
                // Int64.min / -1 has no Int64 result: it continues as a double below.
                let (quotient, overflow) = x.dividedReportingOverflow(by: y)
                let (remainder, _) = x.remainderReportingOverflow(dividingBy: y)
                if !overflow && remainder == 0 { return .integer(quotient) }
            }
            return try number(toNumber(a, &state) / divisor, path)
        case .modulo:
            let a = try eval(args[0], scope, &state, lookup)
            let b = try eval(args[1], scope, &state, lookup)
            let divisor = try toNumber(b, &state)
            if divisor == 0 { throw JSONLogicError(path: path, message: "modulo by zero") }
            if case .integer(let x) = a, case .integer(let y) = b {
                let (result, overflow) = x.remainderReportingOverflow(dividingBy: y)
                return .integer(overflow ? 0 : result)
            }
            return try number(toNumber(a, &state).truncatingRemainder(dividingBy: divisor), path)
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
                try state.array(count: elements.count)
                var results: [JSONValue] = []
                results.reserveCapacity(elements.count)
                for element in elements { results.append(try eval(args[1], .element(element), &state, lookup)) }
                return .array(results)
            case .filter:
                var results: [JSONValue] = []
                for element in elements where JSONLogic.isTruthy(try eval(args[1], .element(element), &state, lookup)) {
                    results.append(element)
                }
                try state.array(count: results.count)
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
                // Only reduce feeds a result back into itself, so only its result can nest
                // without bound (and deep values exhaust the stack when used or freed).
                switch accumulator {
                case .array, .object: try checkNesting(accumulator, path, &state)
                default: break
                }
            }
            return accumulator
        case .merge:
            var results: [JSONValue] = []
            for arg in args {
                let value = try eval(arg, scope, &state, lookup)
                let added: Int
                if case .array(let elements) = value { added = elements.count } else { added = 1 }
                try state.checkArray(count: results.count + added)
                try state.use(bytes: added * JSONLogic.bytesPerArrayElement)
                try state.step(added)
                if case .array(let elements) = value { results.append(contentsOf: elements) } else { results.append(value) }
            }
            return .array(results)
        case .inArray:
            let needle = try eval(args[0], scope, &state, lookup)
            let haystack = try eval(args[1], scope, &state, lookup)
            switch haystack {
            case .array(let elements):
                try state.step(elements.count)
                for element in elements where try strictEquals(needle, element, &state) { return .bool(true) }
                return .bool(false)
            case .string(let text):
                let part = try jsString(needle, &state)
                return .bool(try contains(text, part, &state))
            default: return .bool(false)
            }
        case .cat:
            var text = ""
            for arg in args {
                let value = try eval(arg, scope, &state, lookup)
                if case .null = value { continue }
                let piece = try jsString(value, &state)
                try state.checkString(bytes: text.utf8.count + piece.utf8.count)
                try state.use(bytes: piece.utf8.count)
                text += piece
            }
            return .string(text)
        case .substr:
            let source = try jsString(try eval(args[0], scope, &state, lookup), &state)
            let start = toInteger(try toNumber(try eval(args[1], scope, &state, lookup), &state))
            // Copying to code units costs at most two bytes per UTF-8 byte.
            try state.use(bytes: 2 * source.utf8.count)
            var units = Array(source.utf16)
            var begin = start < 0 ? max(units.count + start, 0) : min(start, units.count)
            units = Array(units[begin...])
            begin = 0
            if args.count == 3 {
                let lengthValue = try eval(args[2], scope, &state, lookup)
                let length = toInteger(try toNumber(lengthValue, &state))
                let end = length < 0 ? max(units.count + length, 0) : min(length, units.count)
                units = Array(units[..<end])
            }
            let result = String(decoding: units, as: UTF16.self)
            try state.checkString(bytes: result.utf8.count)
            try state.use(bytes: result.utf8.count)
            return .string(result)
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
            let missing = try missingKeys(keys, path, scope, &state, lookup)
            try state.array(count: missing.count)
            return .array(missing)
        case .missingSome:
            let needed = try toNumber(try eval(args[0], scope, &state, lookup), &state)
            let options = try eval(args[1], scope, &state, lookup)
            guard case .array(let keys) = options else {
                throw JSONLogicError(path: path, message: "the second argument must be an array of names, not \(options.typeName)")
            }
            let missing = try missingKeys(keys, path, scope, &state, lookup)
            try state.array(count: missing.count)
            return Double(keys.count - missing.count) >= needed ? .array([]) : .array(missing)
        }
    }

    static func missingKeys(
        _ keys: [JSONValue], _ path: String, _ scope: LogicScope, _ state: inout EvalState, _ lookup: Lookup
    ) throws(JSONLogicError) -> [JSONValue] {
        try state.step(keys.count)
        var missing: [JSONValue] = []
        for key in keys {
            guard let name = variableName(key) else {
                throw JSONLogicError(path: path, message: "a variable name must be a string, a number or null, not \(key.typeName)")
            }
            try state.read(bytes: name.utf8.count)
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
        do {
            try state.step(count)
        } catch {
            throw JSONLogicError(path: path, message: error.message)
        }
    }

    /// Refuses `value` if it nests arrays and objects deeper than `JSONLogic.maxValueDepth`;
    /// each element looked at is a step.
    static func checkNesting(_ value: JSONValue, _ path: String, _ state: inout EvalState, level: Int = 1) throws(JSONLogicError) {
        let children: [JSONValue]
        switch value {
        case .array(let elements): children = elements
        case .object(let members): children = Array(members.values)
        default: return
        }
        guard level <= JSONLogic.maxValueDepth else {
            throw JSONLogicError(path: path, message: "result nested deeper than \(JSONLogic.maxValueDepth) levels")
        }
        do {
            try state.step(children.count)
        } catch {
            throw JSONLogicError(path: path, message: error.message)
        }
        for child in children {
            try checkNesting(child, path, &state, level: level + 1)
        }
    }

    /// JS `text.includes(part)`: a search by code units (UTF-8 bytes match exactly where UTF-16
    /// code units do), in linear time (Knuth–Morris–Pratt) whatever the input.
    static func contains(_ text: String, _ part: String, _ state: inout EvalState) throws(JSONLogicError) -> Bool {
        let needle = Array(part.utf8)
        if needle.isEmpty { return true }
        if needle.count > text.utf8.count { return false }
        try state.read(bytes: text.utf8.count + 8 * needle.count)
        var fallback = [Int](repeating: 0, count: needle.count)
        var matched = 0
        for index in needle.indices.dropFirst() {
            while matched > 0 && needle[index] != needle[matched] { matched = fallback[matched - 1] }
            if needle[index] == needle[matched] { matched += 1 }
            fallback[index] = matched
        }
        matched = 0
        for byte in text.utf8 {
            while matched > 0 && byte != needle[matched] { matched = fallback[matched - 1] }
            if byte == needle[matched] { matched += 1 }
            if matched == needle.count { return true }
        }
        return false
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
