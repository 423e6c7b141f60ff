import STBMessages

/// Test values shared by the suites.
enum Fixtures {
    /// AllKinds with every field non-default where it can be.
    ///
    /// Tests/interop/proto_compat.py builds the same value in Python; keep the
    /// two identical or the interop tests fail.
    static let referenceAllKinds = Stb_Testing_V1_AllKinds(
        fDouble: 3.141592653589793,
        fFloat: 1.5,
        fInt32: -123_456,
        fInt64: -9_000_000_000,
        fUint32: 4_000_000_000,
        fUint64: .max,
        fSint32: -42,
        fSint64: .min,
        fFixed32: 0xDEAD_BEEF,
        fFixed64: 0x0123_4567_89AB_CDEF,
        fSfixed32: .min,
        fSfixed64: -1_234_567_890_123,
        fBool: true,
        fString: "héllo wörld ✓ 日本語 🚀",
        fBytes: [0, 1, 2, 0xFE, 0xFF],
        fColor: .blue,
        fMode: .safe,
        fInner: Stb_Testing_V1_Inner(name: "inner", value: 7),
        rInt32: [1, -1, .max, .min],
        rString: ["a", "", "ünï"],
        rBytes: [[], [0, 1]],
        rInner: [Stb_Testing_V1_Inner(name: "x", value: 1), Stb_Testing_V1_Inner()],
        rColor: [.red, .blue, .unrecognized(99)],
        rDouble: [0.5, -1.25, 1e100],
        rSint64: [-1, 1, .min],
        rBool: [true, false, true],
        oInt32: 0,
        oString: "",
        oBool: false,
        oColor: nil,
        oBytes: [7],
        choice: .cInner(Stb_Testing_V1_Inner(name: "chosen", value: -5)),
        mCounts: ["a": 1, "b": -2, "ünï": 0],
        mInners: ["k1": Stb_Testing_V1_Inner(name: "v1", value: 1), "k2": Stb_Testing_V1_Inner()],
        mNames: [-5: "minus five", 0: "", 9_000_000_000: "big"],
        mColors: ["red": .red, "blue": .blue, "unknown": .unrecognized(99)]
    )
}

extension ProtoMessage {
    /// Encodes and decodes again, as a peer would see the value.
    func roundTripped() throws -> Self {
        try Self(serializedBytes: serializedBytes())
    }
}
