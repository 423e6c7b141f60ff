import STBJSON
import Testing

@Suite("SHA-256: the FIPS 180-4 vectors and every padding boundary")
struct SHA256Tests {
    @Test(
        "digests of the FIPS 180-4 examples",
        arguments: [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ])
    func fipsExamples(_ message: String, _ expected: String) {
        #expect(SHA256.hexHash(message.utf8) == expected)
    }

    /// Lengths on each side of the 56-byte padding limit and of whole blocks (digests from
    /// Python's hashlib).
    @Test(
        "messages of n bytes around the block and padding boundaries",
        arguments: [
            (55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"),
            (56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"),
            (63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"),
            (64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"),
            (65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"),
            (119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"),
            (120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"),
            (128, "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e"),
        ])
    func boundaries(_ count: Int, _ expected: String) {
        #expect(SHA256.hexHash(repeatElement(UInt8(ascii: "a"), count: count)) == expected)
    }

    /// Calls `feed` with the sizes of uneven pieces (1 to 1,000 bytes) that add up to a million.
    static func millionInUnevenPieces(_ feed: (Int) -> Void) {
        var fed = 0
        var piece = 1
        while fed < 1_000_000 {
            let count = min(piece, 1_000_000 - fed)
            feed(count)
            fed += count
            piece = piece * 7 % 1000 + 1
        }
    }

    @Test("a million bytes fed in uneven pieces give the one-shot digest")
    func piecewise() {
        var hasher = SHA256()
        Self.millionInUnevenPieces { hasher.update(repeatElement(UInt8(ascii: "a"), count: $0)) }
        let digest = hasher.finalize()
        #expect(digest.count == 32)
        #expect(hex(digest) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        #expect(SHA256.hash(Array("abc".utf8)) == hexBytes("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
    }

    /// Contiguous pieces (arrays) take another path than the sequence above: a pending
    /// partial block filled first, then whole blocks read from the piece itself.
    @Test("a million bytes fed as arrays of uneven sizes give the one-shot digest")
    func piecewiseContiguous() {
        var hasher = SHA256()
        Self.millionInUnevenPieces { hasher.update([UInt8](repeating: UInt8(ascii: "a"), count: $0)) }
        #expect(hex(hasher.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        for (count, expected) in [(63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"), (128, "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e")] {
            #expect(SHA256.hexHash([UInt8](repeating: UInt8(ascii: "a"), count: count)) == expected)
            // Split at every point: the first part pending, the rest completing it.
            for split in 0...count {
                var hasher = SHA256()
                hasher.update([UInt8](repeating: UInt8(ascii: "a"), count: split))
                hasher.update([UInt8](repeating: UInt8(ascii: "a"), count: count - split))
                #expect(hex(hasher.finalize()) == expected, "split at \(split) of \(count)")
            }
        }
    }

    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    private func hexBytes(_ text: String) -> [UInt8] {
        let digits = Array(text.utf8)
        return stride(from: 0, to: digits.count, by: 2).compactMap { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16) }
    }
}
