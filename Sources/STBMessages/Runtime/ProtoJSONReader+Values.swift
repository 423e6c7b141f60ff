// Scalars as proto3 JSON spells them: integers as numbers or strings (exponent forms
// too, when the value is integral), floating point with "NaN" and the infinities as
// strings, enums by name or number, bytes in either base64 alphabet.

extension _ProtoJSONReader {
    /// The parts of a number as JSON writes it: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
    struct NumberParts {
        var negative: Bool
        var integerDigits: Range<Int>
        var fractionDigits: Range<Int>
        /// Saturated at ±1,000,000: far beyond any value a field can hold.
        var exponent: Int
    }

    /// The bytes of an unquoted number token (not yet checked).
    mutating func numberToken() throws(ProtoJSONError) -> Range<Int> {
        let start = position
        while position < end {
            switch base[position] {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"),
                 UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"):
                position += 1
            default:
                guard position > start else {
                    throw syntaxError("expected a value")
                }
                return start..<position
            }
        }
        guard position > start else {
            throw syntaxError("expected a value")
        }
        return start..<position
    }

    /// `bytes[start..<end]` as a JSON number, or nil when it is not one.
    static func parseNumber(_ bytes: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> NumberParts? {
        var index = start
        func isDigit(_ at: Int) -> Bool {
            at < end && bytes[at] >= UInt8(ascii: "0") && bytes[at] <= UInt8(ascii: "9")
        }
        let negative = index < end && bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        let integerStart = index
        guard isDigit(index) else { return nil }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while isDigit(index) { index += 1 }
        }
        let integerDigits = integerStart..<index
        var fractionDigits = index..<index
        if index < end, bytes[index] == UInt8(ascii: ".") {
            index += 1
            let fractionStart = index
            guard isDigit(index) else { return nil }
            while isDigit(index) { index += 1 }
            fractionDigits = fractionStart..<index
        }
        var exponent = 0
        if index < end, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            var exponentNegative = false
            if index < end, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                exponentNegative = bytes[index] == UInt8(ascii: "-")
                index += 1
            }
            guard isDigit(index) else { return nil }
            while isDigit(index) {
                exponent = min(exponent * 10 + Int(bytes[index] - UInt8(ascii: "0")), 1_000_000)
                index += 1
            }
            if exponentNegative { exponent = -exponent }
        }
        guard index == end else { return nil }
        return NumberParts(negative: negative, integerDigits: integerDigits, fractionDigits: fractionDigits, exponent: exponent)
    }

    enum IntegerValue {
        case value(negative: Bool, magnitude: UInt64)
        case notIntegral
        case tooLarge
    }

    /// The exact integer a number spells (`1e2`, `100.0` and `100` alike), if it is one.
    static func integerValue(_ bytes: UnsafePointer<UInt8>, _ parts: NumberParts) -> IntegerValue {
        let integerCount = parts.integerDigits.count
        let total = integerCount + parts.fractionDigits.count
        func digit(_ at: Int) -> UInt64 {
            let byte = at < integerCount ? bytes[parts.integerDigits.lowerBound + at]
                : bytes[parts.fractionDigits.lowerBound + at - integerCount]
            return UInt64(byte - UInt8(ascii: "0"))
        }
        let scale = parts.exponent - parts.fractionDigits.count
        guard let lead = (0..<total).first(where: { digit($0) != 0 }) else {
            return .value(negative: parts.negative, magnitude: 0)
        }
        // Digits that land right of the decimal point must all be zero.
        let kept = scale < 0 ? total + scale : total
        if kept < total {
            for index in max(kept, 0)..<total where digit(index) != 0 {
                return .notIntegral
            }
        }
        guard kept > lead else {
            return .value(negative: parts.negative, magnitude: 0)
        }
        guard kept - lead <= 20, scale <= 20 else { return .tooLarge }
        var magnitude: UInt64 = 0
        for index in lead..<kept {
            let (times, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(digit(index))
            guard !overflow1, !overflow2 else { return .tooLarge }
            magnitude = sum
        }
        if scale > 0 {
            for _ in 0..<scale {
                let (times, overflow) = magnitude.multipliedReportingOverflow(by: 10)
                guard !overflow else { return .tooLarge }
                magnitude = times
            }
        }
        return .value(negative: parts.negative, magnitude: magnitude)
    }

    static func typeName<T: FixedWidthInteger>(_: T.Type) -> String {
        "\(T.isSigned ? "int" : "uint")\(T.bitWidth)"
    }

    /// `bytes[range]` as an integer of type `T`, or an error naming what is wrong.
    func integer<T: FixedWidthInteger>(_ range: Range<Int>, _: T.Type) throws(ProtoJSONError) -> T {
        func text() -> String {
            Self.shown(String(decoding: UnsafeBufferPointer(start: base + range.lowerBound, count: range.count), as: UTF8.self))
        }
        guard let parts = Self.parseNumber(base, range.lowerBound, range.upperBound) else {
            throw error("\(text()) is not an integer")
        }
        switch Self.integerValue(base, parts) {
        case .notIntegral:
            throw error("\(text()) is not an integer")
        case .tooLarge:
            throw error("\(text()) is out of range for \(Self.typeName(T.self))")
        case .value(let negative, let magnitude):
            if negative {
                guard magnitude == 0 || (T.isSigned && magnitude <= UInt64(T.max) + 1) else {
                    throw error("\(text()) is out of range for \(Self.typeName(T.self))")
                }
                return magnitude == 0 ? 0 : T(truncatingIfNeeded: 0 &- magnitude)
            }
            guard magnitude <= UInt64(T.max) else {
                throw error("\(text()) is out of range for \(Self.typeName(T.self))")
            }
            return T(truncatingIfNeeded: magnitude)
        }
    }

    /// A value from the input for an error message: quoted, and cut when long.
    static func shown(_ text: String) -> String {
        let cut = text.count > 40 ? String(text.prefix(40)) + "…" : text
        var writer = _ProtoJSONWriter(out: [])
        writer.string(cut)
        return String(decoding: writer.out, as: UTF8.self)
    }

    /// An integer field's value: a number, or a string holding one.
    mutating func integer<T: FixedWidthInteger>(_ type: T.Type) throws(ProtoJSONError) -> T {
        skipWhitespace()
        if peek == UInt8(ascii: "\"") {
            let token = try stringToken()
            guard !token.escaped else {
                throw error("expected an integer")
            }
            return try integer(token.start..<token.end, type)
        }
        guard peek == UInt8(ascii: "-") || (peek >= UInt8(ascii: "0") && peek <= UInt8(ascii: "9")) else {
            throw error("expected an integer")
        }
        return try integer(try numberToken(), type)
    }

    /// A floating-point field's value: a number, a string holding one, or "NaN",
    /// "Infinity", "-Infinity". Numbers beyond the double range are refused.
    mutating func floatingPoint() throws(ProtoJSONError) -> Double {
        skipWhitespace()
        let range: Range<Int>
        if peek == UInt8(ascii: "\"") {
            let token = try stringToken()
            guard !token.escaped else {
                throw error("expected a number")
            }
            range = token.start..<token.end
            let raw = UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
            if raw.elementsEqual("NaN".utf8) { return .nan }
            if raw.elementsEqual("Infinity".utf8) { return .infinity }
            if raw.elementsEqual("-Infinity".utf8) { return -.infinity }
        } else {
            guard peek == UInt8(ascii: "-") || (peek >= UInt8(ascii: "0") && peek <= UInt8(ascii: "9")) else {
                throw error("expected a number")
            }
            range = try numberToken()
        }
        let text = String(decoding: UnsafeBufferPointer(start: base + range.lowerBound, count: range.count), as: UTF8.self)
        guard Self.parseNumber(base, range.lowerBound, range.upperBound) != nil, let value = Double(text) else {
            throw error("\(Self.shown(text)) is not a number")
        }
        guard value.isFinite else {
            throw error("\(Self.shown(text)) is out of range for double")
        }
        return value
    }

    /// A string token's content with escapes decoded, as raw bytes.
    mutating func contentBytes(_ token: StringToken) throws(ProtoJSONError) -> [UInt8] {
        if token.escaped {
            return try unescaped(token)
        }
        return Array(UnsafeBufferPointer(start: base + token.start, count: token.end - token.start))
    }

    /// An enum value: its name (any alias), or its number (unknown numbers are kept).
    mutating func enumValue<Value: _ProtoJSONEnum>(_: Value.Type) throws(ProtoJSONError) -> Value {
        skipWhitespace()
        guard peek == UInt8(ascii: "\"") else {
            if peek == UInt8(ascii: "-") || (peek >= UInt8(ascii: "0") && peek <= UInt8(ascii: "9")) {
                return Value(rawValue: try integer(try numberToken(), Int32.self))
            }
            throw error("expected an enum name or number")
        }
        let token = try stringToken()
        let names = Value._jsonNames
        let found: Int?
        if token.escaped {
            let bytes = try unescaped(token)
            found = bytes.withUnsafeBytes { names.index(of: $0, hint: 0) }
        } else {
            found = names.index(of: UnsafeRawBufferPointer(start: base + token.start, count: token.end - token.start), hint: 0)
        }
        guard let found else {
            let text = String(decoding: try contentBytes(token), as: UTF8.self)
            throw error("\(Self.shown(text)) is not a value of \(names.typeName)")
        }
        return Value(rawValue: names.numbers[found])
    }
}

// MARK: - Reading each scalar type

extension Bool {
    static func _jsonValue(from reader: inout _ProtoJSONReader) throws(ProtoJSONError) -> Bool {
        reader.skipWhitespace()
        switch reader.peek {
        case UInt8(ascii: "t"):
            try reader.literal("true")
            return true
        case UInt8(ascii: "f"):
            try reader.literal("false")
            return false
        default:
            throw reader.error("expected true or false")
        }
    }

    static func _jsonKey(from reader: inout _ProtoJSONReader, _ key: _ProtoJSONReader.StringToken) throws(ProtoJSONError) -> Bool {
        let raw = UnsafeRawBufferPointer(start: reader.base + key.start, count: key.end - key.start)
        if !key.escaped, raw.elementsEqual("true".utf8) { return true }
        if !key.escaped, raw.elementsEqual("false".utf8) { return false }
        throw reader.error("map key is not true or false")
    }
}

extension Int32 {
    static func _jsonValue(from reader: inout _ProtoJSONReader) throws(ProtoJSONError) -> Int32 {
        try reader.integer(Int32.self)
    }

    static func _jsonKey(from reader: inout _ProtoJSONReader, _ key: _ProtoJSONReader.StringToken) throws(ProtoJSONError) -> Int32 {
        guard !key.escaped else { throw reader.error("map key is not an integer") }
        return try reader.integer(key.start..<key.end, Int32.self)
    }
}

extension UInt32 {
    static func _jsonValue(from reader: inout _ProtoJSONReader) throws(ProtoJSONError) -> UInt32 {
        try reader.integer(UInt32.self)
    }

    static func _jsonKey(from reader: inout _ProtoJSONReader, _ key: _ProtoJSONReader.StringToken) throws(ProtoJSONError) -> UInt32 {
        guard !key.escaped else { throw reader.error("map key is not an integer") }
        return try reader.integer(key.start..<key.end, UInt32.self)
    }
}

extension Int64 {
    static func _jsonValue(from reader: inout _ProtoJSONReader) throws(ProtoJSONError) -> Int64 {
        try reader.integer(Int64.self)
    }

    static func _jsonKey(from reader: inout _ProtoJSONReader, _ key: _ProtoJSONReader.StringToken) throws(ProtoJSONError) -> Int64 {
        guard !key.escaped else { throw reader.error("map key is not an integer") }
        return try reader.integer(key.start..<key.end, Int64.self)
    }
}

extension UInt64 {
    static func _jsonValue(from reader: inout _ProtoJSONReader) throws(ProtoJSONError) -> UInt64 {
        try reader.integer(UInt64.self)
    }

    static func _jsonKey(from reader: inout _ProtoJSONReader, _ key: _ProtoJSONReader.StringToken) throws(ProtoJSONError) -> UInt64 {
        guard !key.escaped else { throw reader.error("map key is not an integer") }
        return try reader.integer(key.start..<key.end, UInt64.self)
    }
}

extension Double {
    static func _jsonValue(from reader: inout _ProtoJSONReader) throws(ProtoJSONError) -> Double {
        try reader.floatingPoint()
    }
}

extension Float {
    static func _jsonValue(from reader: inout _ProtoJSONReader) throws(ProtoJSONError) -> Float {
        let value = try reader.floatingPoint()
        let narrowed = Float(value)
        guard narrowed.isFinite || !value.isFinite else {
            throw reader.error("\(value) is out of range for float")
        }
        return narrowed
    }
}

extension String {
    static func _jsonValue(from reader: inout _ProtoJSONReader) throws(ProtoJSONError) -> String {
        let token = try reader.stringToken()
        return try reader.string(token)
    }

    static func _jsonKey(from reader: inout _ProtoJSONReader, _ key: _ProtoJSONReader.StringToken) throws(ProtoJSONError) -> String {
        try reader.string(key)
    }
}

extension Array where Element == UInt8 {
    static func _jsonValue(from reader: inout _ProtoJSONReader) throws(ProtoJSONError) -> [UInt8] {
        let token = try reader.stringToken()
        let decoded: [UInt8]?
        if token.escaped {
            decoded = try reader.unescaped(token).withUnsafeBytes { Base64.decodeEitherAlphabet($0) }
        } else {
            decoded = Base64.decodeEitherAlphabet(UnsafeRawBufferPointer(start: reader.base + token.start, count: token.end - token.start))
        }
        guard let decoded else {
            throw reader.error("not base64")
        }
        return decoded
    }
}

extension _ProtoJSONEnum {
    static func _jsonValue(from reader: inout _ProtoJSONReader) throws(ProtoJSONError) -> Self {
        try reader.enumValue(Self.self)
    }
}
