import STBMessages

/// The `grpc-message` percent-encoding: UTF-8, with `%XX` for bytes outside 0x20–0x7E and `%`.
enum StatusMessage {
    static func encode(_ message: String) -> String {
        var out = [UInt8]()
        out.reserveCapacity(message.utf8.count)
        for byte in message.utf8 { appendEncoded(byte, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    /// The encoding of `message`, at most `limit` bytes long. A longer message is cut at
    /// a UTF-8 character boundary (before encoding, so no escape or character is split)
    /// and ends with a mark saying how long it was; a limit too small for the mark
    /// gives what fits of the mark alone, or nothing.
    static func encode(_ message: String, limit: Int) -> String {
        guard limit > 0 else { return "" }
        if encodedCount(message.utf8) <= limit { return encode(message) }
        let mark = encode("… [truncated; \(message.utf8.count) bytes in all]")
        guard mark.utf8.count <= limit else {
            // Only the ASCII part of the mark can be cut anywhere; drop the ellipsis.
            return String(mark.dropFirst(10).prefix(limit))
        }
        let budget = limit - mark.utf8.count
        var out = [UInt8]()
        out.reserveCapacity(limit)
        var used = 0
        for scalar in message.unicodeScalars {
            let cost = encodedCount(UTF8.encode(scalar)!)
            guard used + cost <= budget else { break }
            used += cost
            for byte in UTF8.encode(scalar)! { appendEncoded(byte, to: &out) }
        }
        return String(decoding: out, as: UTF8.self) + mark
    }

    private static let hex = Array("0123456789ABCDEF".utf8)

    @inline(__always)
    private static func isKept(_ byte: UInt8) -> Bool {
        byte >= 0x20 && byte <= 0x7E && byte != 0x25
    }

    @inline(__always)
    private static func appendEncoded(_ byte: UInt8, to out: inout [UInt8]) {
        if isKept(byte) {
            out.append(byte)
        } else {
            out.append(0x25)
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0x0F)])
        }
    }

    private static func encodedCount(_ bytes: some Sequence<UInt8>) -> Int {
        bytes.reduce(0) { $0 + (isKept($1) ? 1 : 3) }
    }

    /// Never fails: malformed escapes are kept literally.
    static func decode(_ encoded: String) -> String {
        let bytes = Array(encoded.utf8)
        guard bytes.contains(0x25) else { return encoded }
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == 0x25, index + 2 < bytes.count,
                let high = Hex.digit(bytes[index + 1]), let low = Hex.digit(bytes[index + 2])
            {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

}
