import STBEcho
import STBMessages
import Testing

@testable import STBRPC

/// A request message made of whatever bytes a test wants on the wire.
struct RawRequest: ProtoMessage {
    var bytes: [UInt8] = []
    init() {}
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    init(serializedBytes: UnsafeRawBufferPointer) throws(ProtoDecodingError) { bytes = Array(serializedBytes) }
    func serialize(into buffer: inout [UInt8]) { buffer += bytes }
    static var protoMessageName: String { "stb.testing.v1.EchoRequest" }
}

@Suite("Requests with bad strings are refused before the handler runs")
struct RequestStringTests {
    private static let rawGet = ProtoMethod<RawRequest, EchoResponse>(path: Echo.get.path, kind: .unary)
    private static let rawCollect = ProtoMethod<RawRequest, EchoResponse>(path: Echo.collect.path, kind: .clientStreaming)

    /// EchoRequest with `text` (field 1) holding `bytes`.
    private static func request(text bytes: [UInt8]) -> RawRequest {
        RawRequest([0x0A, UInt8(bytes.count)] + bytes)
    }

    @Test(
        "unary: INVALID_ARGUMENT naming the field",
        arguments: [
            ([0xFF, 0xFE] as [UInt8], "text: not valid UTF-8"),
            ([0xC0, 0xAF], "text: not valid UTF-8"),
            ([0xED, 0xA0, 0x80], "text: not valid UTF-8"),
            (Array("K".utf8) + [0] + Array(" DROP TABLE".utf8), "text: contains a NUL character"),
        ])
    func unary(_ text: [UInt8], _ message: String) async throws {
        // fail_with_code would make a handler that ran answer NOT_FOUND instead.
        try await withServer { _, client in
            let request = RawRequest(Self.request(text: text).bytes + [0x28, 0x05])
            let error = await expectRPCError(.invalidArgument) {
                _ = try await client.unary(Self.rawGet, request: request, timeout: .seconds(20))
            }
            #expect(error?.message == message)
        }
    }

    @Test("client streaming: the bad message ends the call with INVALID_ARGUMENT")
    func clientStreaming() async throws {
        try await withServer { _, client in
            let error = await expectRPCError(.invalidArgument) {
                _ = try await client.clientStreaming(Self.rawCollect, timeout: .seconds(20)) { writer in
                    try await writer.write(Self.request(text: Array("fine".utf8)))
                    try await writer.write(Self.request(text: [0x61, 0x00]))
                }
            }
            #expect(error?.message == "text: contains a NUL character")
        }
    }

    @Test("bytes that are not protobuf stay INTERNAL, without details")
    func malformed() async throws {
        try await withServer { _, client in
            let error = await expectRPCError(.internal) {
                _ = try await client.unary(Self.rawGet, request: RawRequest([0x0A, 0x05, 0x61]), timeout: .seconds(20))
            }
            #expect(error?.message == "could not decode the request as stb.testing.v1.EchoRequest")
        }
    }
}
