import Foundation
import STBMessages
import Synchronization
import Testing

@testable import STBRPC

/// Runs `Tests/interop/echo_server.py` (a stock Python grpcio server) for the duration of `body`.
func withGRPCIOEchoServer<Result>(_ body: (RPCClient) async throws -> Result) async throws -> Result {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", root.appendingPathComponent("Tests/interop/echo_server.py").path, "--port", "0"]
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    defer {
        process.terminate()
        process.waitUntilExit()
    }
    // The server prints "echo_server.py listening on 127.0.0.1:PORT" when it is ready.
    var line = Data()
    let handle = output.fileHandleForReading
    while !line.contains(UInt8(ascii: "\n")) {
        let chunk = handle.availableData
        guard !chunk.isEmpty else { break }
        line.append(chunk)
    }
    let text = String(decoding: line, as: UTF8.self)
    let port = try #require(text.split(separator: ":").last.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) },
                            "echo_server.py did not report its port: \(text)")
    let client = try RPCClient(host: "127.0.0.1", port: port)
    do {
        let result = try await body(client)
        await client.close()
        return result
    } catch {
        await client.close()
        throw error
    }
}

@Suite("Our client against a stock grpcio server")
struct GRPCIOServerInteropTests {
    @Test("unary with metadata")
    func unary() async throws {
        try await withGRPCIOEchoServer { client in
            var metadata = Metadata(["x-echo-user": "ada"])
            metadata.addBinary([0, 255, 7], forKey: "x-echo-trace-bin")
            let response = try await client.unaryCall(Echo.get, request: EchoRequest(text: "hi", payload: [9, 8]), metadata: metadata)
            #expect(response.message.text == "hi")
            #expect(response.message.payload == [9, 8])
            #expect(response.initialMetadata.strings(forKey: "x-echo-user") == ["ada"])
            #expect(response.trailingMetadata.binaries(forKey: "x-echo-trace-bin") == [[0, 255, 7]])
        }
    }

    @Test("every streaming kind")
    func streaming() async throws {
        try await withGRPCIOEchoServer { client in
            let count = try await client.serverStreaming(Echo.expand, request: EchoRequest(text: "s", count: 500)) { responses in
                var expected: UInt32 = 0
                for try await response in responses {
                    #expect(response.index == expected)
                    expected += 1
                }
                return expected
            }
            #expect(count == 500)

            let collected = try await client.clientStreaming(Echo.collect) { writer in
                for word in ["x", "y", "z"] { try await writer.write(EchoRequest(text: word)) }
            }
            #expect(collected.message.text == "x y z")

            let replies = try await client.bidirectionalStreaming(Echo.update) { writer, responses in
                var iterator = responses.makeAsyncIterator()
                var texts: [String] = []
                for index in 0..<20 {
                    try await writer.write(EchoRequest(text: "b\(index)"))
                    texts.append(try #require(try await iterator.next()).text)
                }
                writer.finish()
                return texts
            }
            #expect(replies == (0..<20).map { "b\($0)" })
        }
    }

    @Test("error status and message, deadline, and an oversized request")
    func failures() async throws {
        try await withGRPCIOEchoServer { client in
            let error = await expectRPCError(.permissionDenied) {
                _ = try await client.unary(Echo.get, request: EchoRequest(text: "no access ✗ 50%", failWithCode: 7))
            }
            #expect(error?.message == "no access ✗ 50%")

            let start = ContinuousClock.now
            await expectRPCError(.deadlineExceeded) {
                _ = try await client.unary(Echo.get, request: EchoRequest(delayMs: 3000), timeout: .milliseconds(300))
            }
            #expect(ContinuousClock.now - start < .seconds(2))

            // grpcio's default receive limit is 4 MiB.
            await expectRPCError(.resourceExhausted) {
                _ = try await client.unary(Echo.get, request: EchoRequest(payload: Array(repeating: 1, count: 5 << 20)))
            }
            let after = try await client.unary(Echo.get, request: EchoRequest(text: "still fine"))
            #expect(after.text == "still fine")
        }
    }

    @Test("cancelling a streaming call mid-way")
    func cancellation() async throws {
        try await withGRPCIOEchoServer { client in
            let received = try await client.serverStreaming(Echo.expand, request: EchoRequest(text: "c", count: 1000, delayMs: 20)) { responses in
                var count = 0
                for try await _ in responses {
                    count += 1
                    if count == 3 { break }  // leaving the body cancels the call
                }
                return count
            }
            #expect(received == 3)
            let after = try await client.unary(Echo.get, request: EchoRequest(text: "after"))
            #expect(after.text == "after")
        }
    }
}
