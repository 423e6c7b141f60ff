/// Hexadecimal digits, as they appear in JSON escapes, percent-encoding, hashes and keys.
/// Shared by the package's modules, not public.
package enum Hex {
    /// The value of one hexadecimal digit (either case); nil for any other byte.
    package static func digit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The bytes `text` spells as pairs of hexadecimal digits; nil when it is empty, has an
    /// odd length or holds anything but hexadecimal digits.
    package static func bytes(_ text: some StringProtocol) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count / 2)
        var iterator = text.utf8.makeIterator()
        while let high = iterator.next() {
            guard let low = iterator.next(), let h = digit(high), let l = digit(low) else { return nil }
            bytes.append(h << 4 | l)
        }
        return bytes.isEmpty ? nil : bytes
    }
}
