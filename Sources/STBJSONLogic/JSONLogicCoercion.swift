import STBJSON

/// JavaScript's coercions, as json-logic-js relies on them, for the JSON types.
extension LogicEvaluator {
    // MARK: - Equality

    /// JS `===`. Numbers compare by value (`1 === 1.0`); arrays and objects are never equal (JS compares identity).
    static func strictEquals(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.integer(let x), .integer(let y)): x == y
        case (.integer, .double), (.double, .integer), (.double, .double): numericEquals(a, b)
        default: false
        }
    }

    static func numericEquals(_ a: JSONValue, _ b: JSONValue) -> Bool {
        if case .integer(let x) = a, case .integer(let y) = b { return x == y }
        return toNumber(a) == toNumber(b)
    }

    /// JS `==` (the abstract equality algorithm).
    static func looseEquals(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.null, _), (_, .null): return false
        case (.integer, .integer), (.integer, .double), (.double, .integer), (.double, .double): return numericEquals(a, b)
        case (.string(let x), .string(let y)): return x == y
        case (.bool(let x), .bool(let y)): return x == y
        case (.bool(let x), _): return looseEquals(.integer(x ? 1 : 0), b)
        case (_, .bool(let y)): return looseEquals(a, .integer(y ? 1 : 0))
        case (.integer, .string(let text)), (.double, .string(let text)): return toNumber(a) == stringToNumber(text)
        case (.string(let text), .integer), (.string(let text), .double): return stringToNumber(text) == toNumber(b)
        case (.array, .array), (.array, .object), (.object, .array), (.object, .object): return false
        case (.array, _), (.object, _): return looseEquals(.string(jsString(a)), b)
        case (_, .array), (_, .object): return looseEquals(a, .string(jsString(b)))
        default: return false
        }
    }

    // MARK: - Relational

    /// JS `a < b` (or `a <= b`): strings compare by UTF-16 code units, everything else as numbers; NaN is false.
    static func compare(_ a: JSONValue, _ b: JSONValue, orEqual: Bool) -> Bool {
        if case .integer(let x) = a, case .integer(let y) = b { return orEqual ? x <= y : x < y }
        let left = primitive(a)
        let right = primitive(b)
        if case .string(let x) = left, case .string(let y) = right {
            if orEqual { return !y.utf16.lexicographicallyPrecedes(x.utf16) }
            return x.utf16.lexicographicallyPrecedes(y.utf16)
        }
        let x = toNumber(left)
        let y = toNumber(right)
        return orEqual ? x <= y : x < y  // false when either is NaN
    }

    /// JS ToPrimitive: arrays and objects become their string form.
    static func primitive(_ value: JSONValue) -> JSONValue {
        switch value {
        case .array, .object: .string(jsString(value))
        default: value
        }
    }

    // MARK: - Numbers

    /// JS ToNumber (`Number(x)`).
    static func toNumber(_ value: JSONValue) -> Double {
        switch value {
        case .null: 0
        case .bool(let flag): flag ? 1 : 0
        case .integer(let number): Double(number)
        case .double(let number): number
        case .string(let text): stringToNumber(text)
        case .array: stringToNumber(jsString(value))
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
    static func stringToNumber(_ text: String) -> Double {
        let body = String(trimmed(text))
        if body.isEmpty { return 0 }
        if let value = Int64(body) { return Double(value) }
        switch body {
        case "Infinity", "+Infinity": return .infinity
        case "-Infinity": return -.infinity
        default: break
        }
        if body.count > 2, body.hasPrefix("0") {
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
    static func parseFloat(_ value: JSONValue) -> Double {
        switch value {
        case .integer(let number): return Double(number)
        case .double(let number): return number
        default: break
        }
        let scalars = Array(trimmed(jsString(value)))
        var index = 0
        var text = ""
        if index < scalars.count, scalars[index] == "+" || scalars[index] == "-" {
            text.unicodeScalars.append(scalars[index])
            index += 1
        }
        let infinity: [Unicode.Scalar] = Array("Infinity".unicodeScalars)
        if scalars.count - index >= infinity.count, Array(scalars[index..<index + infinity.count]) == infinity {
            return text == "-" ? -.infinity : .infinity
        }
        var digits = 0
        func isDigit(_ i: Int) -> Bool { i < scalars.count && scalars[i].value >= 0x30 && scalars[i].value <= 0x39 }
        while isDigit(index) {
            text.unicodeScalars.append(scalars[index])
            index += 1
            digits += 1
        }
        if index < scalars.count, scalars[index] == "." {
            var fraction = "."
            var fractionDigits = 0
            var probe = index + 1
            while isDigit(probe) {
                fraction.unicodeScalars.append(scalars[probe])
                probe += 1
                fractionDigits += 1
            }
            if digits + fractionDigits > 0 {
                text += fraction
                index = probe
                digits += fractionDigits
            }
        }
        guard digits > 0 else { return .nan }
        if index < scalars.count, scalars[index] == "e" || scalars[index] == "E" {
            var exponent = "e"
            var probe = index + 1
            if probe < scalars.count, scalars[probe] == "+" || scalars[probe] == "-" {
                exponent.unicodeScalars.append(scalars[probe])
                probe += 1
            }
            var exponentDigits = 0
            while isDigit(probe) {
                exponent.unicodeScalars.append(scalars[probe])
                probe += 1
                exponentDigits += 1
            }
            if exponentDigits > 0 { text += exponent }
        }
        if text.hasSuffix(".") { text += "0" }
        if text.hasPrefix(".") || text.hasPrefix("-.") || text.hasPrefix("+.") {
            text = text.replacingFirstDot()
        }
        return Double(text) ?? .nan
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
    static func jsString(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let flag): flag ? "true" : "false"
        case .integer(let number): String(number)
        case .double(let number): jsNumberString(number)
        case .string(let text): text
        case .array(let elements):
            elements.map { element -> String in
                if case .null = element { return "" }
                return jsString(element)
            }.joined(separator: ",")
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
