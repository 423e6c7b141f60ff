import STBMessages
import Testing

/// Both directions against Python's protobuf (Tests/interop/proto_compat.py),
/// which compiles Protos/ itself: Python's encoding must decode to our value,
/// and our encoding must decode to Python's.
@Suite("Byte compatibility with Python protobuf")
struct PythonInteropTests {
    let script = "Tests/interop/proto_compat.py"

    @Test("bytes Python encodes decode to the same AllKinds")
    func decodesPythonEncoding() throws {
        let output = try runTool(["python3", script, "encode"])
        try #require(output.status == 0, "proto_compat.py encode failed: \(output.stderr)")
        let bytes = try #require(Self.bytes(fromHex: output.stdout), "not hex: \(output.stdout)")
        let decoded = try Stb_Testing_V1_AllKinds(serializedBytes: bytes)
        #expect(decoded == Fixtures.referenceAllKinds)
    }

    @Test("bytes Swift encodes decode in Python to the same AllKinds")
    func pythonDecodesSwiftEncoding() throws {
        let hex = Fixtures.referenceAllKinds.serializedBytes().map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined()
        let output = try runTool(["python3", script, "check", hex])
        #expect(output.status == 0, "Python disagrees:\n\(output.stderr)")
    }

    @Test("Python rejects bytes that are not the reference value")
    func pythonCheckCanFail() throws {
        var changed = Fixtures.referenceAllKinds
        changed.fInt32 += 1
        let hex = changed.serializedBytes().map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined()
        let output = try runTool(["python3", script, "check", hex])
        #expect(output.status == 1)
        #expect(output.stderr.contains("f_int32"))
    }

    static func bytes(fromHex text: String) -> [UInt8]? {
        let hex = Array(text.utf8.filter { $0 != UInt8(ascii: "\n") })
        guard hex.count.isMultiple(of: 2) else {
            return nil
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hex.count / 2)
        for index in stride(from: 0, to: hex.count, by: 2) {
            guard let byte = UInt8(String(decoding: hex[index..<index + 2], as: UTF8.self), radix: 16) else {
                return nil
            }
            bytes.append(byte)
        }
        return bytes
    }
}
