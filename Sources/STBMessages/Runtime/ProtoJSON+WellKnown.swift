// The well-known types with a JSON form of their own: google.protobuf.Duration (a
// string of seconds, "1.500s") and google.protobuf.Any (the packed message's JSON with
// an "@type" key, for the message types this package knows).

extension _ProtoJSONWriter {
    /// A duration as proto3 JSON writes it: seconds with 0, 3, 6 or 9 fractional digits
    /// and an "s", negative as a whole (`"-1.500s"`).
    mutating func duration(seconds: Int64, nanos: Int32) {
        let negative = seconds < 0 || nanos < 0
        var wholeSeconds = seconds.magnitude
        var fraction = UInt64(nanos.magnitude)
        // Out-of-range nanos (not a valid Duration) carry into the seconds.
        wholeSeconds &+= fraction / 1_000_000_000
        fraction %= 1_000_000_000
        out.append(UInt8(ascii: "\""))
        if negative {
            out.append(UInt8(ascii: "-"))
        }
        integer(wholeSeconds, quoted: false)
        if fraction != 0 {
            var digits = 9
            while digits > 3, fraction % 1000 == 0 {
                fraction /= 1000
                digits -= 3
            }
            out.append(UInt8(ascii: "."))
            let start = out.count
            for _ in 0..<digits {
                out.append(UInt8(ascii: "0") + UInt8(fraction % 10))
                fraction /= 10
            }
            out[start...].reverse()
        }
        out.append(contentsOf: [UInt8(ascii: "s"), UInt8(ascii: "\"")])
        valueWritten()
    }

    /// An `Any`: `{"@type": url, ...fields}`, or `{"@type": url, "value": form}` for a
    /// well-known type with a form of its own. A type this package does not know, or a
    /// value that does not decode as it, has no JSON form; it is written as
    /// `{"@type": url, "value": "<base64>"}`, which reading refuses.
    mutating func any(typeURL: String, value: [UInt8]) {
        if let type = _protoJSONAnyType(forURL: typeURL), type._jsonWriteAnyPayload(typeURL: typeURL, value: value, &self) {
            return
        }
        beginObject()
        key(#""@type":"#)
        string(typeURL)
        key(#""value":"#)
        bytes(value)
        endObject()
    }
}

extension _ProtoJSONCodable {
    /// Writes an `Any` holding this type; false when `value` does not decode as it.
    static func _jsonWriteAnyPayload(typeURL: String, value: [UInt8], _ writer: inout _ProtoJSONWriter) -> Bool {
        guard let message = try? Self(serializedBytes: value) else {
            return false
        }
        writer.beginObject()
        writer.key(#""@type":"#)
        writer.string(typeURL)
        if _jsonHasSpecialForm {
            writer.key(#""value":"#)
            message._jsonWrite(&writer)
            writer.endObject()
            return true
        }
        // The message's own object, spliced in after "@type": its "{" becomes a comma.
        let start = writer.out.count
        message._jsonWrite(&writer)
        if writer.out.count == start + 2 {
            writer.out.removeLast(2)
            writer.endObject()
        } else {
            writer.out[start] = UInt8(ascii: ",")
        }
        return true
    }

    /// Reads an `Any`'s payload (the reader is at the object, whose "@type" named this
    /// type) and returns it encoded.
    static func _jsonReadAnyPayload(_ reader: inout _ProtoJSONReader) throws(ProtoJSONError) -> [UInt8] {
        var message = Self()
        if _jsonHasSpecialForm {
            var object = try reader.beginObject(_protoJSONAnyWrapperNames)
            var hasValue = false
            while let field = try reader.nextField(&object) {
                if field == 1 {
                    try message._jsonRead(&reader)
                    hasValue = true
                } else {
                    try reader.skipValue()
                }
            }
            guard hasValue else {
                throw reader.error("\"value\" is missing")
            }
        } else {
            reader.typeKeyAllowed = true
            try message._jsonRead(&reader)
        }
        return message.serializedBytes()
    }
}

/// The keys of an `Any` holding a well-known type with a form of its own.
private let _protoJSONAnyWrapperNames = _ProtoJSONNames("google.protobuf.Any", "@type @type value value")

/// The message type an `Any` type URL names (the part after the last "/"), if known.
internal func _protoJSONAnyType(forURL url: String) -> (any _ProtoJSONCodable.Type)? {
    let name = url.utf8.lastIndex(of: UInt8(ascii: "/")).map { String(url[url.utf8.index(after: $0)...]) } ?? url
    return _protoJSONAnyType(named: name)
}

extension _ProtoJSONReader {
    /// A duration string: `-?[0-9]+(\.[0-9]{1,9})?s`, within ±315,576,000,000 seconds.
    mutating func duration() throws(ProtoJSONError) -> (seconds: Int64, nanos: Int32) {
        let token = try stringToken()
        let text = try contentBytes(token)
        var index = 0
        let negative = text.first == UInt8(ascii: "-")
        if negative { index += 1 }
        var seconds: Int64 = 0
        var nanos: Int32 = 0
        var digits = 0
        while index < text.count, text[index] >= UInt8(ascii: "0"), text[index] <= UInt8(ascii: "9") {
            seconds = seconds * 10 + Int64(text[index] - UInt8(ascii: "0"))
            digits += 1
            index += 1
            guard seconds <= 315_576_000_000 else {
                throw error("duration is out of range (±315,576,000,000 s)")
            }
        }
        var valid = digits > 0
        if valid, index < text.count, text[index] == UInt8(ascii: ".") {
            index += 1
            var fractionDigits = 0
            while index < text.count, text[index] >= UInt8(ascii: "0"), text[index] <= UInt8(ascii: "9"), fractionDigits < 9 {
                nanos = nanos * 10 + Int32(text[index] - UInt8(ascii: "0"))
                fractionDigits += 1
                index += 1
            }
            valid = fractionDigits > 0
            for _ in fractionDigits..<9 { nanos *= 10 }
        }
        guard valid, index == text.count - 1, text[index] == UInt8(ascii: "s") else {
            throw error("\(Self.shown(String(decoding: text, as: UTF8.self))) is not a duration (like \"1.5s\")")
        }
        return negative ? (-seconds, -nanos) : (seconds, nanos)
    }

    /// An `Any`: finds its "@type" (anywhere in the object), then reads the rest as
    /// that type. Refuses type URLs of messages this package does not know.
    mutating func any() throws(ProtoJSONError) -> (typeURL: String, value: [UInt8]) {
        skipWhitespace()
        guard peek == UInt8(ascii: "{") else {
            throw error("expected an object (google.protobuf.Any)")
        }
        var lookahead = self
        var url: String?
        try lookahead.enter()
        lookahead.position += 1
        lookahead.path.append(.object)
        var first = true
        while let key = try lookahead.nextKey(&first) {
            let raw = UnsafeRawBufferPointer(start: base + key.start, count: key.end - key.start)
            if !key.escaped, raw.elementsEqual("@type".utf8) {
                url = try String._jsonValue(from: &lookahead)
                break
            }
            try lookahead.skipValue()
        }
        guard let url else {
            throw error("\"@type\" is missing (google.protobuf.Any)")
        }
        guard let type = _protoJSONAnyType(forURL: url) else {
            throw error("unknown type \(Self.shown(url)) in \"@type\"")
        }
        return (url, try type._jsonReadAnyPayload(&self))
    }
}
