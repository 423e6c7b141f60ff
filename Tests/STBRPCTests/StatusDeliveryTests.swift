import STBEcho
import STBMessages
import Testing

@testable import STBRPC

@Suite("grpc-message truncation")
struct StatusMessageTruncationTests {
    /// The text before the truncation mark, decoded.
    private func keptPrefix(_ encoded: String) -> String? {
        let decoded = StatusMessage.decode(encoded)
        let scalars = Array(decoded.unicodeScalars)
        let mark = Array("… [truncated; ".unicodeScalars)
        guard let start = (0...max(scalars.count - mark.count, 0)).first(where: { scalars[$0...].starts(with: mark) }) else {
            return nil
        }
        var kept = String.UnicodeScalarView()
        kept.append(contentsOf: scalars[..<start])
        return String(kept)
    }

    @Test("a message that fits is encoded whole, up to the exact limit")
    func fits() {
        let message = String(repeating: "a", count: 100) + "%é"  // 100 + 3 + 6 encoded bytes
        #expect(StatusMessage.encode(message, limit: 109) == StatusMessage.encode(message))
        #expect(StatusMessage.encode(message, limit: 10_000) == StatusMessage.encode(message))
        #expect(StatusMessage.encode(message, limit: 108) != StatusMessage.encode(message))
    }

    @Test("a long message is cut, marked with its length, and never exceeds the limit", arguments: [64, 100, 255, 1024, 2048])
    func cut(_ limit: Int) throws {
        let message = String(repeating: "v", count: 100_000)
        let encoded = StatusMessage.encode(message, limit: limit)
        #expect(encoded.utf8.count <= limit)
        // Nothing is wasted: at most one character's encoding (here 1 byte) short of the limit.
        #expect(encoded.utf8.count == limit)
        #expect(StatusMessage.decode(encoded).hasSuffix("… [truncated; 100000 bytes in all]"))
        let kept = try #require(keptPrefix(encoded))
        #expect(message.hasPrefix(kept) && !kept.isEmpty)
    }

    @Test("cuts fall on UTF-8 character boundaries, never inside an escape", arguments: 0..<120)
    func utf8Boundaries(_ extra: Int) throws {
        // Mixed widths: 1-byte (kept as is), '%' (3 encoded), 2-, 3- and 4-byte characters (6, 9, 12).
        let message = String(repeating: "aé%€🚀", count: 200)
        let limit = 60 + extra
        let encoded = StatusMessage.encode(message, limit: limit)
        #expect(encoded.utf8.count <= limit)
        // At most one 4-byte character (12 encoded bytes) of room left unused.
        #expect(encoded.utf8.count > limit - 12)
        let kept = try #require(keptPrefix(encoded))
        #expect(!kept.contains("\u{FFFD}"))
        #expect(message.unicodeScalars.starts(with: kept.unicodeScalars))
        // Only whole escapes: every '%' starts a %XX triple.
        let bytes = Array(encoded.utf8)
        for (index, byte) in bytes.enumerated() where byte == UInt8(ascii: "%") {
            #expect(index + 2 < bytes.count)
        }
    }

    @Test("control characters and '%' are percent-encoded and count as three bytes")
    func percentEncoding() {
        #expect(StatusMessage.encode("a\nb%c", limit: 100) == "a%0Ab%25c")
        let message = String(repeating: "%", count: 1000)
        let encoded = StatusMessage.encode(message, limit: 200)
        #expect(encoded.utf8.count <= 200)
        #expect(encoded.hasPrefix("%25%25"))
        #expect(StatusMessage.decode(encoded).hasSuffix("bytes in all]"))
    }

    @Test("a limit too small for the mark still gives at most the limit", arguments: [0, 1, 5, 20, 35])
    func tinyLimit(_ limit: Int) {
        let encoded = StatusMessage.encode(String(repeating: "x", count: 5000), limit: limit)
        #expect(encoded.utf8.count <= limit)
    }

    @Test("the header budget counts as SETTINGS_MAX_HEADER_LIST_SIZE does")
    func headerBudget() {
        var budget = HeaderBudget(limit: 100)
        let taken = budget.take("x-a", String(repeating: "v", count: 65))  // 3 + 65 + 32 = 100
        #expect(taken)
        #expect(budget.remaining == 0)
        let overflow = budget.take("b", "")
        #expect(!overflow)
        budget.charge("grpc-status", "0")  // always sent, never negative
        #expect(budget.remaining == 0)
        #expect(HeaderBudget(limit: 1000).valueRoom(forName: "grpc-message") == 1000 - 12 - 32)
    }
}

@Suite("A status always reaches the client")
struct StatusDeliveryTests {
    private static let invalidArgument = UInt32(RPCError.Code.invalidArgument.rawValue)

    @Test("a handler's status with a huge message arrives at once, cut and marked", arguments: [100_000, 1_000_000])
    func hugeStatusMessage(_ size: Int) async throws {
        try await withServer { _, client in
            let text = "option.key: " + String(repeating: "k", count: size)
            let start = ContinuousClock.now
            let error = await expectRPCError(.invalidArgument) {
                _ = try await client.unary(
                    Echo.get, request: EchoRequest(text: text, failWithCode: Self.invalidArgument), timeout: .seconds(20))
            }
            // Well before the deadline: the status came, the call did not wait it out.
            #expect(ContinuousClock.now - start < .seconds(10))
            let message = try #require(error?.message)
            #expect(message.hasPrefix("option.key: kkkk"))
            #expect(message.hasSuffix("… [truncated; \(text.utf8.count) bytes in all]"))
            #expect(message.utf8.count <= RPCServer.Configuration().maxStatusMessageBytes)
            // The connection is still fine for the next call.
            #expect(try await client.unary(Echo.get, request: EchoRequest(text: "next"), timeout: .seconds(20)).text == "next")
        }
    }

    @Test("a status with a huge message after streamed messages arrives in the trailers")
    func hugeStatusAfterMessages() async throws {
        try await withServer { _, client in
            let text = String(repeating: "€", count: 50_000)
            var received = 0
            await expectRPCError(.invalidArgument) {
                try await client.serverStreaming(
                    Echo.expand, request: EchoRequest(text: text, count: 2, failWithCode: Self.invalidArgument),
                    timeout: .seconds(20)
                ) { responses in
                    for try await _ in responses { received += 1 }
                }
            }
            #expect(received == 2)
        }
    }

    @Test(
        "100 KB of response metadata is dropped, and the status still arrives",
        arguments: [0, Int(RPCError.Code.failedPrecondition.rawValue)])
    func hugeMetadata(_ code: Int) async throws {
        try await withServer { _, client in
            let request = EchoRequest(text: "padded", failWithCode: UInt32(code), metadataPaddingBytes: 100_000)
            let start = ContinuousClock.now
            if code == 0 {
                let response = try await client.unaryCall(Echo.get, request: request, timeout: .seconds(20))
                #expect(response.message.text == "padded")
                #expect(response.initialMetadata.strings(forKey: "x-echo-padding").isEmpty)
                #expect(response.trailingMetadata.strings(forKey: "x-echo-padding").isEmpty)
            } else {
                let error = await expectRPCError(.failedPrecondition) {
                    _ = try await client.unary(Echo.get, request: request, timeout: .seconds(20))
                }
                #expect(error?.message == "padded")
            }
            // Well before the deadline: the status came, the call did not wait it out.
            #expect(ContinuousClock.now - start < .seconds(10))
        }
    }

    @Test("metadata that fits is still sent beside a shortened message")
    func smallMetadataKept() async throws {
        try await withServer { _, client in
            let request = EchoRequest(text: String(repeating: "m", count: 10_000), failWithCode: 9, metadataPaddingBytes: 500)
            let error = await expectRPCError(.failedPrecondition) {
                _ = try await client.unary(Echo.get, request: request, timeout: .seconds(20))
            }
            #expect(error?.metadata.strings(forKey: "x-echo-padding").first?.utf8.count == 500)
        }
    }
}
