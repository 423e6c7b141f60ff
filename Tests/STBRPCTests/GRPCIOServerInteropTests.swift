import Foundation
import STBMessages
import Synchronization
import Testing

@testable import STBRPC

/// Runs `Tests/interop/echo_server.py` (a stock Python grpcio server) for the duration of `body`.
func withGRPCIOEchoServer<Result>(_ body: (RPCClient) async throws -> Result) async throws -> Result {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let server = try ChildProcess(["python3", root.appendingPathComponent("Tests/interop/echo_server.py").path, "--port", "0"])
    do {
        // The server prints "echo_server.py listening on 127.0.0.1:PORT" when it is ready.
        let line = try await server.firstLine(timeout: .seconds(30))
        let port = try #require(line.split(separator: ":").last.flatMap { Int($0) }, "echo_server.py said: \(line)")
        let client = try RPCClient(host: "127.0.0.1", port: port)
        do {
            let result = try await body(client)
            await client.close()
            await server.stop()
            return result
        } catch {
            await client.close()
            throw error
        }
    } catch {
        await server.stop()
        throw error
    }
}

/// A child process with its stdout on a pipe, handled without blocking Swift's
/// cooperative threads (Foundation's `Process` waits block them, and there are only a
/// couple). Spawned with an empty signal mask: the test runner's threads block signals,
/// and a child would otherwise inherit that and ignore SIGTERM.
final class ChildProcess: @unchecked Sendable {
    // @unchecked: used by one test at a time.
    private let pid: pid_t
    private let output: Int32
    private var buffer: [UInt8] = []

    init(_ arguments: [String]) throws {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw SocketError(operation: "pipe", errno: errno) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environ)
        close(pipeFDs[1])
        guard rc == 0 else {
            close(pipeFDs[0])
            throw SocketError(operation: "posix_spawnp \(arguments[0])", errno: rc)
        }
        self.pid = pid
        self.output = pipeFDs[0]
        _ = fcntl(output, F_SETFL, fcntl(output, F_GETFL) | O_NONBLOCK)
    }

    /// The first line the child prints, without its newline.
    func firstLine(timeout: Duration) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        var chunk = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            let count = read(output, &chunk, chunk.count)
            if count > 0 { buffer.append(contentsOf: chunk[0..<count]) }
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                return String(decoding: buffer[..<newline], as: UTF8.self)
            }
            if count == 0 { break }  // the child closed its stdout: it exited
            try await Task.sleep(for: .milliseconds(20))
        }
        throw RPCError(code: .unavailable, message: "child printed no line: \(String(decoding: buffer, as: UTF8.self))")
    }

    /// Everything the child prints until it closes its stdout (it exits).
    func allOutput(timeout: Duration) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        var chunk = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            let count = read(output, &chunk, chunk.count)
            if count > 0 { buffer.append(contentsOf: chunk[0..<count]) }
            if count == 0 { return String(decoding: buffer, as: UTF8.self) }
            if count < 0 { try await Task.sleep(for: .milliseconds(20)) }
        }
        throw RPCError(code: .deadlineExceeded, message: "child still running: \(String(decoding: buffer, as: UTF8.self))")
    }

    /// SIGTERM, then SIGKILL if it has not exited within 10 s; reaps it.
    func stop() async {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        let deadline = ContinuousClock.now + .seconds(10)
        while waitpid(pid, &status, WNOHANG) == 0 {
            if ContinuousClock.now > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                break
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        close(output)
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
                _ = try await client.unary(Echo.get, request: EchoRequest(delayMs: 10_000), timeout: .milliseconds(300))
            }
            // Half the handler's 10 s: the deadline ended the call.
            #expect(ContinuousClock.now - start < .seconds(5))

            // grpcio's default receive limit is 4 MiB.
            await expectRPCError(.resourceExhausted) {
                _ = try await client.unary(Echo.get, request: EchoRequest(payload: Array(repeating: 1, count: 5 << 20)))
            }
            let after = try await client.unary(Echo.get, request: EchoRequest(text: "still fine"))
            #expect(after.text == "still fine")
        }
    }

    @Test("a long status message from grpcio is read whole, up to what nghttp2 can decode")
    func longStatusMessage() async throws {
        try await withGRPCIOEchoServer { client in
            let text = "value: " + String(repeating: "w", count: 60_000)
            let error = await expectRPCError(.invalidArgument) {
                _ = try await client.unary(Echo.get, request: EchoRequest(text: text, failWithCode: 3), timeout: .seconds(20))
            }
            #expect(error?.message == text)
        }
    }

    @Test("header fields beyond nghttp2's 64 KiB end the call at once, and the client recovers")
    func oversizedHeaderField() async throws {
        // grpcio sends trailers of any size, whatever SETTINGS_MAX_HEADER_LIST_SIZE says;
        // nghttp2 cannot decode a field over 64 KiB and ends the connection. The call
        // must fail at once (not at its deadline) and the next call must work.
        try await withGRPCIOEchoServer { client in
            let requests = [
                EchoRequest(text: String(repeating: "w", count: 100_000), failWithCode: 3),
                EchoRequest(text: String(repeating: "w", count: 1_000_000), failWithCode: 3),
                EchoRequest(text: "pad", metadataPaddingBytes: 100_000),
            ]
            for request in requests {
                let start = ContinuousClock.now
                do {
                    _ = try await client.unary(Echo.get, request: request, timeout: .seconds(20))
                    Issue.record("a 64 KiB+ header field was read: this test's premise changed")
                } catch let error as RPCError {
                    #expect(error.code == .unavailable || error.code == .invalidArgument, "\(error)")
                }
                #expect(ContinuousClock.now - start < .seconds(10))
                #expect(try await client.unary(Echo.get, request: EchoRequest(text: "after"), timeout: .seconds(20)).text == "after")
            }
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
