import Glibc
import Logging
import STBEventLoop
import Testing

@testable import STBRPC

/// A connection whose peer has gone before the server writes to it.
@Suite struct BrokenPipeTests {
    /// The server's first write (its SETTINGS, flushed at the end of the loop turn that
    /// accepted the connection) goes to a socket whose peer is already closed: the write
    /// fails with EPIPE and the connection closes. Written with `write(2)`, it raised
    /// SIGPIPE, whose default action ended the process (this test process with it).
    @Test func aWriteToAPeerThatHasGoneClosesTheConnectionAndNothingElse() async throws {
        let group = try EventLoopGroup(count: 1, name: "stb-pipe-test")
        defer { group.shutdown() }
        let loop = group.loops[0]
        let core = ServerCore(
            configuration: RPCServer.Configuration(), router: RPCRouter(), logger: Logger(label: "stb.test"),
            loops: group.loops)
        var fds: [Int32] = [-1, -1]
        let flags = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        try #require(socketpair(AF_UNIX, flags, 0, &fds) == 0)
        Glibc.close(fds[1])
        let server = fds[0]
        let opened = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            loop.execute {
                guard let connection = try? ServerConnection(server: core, loop: loop, fd: server) else {
                    continuation.resume(returning: false)
                    return
                }
                core.registry(for: loop).connections[ObjectIdentifier(connection)] = connection
                continuation.resume(returning: true)
            }
        }
        try #require(opened)
        // A later turn of the loop: the flush has run by then.
        let left = await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
            loop.execute { continuation.resume(returning: core.registry(for: loop).connections.count) }
        }
        #expect(left == 0, "the connection to a peer that has gone is still open")
    }
}
