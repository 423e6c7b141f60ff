// A choice's `value_json` read from its bytes in the request: the common spellings of each
// type without a String for the text or the JSON parser; anything else as before.
import STBJSON
import STBOptionValues

extension RulesService {
    /// `choiceValue(text, type)` of the text in `bytes` (which the request scanner has
    /// checked: valid UTF-8 without NUL, or the request is refused anyway): `true` and
    /// `false` for a boolean, plain digits for an integer (as `literalValue`), and for a
    /// string or enum a JSON string of printable ASCII without escapes, are read here.
    static func choiceValue(bytes: UnsafeRawBufferPointer, _ type: OptionValueType) throws(ChoiceValueProblem) -> JSONValue {
        switch type {
        case .boolean:
            if equals(bytes, "true") { return .bool(true) }
            if equals(bytes, "false") { return .bool(false) }
        case .integer:
            if let number = plainInteger(bytes) { return .integer(number) }
        case .string, .enum:
            if let text = plainString(bytes) {
                do {
                    return try type.value(fromJSON: .string(text)).json
                } catch {
                    throw ChoiceValueProblem(message: error.message)
                }
            }
        }
        return try choiceValue(String(decoding: bytes, as: UTF8.self), type)
    }

    @inline(__always)
    private static func equals(_ bytes: UnsafeRawBufferPointer, _ word: StaticString) -> Bool {
        guard bytes.count == word.utf8CodeUnitCount else { return false }
        let spelled = UnsafeRawBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        return bytes.elementsEqual(spelled)
    }

    /// A plain integer (what `literalValue` reads too): at most 18 digits, no leading zero, no `-0`.
    @inline(__always)
    static func plainInteger(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        var at = 0
        let negative = bytes.first == UInt8(ascii: "-")
        if negative { at = 1 }
        let digits = bytes.count - at
        guard digits >= 1, digits <= 18 else { return nil }
        let first = bytes[at]
        guard first != UInt8(ascii: "0") || (digits == 1 && !negative) else { return nil }
        var number: Int64 = 0
        while at < bytes.count {
            let digit = bytes[at] &- UInt8(ascii: "0")
            guard digit <= 9 else { return nil }
            number = number * 10 + Int64(digit)
            at += 1
        }
        return negative ? -number : number
    }

    /// The text of a JSON string of printable ASCII with no escape (`"v1"`); nil otherwise.
    @inline(__always)
    static func plainString(_ bytes: UnsafeRawBufferPointer) -> String? {
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "\""), bytes[bytes.count - 1] == UInt8(ascii: "\"") else { return nil }
        let inner = UnsafeRawBufferPointer(rebasing: bytes[1..<bytes.count - 1])
        for byte in inner where byte < 0x20 || byte > 0x7E || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { return nil }
        return String(decoding: inner, as: UTF8.self)
    }
}
