/// The JSON Canonicalization Scheme (RFC 8785): the one byte form of a value that
/// anyone can recompute (Python's `rfc8785.dumps`, for one), so a digest over it names
/// the value, not the way it was written.
///
/// - Objects: members sorted by their names' UTF-16 code units (not by scalars, not by
///   Swift's `<`, which compares canonically equivalent strings as equal).
/// - Strings: UTF-8, escaping only `"` `\` and the controls U+0000...U+001F; `\b \t \n
///   \f \r` by their short forms, the others as `\u00xx` with lowercase hex.
/// - Numbers: as ECMAScript's `Number.prototype.toString` writes the IEEE double
///   (`1e+21`, `1e-7`, `0.000001`, `4.5`, `100`, `-0` as `0`).
///
/// RFC 8785 holds every number as a double. An `.integer` within ±(2^53 − 1) is exactly
/// such a double and is written as its digits; one beyond is refused rather than rounded
/// to a neighbour (`9007199254740993` would otherwise canonicalize as `9007199254740992`
/// and two different values would share a digest). Python's `rfc8785` refuses those
/// integers too. NaN and the infinities have no JSON form and are refused.
extension JSONValue {
    /// The largest magnitude an `.integer` may have in the canonical form: 2^53 − 1
    /// (ECMAScript's `Number.MAX_SAFE_INTEGER`), the largest n with n and n + 1 both
    /// exact doubles.
    public static let jcsMaxSafeInteger: Int64 = (1 << 53) - 1

    /// The RFC 8785 canonical form as UTF-8 bytes (what a digest is taken over).
    public func jcsBytes() throws(JCSError) -> [UInt8] {
        var output: [UInt8] = []
        try appendJCS(to: &output)
        return output
    }

    /// The RFC 8785 canonical form as a string.
    public func jcsText() throws(JCSError) -> String {
        String(decoding: try jcsBytes(), as: UTF8.self)
    }

    /// Appends the RFC 8785 canonical form to `output`. On error `output` holds a
    /// partial form: discard it.
    public func appendJCS(to output: inout [UInt8]) throws(JCSError) {
        switch self {
        case .null: output.append(contentsOf: "null".utf8)
        case .bool(let value): output.append(contentsOf: (value ? "true" : "false").utf8)
        case .integer(let value):
            guard value >= -Self.jcsMaxSafeInteger, value <= Self.jcsMaxSafeInteger else {
                throw JCSError(code: .integerOutOfRange, path: "", reason: "the integer \(value) is outside -(2^53 - 1)...2^53 - 1, where a JSON number (an IEEE double) holds every integer exactly")
            }
            output.append(contentsOf: String(value).utf8)
        case .double(let value):
            guard value.isFinite else {
                throw JCSError(code: .nonFiniteNumber, path: "", reason: "\(value) has no JSON form")
            }
            Self.appendECMAScriptNumber(value, to: &output)
        case .string(let value): Self.appendJCSString(value, to: &output)
        case .array(let values):
            output.append(UInt8(ascii: "["))
            for (index, value) in values.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                do {
                    try value.appendJCS(to: &output)
                } catch {
                    throw error.within("[\(index)]")
                }
            }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            output.append(UInt8(ascii: "{"))
            let sorted = members.sorted { $0.key.utf16.lexicographicallyPrecedes($1.key.utf16) }
            for (index, member) in sorted.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                Self.appendJCSString(member.key, to: &output)
                output.append(UInt8(ascii: ":"))
                do {
                    try member.value.appendJCS(to: &output)
                } catch {
                    throw error.within(member.key)
                }
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    /// `value` as an RFC 8785 string (RFC 8785 §3.2.2.2).
    static func appendJCSString(_ value: String, to output: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        output.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x08: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x09: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x0A: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0C: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0D: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x00..<0x20:
                output.append(contentsOf: "\\u00".utf8)
                output.append(hex[Int(byte >> 4)])
                output.append(hex[Int(byte & 0x0F)])
            default:
                // Bytes of multi-byte scalars are all >= 0x80: copied as they are.
                output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }

    /// A finite double as ECMAScript's Number::toString writes it (ECMA-262 §6.1.6.1.20,
    /// RFC 8785 §3.2.2.3), from the shortest digits that read back as the same double.
    static func appendECMAScriptNumber(_ value: Double, to output: inout [UInt8]) {
        if value == 0 {
            output.append(UInt8(ascii: "0"))
            return
        }
        if value < 0 { output.append(UInt8(ascii: "-")) }
        let (digits, exponent) = shortestDigits(of: value.magnitude)
        // value = 0.d1d2…dk × 10^n, in ECMA-262's terms.
        let k = digits.count
        let n = exponent
        let zero = UInt8(ascii: "0")
        if k <= n && n <= 21 {
            output.append(contentsOf: digits)
            output.append(contentsOf: repeatElement(zero, count: n - k))
        } else if 0 < n && n <= 21 {
            output.append(contentsOf: digits[..<n])
            output.append(UInt8(ascii: "."))
            output.append(contentsOf: digits[n...])
        } else if -6 < n && n <= 0 {
            output.append(contentsOf: [zero, UInt8(ascii: ".")])
            output.append(contentsOf: repeatElement(zero, count: -n))
            output.append(contentsOf: digits)
        } else {
            output.append(digits[0])
            if k > 1 {
                output.append(UInt8(ascii: "."))
                output.append(contentsOf: digits[1...])
            }
            output.append(UInt8(ascii: "e"))
            output.append(n - 1 >= 0 ? UInt8(ascii: "+") : UInt8(ascii: "-"))
            output.append(contentsOf: String((n - 1).magnitude).utf8)
        }
    }

    /// The shortest decimal digits that read back as `value` (positive, finite), without
    /// leading or trailing zeros, and `n` with value = 0.digits × 10^n.
    ///
    /// Swift's `description` of a Double is that shortest (and, among the shortest, closest)
    /// form, as ECMAScript asks for; only its layout differs (`1e-07`, `5e-324`,
    /// `1.0`, `1e+16`), and that is taken apart here.
    private static func shortestDigits(of value: Double) -> (digits: [UInt8], exponent: Int) {
        let text = Array(value.description.utf8)
        var digits: [UInt8] = []
        digits.reserveCapacity(17)
        var pointPosition: Int?
        var exponent = 0
        var index = 0
        while index < text.count {
            let byte = text[index]
            if byte == UInt8(ascii: ".") {
                pointPosition = digits.count
            } else if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
                // Swift writes the exponent as decimal digits after an optional sign.
                exponent = Int(String(decoding: text[(index + 1)...], as: UTF8.self)) ?? 0
                break
            } else {
                digits.append(byte)
            }
            index += 1
        }
        var n = (pointPosition ?? digits.count) + exponent
        let leadingZeros = digits.prefix { $0 == UInt8(ascii: "0") }.count
        digits.removeFirst(leadingZeros)
        n -= leadingZeros
        while digits.last == UInt8(ascii: "0") { digits.removeLast() }
        return (digits, n)
    }
}

/// Why a value has no RFC 8785 canonical form.
public struct JCSError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of value was refused. Extensible.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String

        public init(rawValue: String) { self.rawValue = rawValue }

        /// An `.integer` beyond ±(2^53 − 1) (`JSONValue.jcsMaxSafeInteger`).
        public static let integerOutOfRange = Code(rawValue: "integer-out-of-range")
        /// A NaN or infinite `.double`.
        public static let nonFiniteNumber = Code(rawValue: "non-finite-number")

        public var description: String { rawValue }
    }

    /// What kind of value was refused.
    public var code: Code
    /// Where the refused value is, from the top: member names joined by `.`, element
    /// positions as `[i]` (`options.limits[2]`); empty for the top-level value.
    public var path: String
    /// What is wrong, readable by the caller.
    public var reason: String

    /// Creates an error for the value at `path`.
    public init(code: Code, path: String, reason: String) {
        self.code = code
        self.path = path
        self.reason = reason
    }

    /// `path: reason`, or the reason alone for the top-level value.
    public var description: String { path.isEmpty ? reason : "\(path): \(reason)" }

    /// This error seen from the container that holds it under `step` (a name or `[i]`).
    func within(_ step: String) -> JCSError {
        var copy = self
        if path.isEmpty {
            copy.path = step
        } else if path.hasPrefix("[") {
            copy.path = step + path
        } else {
            copy.path = step + "." + path
        }
        return copy
    }
}
