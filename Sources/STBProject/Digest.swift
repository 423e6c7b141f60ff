internal import CSodium

/// SHA-256 (libsodium's), for configuration hashes and the audit chain.
enum Digest {
    static func sha256(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        let input = Array(bytes)
        output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { data in
                // SHA-256 of any input cannot fail.
                _ = crypto_hash_sha256(out.baseAddress!, data.baseAddress, UInt64(data.count))
            }
        }
        return output
    }

    static func sha256(_ text: String) -> [UInt8] { sha256(Array(text.utf8)) }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
