/// Standard base64, for `-bin` metadata and the embedded descriptors: decodes padded and
/// unpadded input, encodes either way. Shared by the package's modules, not public.
package enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static let reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    package static func encode(_ bytes: [UInt8], padded: Bool) -> String {
        var out = [UInt8]()
        append(bytes, to: &out, padded: padded)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the encoding of `bytes` to `out`.
    package static func append(_ bytes: [UInt8], to out: inout [UInt8], padded: Bool) {
        out.reserveCapacity(out.count + (bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= bytes.count {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            out.append(alphabet[Int(value >> 18 & 63)])
            out.append(alphabet[Int(value >> 12 & 63)])
            out.append(alphabet[Int(value >> 6 & 63)])
            out.append(alphabet[Int(value & 63)])
            index += 3
        }
        let rest = bytes.count - index
        if rest > 0 {
            var value = UInt32(bytes[index]) << 16
            if rest == 2 { value |= UInt32(bytes[index + 1]) << 8 }
            out.append(alphabet[Int(value >> 18 & 63)])
            out.append(alphabet[Int(value >> 12 & 63)])
            if rest == 2 { out.append(alphabet[Int(value >> 6 & 63)]) }
            if padded { out.append(contentsOf: rest == 1 ? [0x3D, 0x3D] : [0x3D]) }
        }
    }

    // Both alphabets: standard (`+/`) and URL-safe (`-_`).
    private static let reverseEitherAlphabet: [UInt8] = {
        var table = reverse
        table[Int(UInt8(ascii: "-"))] = 62
        table[Int(UInt8(ascii: "_"))] = 63
        return table
    }()

    /// Decodes standard or URL-safe base64, padded or not (the proto3 JSON form of
    /// `bytes`); nil for characters outside both alphabets, padding anywhere but at the
    /// end (or more than a full quantum needs), or an impossible length.
    package static func decodeEitherAlphabet(_ input: UnsafeRawBufferPointer) -> [UInt8]? {
        var count = input.count
        var padding = 0
        while count > 0, input[count - 1] == 0x3D {
            count -= 1
            padding += 1
        }
        guard count % 4 != 1, padding <= 2 else { return nil }
        if padding > 0 {
            // Padded input must come in whole quanta.
            guard (count + padding) % 4 == 0, (4 - count % 4) % 4 == padding else { return nil }
        }
        var out = [UInt8]()
        out.reserveCapacity(count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        let table = reverseEitherAlphabet
        for index in 0..<count {
            let value = table[Int(input[index])]
            guard value != 0xFF else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return out
    }

    /// Returns nil for characters outside the alphabet or an impossible length.
    package static func decode<S: StringProtocol>(_ text: S) -> [UInt8]? {
        var input = Array(text.utf8)
        while input.last == 0x3D { input.removeLast() }
        guard input.count % 4 != 1 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(input.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in input {
            let value = reverse[Int(byte)]
            guard value != 0xFF else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return out
    }
}
