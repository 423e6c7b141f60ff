import STBMessages

/// base64url without padding (RFC 7515 §2), as JWTs, JWKs and the gateway's opaque
/// tokens use it. Shared by the package's modules, not public.
package enum Base64URL {
    package static func encode(_ bytes: [UInt8]) -> String {
        var text = Array(Base64.encode(bytes, padded: false).utf8)
        for index in text.indices {
            switch text[index] {
            case UInt8(ascii: "+"): text[index] = UInt8(ascii: "-")
            case UInt8(ascii: "/"): text[index] = UInt8(ascii: "_")
            default: break
            }
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Nil for padding, the standard alphabet's `+` and `/`, or any other character
    /// outside the URL-safe alphabet.
    package static func decode<S: StringProtocol>(_ text: S) -> [UInt8]? {
        var standard = [UInt8]()
        standard.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "-"): standard.append(UInt8(ascii: "+"))
            case UInt8(ascii: "_"): standard.append(UInt8(ascii: "/"))
            case UInt8(ascii: "+"), UInt8(ascii: "/"), UInt8(ascii: "="): return nil
            default: standard.append(byte)
            }
        }
        return Base64.decode(String(decoding: standard, as: UTF8.self))
    }
}
