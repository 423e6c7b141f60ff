import STBMessages
import Testing

@testable import STBRPC

@Suite("Length-prefixed message framing")
struct FramingTests {
    private func framed(_ messages: [[UInt8]]) -> [UInt8] {
        var body: [UInt8] = []
        for message in messages { appendFramedMessage(message, to: &body) }
        return body
    }

    private func split(_ body: [UInt8], chunkSize: Int, max: Int = 1 << 20) throws -> [[UInt8]] {
        var deframer = MessageDeframer(maxMessageSize: max)
        var out: [[UInt8]] = []
        var offset = 0
        while offset < body.count {
            let end = min(offset + chunkSize, body.count)
            try body[offset..<end].withUnsafeBytes { chunk in
                try deframer.process(chunk) { out.append($0) }
            }
            offset = end
        }
        #expect(deframer.bufferedByteCount == 0)
        return out
    }

    @Test("messages survive any DATA boundaries", arguments: [1, 2, 3, 5, 7, 64, 100_000])
    func anyChunking(chunkSize: Int) throws {
        let messages: [[UInt8]] = [[], [1], Array(repeating: 7, count: 300), [0, 0, 0, 0, 0], Array(0...255)]
        #expect(try split(framed(messages), chunkSize: chunkSize) == messages)
    }

    @Test("an oversized length is refused from the prefix alone")
    func oversizedPrefix() {
        var deframer = MessageDeframer(maxMessageSize: 1024)
        let prefix: [UInt8] = [0, 0xFF, 0xFF, 0xFF, 0xFF]
        #expect(throws: MessageDeframer.Failure.tooLarge(Int(UInt32.max))) {
            try prefix.withUnsafeBytes { chunk in try deframer.process(chunk) { _ in Issue.record("no message expected") } }
        }
    }

    @Test("an oversized length is refused when the prefix arrives in pieces")
    func oversizedSplitPrefix() {
        var deframer = MessageDeframer(maxMessageSize: 10)
        #expect(throws: MessageDeframer.Failure.tooLarge(11)) {
            for byte: UInt8 in [0, 0, 0, 0, 11] {
                try [byte].withUnsafeBytes { chunk in try deframer.process(chunk) { _ in } }
            }
        }
    }

    @Test("the compressed flag without negotiated compression is an error")
    func compressedFlag() {
        var deframer = MessageDeframer(maxMessageSize: 100)
        #expect(throws: MessageDeframer.Failure.unexpectedFlags(1)) {
            try [1, 0, 0, 0, 1, 42].withUnsafeBytes { chunk in try deframer.process(chunk) { _ in } }
        }
    }
}

@Suite("Protocol value encodings")
struct ProtocolValueTests {
    @Test("grpc-timeout parses every unit and rejects malformed values")
    func timeoutParsing() {
        #expect(GRPCTimeout.parse("1H") == 3_600_000_000_000)
        #expect(GRPCTimeout.parse("2M") == 120_000_000_000)
        #expect(GRPCTimeout.parse("3S") == 3_000_000_000)
        #expect(GRPCTimeout.parse("250m") == 250_000_000)
        #expect(GRPCTimeout.parse("7u") == 7_000)
        #expect(GRPCTimeout.parse("99999999n") == 99_999_999)
        for bad in ["", "S", "123456789S", "10x", "-1S", "1.5S", " 1S"] {
            #expect(GRPCTimeout.parse(bad) == nil, "\(bad)")
        }
    }

    @Test("grpc-timeout formatting round-trips with at most 8 digits")
    func timeoutFormatting() {
        for nanos: UInt64 in [1, 999, 1_000_000, 250_000_000, 3_600_000_000_000, 123_456_789_012] {
            let text = GRPCTimeout.format(nanoseconds: nanos)
            #expect(text.count <= 9)
            let parsed = try! #require(GRPCTimeout.parse(text))
            #expect(parsed >= nanos, "rounds up, never down: \(text)")
        }
    }

    @Test("grpc-message percent-encoding round-trips and never fails on bad input")
    func statusMessage() {
        let message = "caf\u{e9} 100% \n done \u{1F600}"
        let encoded = StatusMessage.encode(message)
        #expect(encoded.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E })
        #expect(encoded.contains("%25"))
        #expect(StatusMessage.decode(encoded) == message)
        #expect(StatusMessage.decode("bad %zz and %4") == "bad %zz and %4")
    }

    @Test("base64 decodes padded and unpadded, rejects junk")
    func base64() {
        let bytes: [UInt8] = [0, 255, 1, 2, 3]
        #expect(Base64.encode(bytes, padded: true) == "AP8BAgM=")
        #expect(Base64.encode(bytes, padded: false) == "AP8BAgM")
        #expect(Base64.decode("AP8BAgM=") == bytes)
        #expect(Base64.decode("AP8BAgM") == bytes)
        #expect(Base64.decode("A*==") == nil)
        #expect(Base64.decode("A") == nil)
    }

    @Test("received -bin metadata splits comma-joined values; text stays text")
    func metadataReceive() {
        var metadata = Metadata()
        metadata.addReceived(key: "trace-bin", value: "AAE, /w")
        metadata.addReceived(key: "user", value: "a,b")
        #expect(metadata.binaries(forKey: "trace-bin") == [[0, 1], [255]])
        #expect(metadata.strings(forKey: "user") == ["a,b"])
        let fields = metadata.headerFields()
        #expect(fields.contains { $0 == ("trace-bin", "AAE") })
    }

    @Test("reserved or malformed metadata keys are never sent")
    func metadataSend() {
        var metadata = Metadata()
        metadata.addString("x", forKey: "grpc-status")
        metadata.addString("x", forKey: "Bad Key")
        metadata.addString("ok", forKey: "X-Good.key_1")
        #expect(metadata.headerFields().map(\.0) == ["x-good.key_1"])
    }
}

@Suite("Outbound body")
struct OutboundBodyTests {
    /// Everything `body` holds, read `chunk` bytes at a time.
    private func drain(_ body: inout OutboundBody, chunk: Int) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: chunk)
        while body.pending > 0 {
            let count = buffer.withUnsafeMutableBufferPointer { body.copy(into: $0.baseAddress!, length: chunk) }
            out += buffer[0..<count]
        }
        return out
    }

    @Test("messages queued on an empty body, and after it, come out framed in order, read in any chunk size")
    func framedInOrder() {
        let first: [UInt8] = Array(0..<200)
        let second: [UInt8] = [7, 8, 9]
        var expected: [UInt8] = []
        appendFramedMessage(first, to: &expected)
        appendFramedMessage([], to: &expected)
        appendFramedMessage(second, to: &expected)
        expected += [1, 2]
        for chunk in [1, 2, 3, 5, 7, 64, 4096] {
            var body = OutboundBody()
            body.append(message: first)
            #expect(body.pending == 205)
            body.append(message: [])
            body.append(message: second)
            body.append(raw: [1, 2])
            #expect(drain(&body, chunk: chunk) == expected)
            // Drained: the next message starts a body again.
            body.append(message: second)
            #expect(drain(&body, chunk: chunk) == [0, 0, 0, 0, 3, 7, 8, 9])
        }
        var empty = OutboundBody()
        empty.append(message: [])
        #expect(drain(&empty, chunk: 2) == [0, 0, 0, 0, 0])
        var discarded = OutboundBody()
        discarded.append(message: first)
        discarded.discard()
        #expect(discarded.pending == 0)
    }
}
