/// Writes JSON string literals: the Connect error and end-of-stream bodies are built by
/// hand, being small and fixed in shape.
enum JSONString {
    private static let hex = Array("0123456789abcdef".utf8)

    /// Appends `value` as a JSON string, quotes included: `"` and `\` escaped, control
    /// characters as `\u00XX`, everything else as its UTF-8 bytes.
    static func append(_ value: some StringProtocol, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                buffer.append(UInt8(ascii: "\\"))
                buffer.append(byte)
            case UInt8(ascii: "\n"):
                buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0..<0x20:
                buffer.append(contentsOf: "\\u00".utf8)
                buffer.append(hex[Int(byte >> 4)])
                buffer.append(hex[Int(byte & 0x0F)])
            default:
                buffer.append(byte)
            }
        }
        buffer.append(UInt8(ascii: "\""))
    }

    /// `text` cut to at most `limit` UTF-8 bytes at a character boundary, ending with a
    /// mark that says how long it was; unchanged when it fits.
    static func truncated(_ text: String, limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        let mark = "… [truncated; \(text.utf8.count) bytes in all]"
        let budget = max(0, limit - mark.utf8.count)
        var used = 0
        var end = text.unicodeScalars.startIndex
        for index in text.unicodeScalars.indices {
            let cost = UTF8.width(text.unicodeScalars[index])
            guard used + cost <= budget else { break }
            used += cost
            end = text.unicodeScalars.index(after: index)
        }
        return String(text.unicodeScalars[..<end]) + mark
    }
}
