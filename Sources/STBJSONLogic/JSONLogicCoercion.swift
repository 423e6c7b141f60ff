import STBJSON

/// JavaScript's coercions, as json-logic-js relies on them, for the JSON types. Those that read
/// or build strings charge them to the evaluation's budget.
extension LogicEvaluator {
    // MARK: - Equality

    /// JS `===`. Numbers compare by value (`1 === 1.0`); arrays and objects are never equal (JS compares identity).
    static func strictEquals(_ a: JSONValue, _ b: JSONValue, _ state: inout EvalState) throws(JSONLogicError) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.string(let x), .string(let y)): try sameString(x, y, &state)
        case (.integer(let x), .integer(let y)): x == y
        case (.integer, .double), (.double, .integer), (.double, .double): numericEquals(a, b)
        default: false
        }
    }

    /// JS string equality: the same code units. Swift's `==` would also equate canonically
    /// equivalent strings ("é" precomposed and "e" + combining accent).
    static func sameString(_ x: String, _ y: String, _ state: inout EvalState) throws(JSONLogicError) -> Bool {
        guard x.utf8.count == y.utf8.count else { return false }
        try state.read(bytes: x.utf8.count)
        return x.utf8.elementsEqual(y.utf8)
    }

    /// For two numbers only.
    static func numericEquals(_ a: JSONValue, _ b: JSONValue) -> Bool {
        if case .integer(let x) = a, case .integer(let y) = b { return x == y }
        return (a.numberValue ?? .nan) == (b.numberValue ?? .nan)
    }

    /// JS `==` (the abstract equality algorithm).
    static func looseEquals(_ a: JSONValue, _ b: JSONValue, _ state: inout EvalState) throws(JSONLogicError) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.null, _), (_, .null): return false
        case (.integer, .integer), (.integer, .double), (.double, .integer), (.double, .double): return numericEquals(a, b)
        case (.string(let x), .string(let y)): return try sameString(x, y, &state)
        case (.bool(let x), .bool(let y)): return x == y
        case (.bool(let x), _): return try looseEquals(.integer(x ? 1 : 0), b, &state)
        case (_, .bool(let y)): return try looseEquals(a, .integer(y ? 1 : 0), &state)
        case (.integer, .string(let text)), (.double, .string(let text)): return try (a.numberValue ?? .nan) == stringToNumber(text, &state)
        case (.string(let text), .integer), (.string(let text), .double): return try stringToNumber(text, &state) == (b.numberValue ?? .nan)
        case (.array, .array), (.array, .object), (.object, .array), (.object, .object): return false
        case (.array, _), (.object, _): return try looseEquals(.string(jsString(a, &state)), b, &state)
        case (_, .array), (_, .object): return try looseEquals(a, .string(jsString(b, &state)), &state)
        default: return false
        }
    }

    // MARK: - Relational

    /// JS `a < b` (or `a <= b`): strings compare by UTF-16 code units, everything else as numbers; NaN is false.
    static func compare(_ a: JSONValue, _ b: JSONValue, orEqual: Bool, _ state: inout EvalState) throws(JSONLogicError) -> Bool {
        if case .integer(let x) = a, case .integer(let y) = b { return orEqual ? x <= y : x < y }
        let left = try primitive(a, &state)
        let right = try primitive(b, &state)
        if case .string(let x) = left, case .string(let y) = right {
            try state.read(bytes: min(x.utf8.count, y.utf8.count))
            if orEqual { return !y.utf16.lexicographicallyPrecedes(x.utf16) }
            return x.utf16.lexicographicallyPrecedes(y.utf16)
        }
        let x = try toNumber(left, &state)
        let y = try toNumber(right, &state)
        return orEqual ? x <= y : x < y  // false when either is NaN
    }

    /// JS ToPrimitive: arrays and objects become their string form.
    static func primitive(_ value: JSONValue, _ state: inout EvalState) throws(JSONLogicError) -> JSONValue {
        switch value {
        case .array, .object: .string(try jsString(value, &state))
        default: value
        }
    }

    // MARK: - Numbers

    /// JS ToNumber (`Number(x)`).
    static func toNumber(_ value: JSONValue, _ state: inout EvalState) throws(JSONLogicError) -> Double {
        switch value {
        case .null: 0
        case .bool(let flag): flag ? 1 : 0
        case .integer(let number): Double(number)
        case .double(let number): number
        case .string(let text): try stringToNumber(text, &state)
        case .array: try stringToNumber(jsString(value, &state), &state)
        case .object: .nan
        }
    }

    static func isJSWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x20, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF: true
        default: false
        }
    }

    static func trimmed(_ text: String) -> Substring.UnicodeScalarView {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isJSWhitespace($0) }),
              let last = scalars.lastIndex(where: { !isJSWhitespace($0) })
        else { return Substring("").unicodeScalars }
        return Substring(text).unicodeScalars[first...last]
    }

    /// JS `Number(string)`: the whole (trimmed) string must be a number; "" is 0.
    static func stringToNumber(_ text: String, _ state: inout EvalState) throws(JSONLogicError) -> Double {
        try state.read(bytes: text.utf8.count)
        let body = Substring(trimmed(text))
        if body.isEmpty { return 0 }
        if let value = Int64(body) { return Double(value) }
        switch body {
        case "Infinity", "+Infinity": return .infinity
        case "-Infinity": return -.infinity
        default: break
        }
        if body.utf8.count > 2, body.hasPrefix("0") {
            let radixChar = body[body.index(after: body.startIndex)]
            let radix: Int? = switch radixChar {
            case "x", "X": 16
            case "o", "O": 8
            case "b", "B": 2
            default: nil
            }
            if let radix {
                var result = 0.0
                for character in body.dropFirst(2) {
                    guard let digit = character.hexDigitValue, digit < radix else { return .nan }
                    result = result * Double(radix) + Double(digit)
                }
                return result
            }
        }
        guard body.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || $0 == 0x65 || $0 == 0x45 || $0 == 0x2B || $0 == 0x2D }),
              let value = Double(body)
        else { return .nan }
        return value
    }

    /// JS `parseFloat(x)`: the longest numeric prefix of the string form, NaN if none.
    static func parseFloat(_ value: JSONValue, _ state: inout EvalState) throws(JSONLogicError) -> Double {
        switch value {
        case .integer(let number): return Double(number)
        case .double(let number): return number
        default: break
        }
        let text = try jsString(value, &state)
        try state.read(bytes: text.utf8.count)
        let scalars = text.unicodeScalars
        var start = scalars.startIndex
        while start < scalars.endIndex, isJSWhitespace(scalars[start]) { start = scalars.index(after: start) }
        // The numeric prefix is ASCII; walk its bytes without copying the rest.
        let bytes = Substring(text)[start...].utf8
        var index = bytes.startIndex
        func byte(_ i: Substring.UTF8View.Index) -> UInt8? { i < bytes.endIndex ? bytes[i] : nil }
        func isDigit(_ i: Substring.UTF8View.Index) -> Bool { byte(i).map { $0 >= 0x30 && $0 <= 0x39 } ?? false }
        var literal = ""
        if let sign = byte(index), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            literal.unicodeScalars.append(Unicode.Scalar(sign))
            index = bytes.index(after: index)
        }
        if bytes[index...].starts(with: "Infinity".utf8) {
            return literal == "-" ? -.infinity : .infinity
        }
        var digits = 0
        let integerStart = index
        while isDigit(index) {
            index = bytes.index(after: index)
            digits += 1
        }
        literal += String(decoding: bytes[integerStart..<index], as: UTF8.self)
        if byte(index) == UInt8(ascii: ".") {
            var probe = bytes.index(after: index)
            var fractionDigits = 0
            while isDigit(probe) {
                probe = bytes.index(after: probe)
                fractionDigits += 1
            }
            if digits + fractionDigits > 0 {
                literal += String(decoding: bytes[index..<probe], as: UTF8.self)
                index = probe
                digits += fractionDigits
            }
        }
        guard digits > 0 else { return .nan }
        if let e = byte(index), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            var probe = bytes.index(after: index)
            if let sign = byte(probe), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { probe = bytes.index(after: probe) }
            let exponentStart = probe
            while isDigit(probe) { probe = bytes.index(after: probe) }
            if probe > exponentStart { literal += String(decoding: bytes[index..<probe], as: UTF8.self) }
        }
        if literal.hasSuffix(".") { literal += "0" }
        if literal.hasPrefix(".") || literal.hasPrefix("-.") || literal.hasPrefix("+.") {
            literal = literal.replacingFirstDot()
        }
        return Double(literal) ?? .nan
    }

    /// JS ToIntegerOrInfinity, clamped to Int (NaN is 0).
    static func toInteger(_ number: Double) -> Int {
        if number.isNaN { return 0 }
        if number >= Double(Int.max / 2) { return Int.max / 2 }
        if number <= Double(Int.min / 2) { return Int.min / 2 }
        return Int(number.rounded(.towardZero))
    }

    // MARK: - Strings

    /// JS `String(x)` (arrays as `join(",")` with null elements empty, objects as "[object Object]").
    /// Building the form of an array is bounded like any string the evaluation builds.
    static func jsString(_ value: JSONValue, _ state: inout EvalState) throws(JSONLogicError) -> String {
        guard case .array = value else { return scalarString(value) }
        var text = ""
        try appendJSString(value, to: &text, &state)
        try state.use(bytes: text.utf8.count)
        return text
    }

    static func appendJSString(_ value: JSONValue, to text: inout String, _ state: inout EvalState) throws(JSONLogicError) {
        guard case .array(let elements) = value else {
            let piece = scalarString(value)
            try state.checkString(bytes: text.utf8.count + piece.utf8.count)
            text += piece
            return
        }
        try state.step(elements.count)
        for (index, element) in elements.enumerated() {
            if index > 0 {
                try state.checkString(bytes: text.utf8.count + 1)
                text += ","
            }
            if case .null = element { continue }
            try appendJSString(element, to: &text, &state)
        }
    }

    /// `String(x)` of anything but an array.
    static func scalarString(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let flag): flag ? "true" : "false"
        case .integer(let number): String(number)
        case .double(let number): jsNumberString(number)
        case .string(let text): text
        case .array: ""
        case .object: "[object Object]"
        }
    }

    /// JS Number::toString: shortest round-trip digits; plain notation for 1e-7 < |x| < 1e21, else exponent.
    static func jsNumberString(_ number: Double) -> String {
        if number.isNaN { return "NaN" }
        if number.isInfinite { return number < 0 ? "-Infinity" : "Infinity" }
        if number == 0 { return "0" }
        if abs(number) < 1e18, let integer = Int64(exactly: number) { return String(integer) }
        let sign = number < 0 ? "-" : ""
        let text = "\(abs(number))"  // Swift also prints the shortest round-trip digits
        var mantissa = Substring(text)
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = text[..<e]
            exponent = Int(text[text.index(after: e)...]) ?? 0
        }
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        let integerPart = parts[0]
        let fractionPart = parts.count > 1 ? parts[1] : ""
        var digits = Array(integerPart + fractionPart)
        // value = 0.d1d2d3… × 10^n
        var n = integerPart.count + exponent
        while let first = digits.first, first == "0" {
            digits.removeFirst()
            n -= 1
        }
        while let last = digits.last, last == "0" { digits.removeLast() }
        let k = digits.count
        let all = String(digits)
        if k <= n && n <= 21 { return sign + all + String(repeating: "0", count: n - k) }
        if 0 < n && n <= 21 { return sign + String(digits[..<n]) + "." + String(digits[n...]) }
        if -6 < n && n <= 0 { return sign + "0." + String(repeating: "0", count: -n) + all }
        let e = n - 1
        let exponentText = (e >= 0 ? "+" : "-") + String(abs(e))
        if k == 1 { return sign + all + "e" + exponentText }
        return sign + String(digits[0]) + "." + String(digits[1...]) + "e" + exponentText
    }
}

extension String {
    /// ".5" → "0.5", "-.5" → "-0.5" (Swift's Double(_:) parses both, this only keeps the form plain).
    fileprivate func replacingFirstDot() -> String {
        if hasPrefix(".") { return "0" + self }
        return String(prefix(1)) + "0" + String(dropFirst())
    }
}
