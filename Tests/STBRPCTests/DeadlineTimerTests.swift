import STBEcho
import STBEventLoop
import STBMessages
import Synchronization
import Testing

@testable import STBRPC

/// Timers on a loop: a call's deadline timer leaves the loop when the call ends, and
/// timers fire in deadline order whatever was cancelled among them.
@Suite struct DeadlineTimerTests {
    /// Calls with a deadline far away, answered long before it: no timer of theirs is
    /// left on the server's loop (each used to stay until its deadline, piling up).
    @Test func finishedCallsLeaveNoTimerBehind() async throws {
        let group = try EventLoopGroup(count: 1, name: "stb-timer-test")
        defer { group.shutdown() }
        let server = try RPCServer(configuration: RPCServer.Configuration(), services: [EchoService()], group: group)
        let port = try await server.start()
        let client = try RPCClient(host: "127.0.0.1", port: port)
        for index in 0..<200 {
            let reply = try await client.unary(Echo.get, request: EchoRequest(text: "call \(index)"), timeout: .seconds(60))
            #expect(reply.text == "call \(index)")
        }
        let left = await scheduledTimers(on: group.loops[0])
        await client.close()
        await server.shutdown(gracePeriod: .seconds(1))
        #expect(left < 10, "\(left) timers left on the server's loop after 200 finished calls")
    }

    /// Timers due in a shuffled order, every third cancelled (some before and some after
    /// others were scheduled): the rest fire once each, earliest deadline first.
    @Test func timersFireInDeadlineOrderWithoutTheCancelled() async throws {
        let group = try EventLoopGroup(count: 1, name: "stb-timer-test")
        defer { group.shutdown() }
        let loop = group.loops[0]
        let fired = Mutex<[Int]>([])
        let delays = Array(0..<60).shuffled()
        let expected = await withCheckedContinuation { (continuation: CheckedContinuation<[Int], Never>) in
            loop.execute {
                var handles: [(delay: Int, handle: TimerHandle)] = []
                for delay in delays {
                    let handle = loop.schedule(afterNanoseconds: UInt64(20 + delay) * 1_000_000) {
                        fired.withLock { $0.append(delay) }
                    }
                    handles.append((delay, handle))
                    // Cancel some while the heap is still growing, the rest at the end.
                    if handles.count % 6 == 0 { handles[handles.count - 3].handle.cancel() }
                }
                for (index, entry) in handles.enumerated() where index % 6 == 5 { entry.handle.cancel() }
                let cancelled = Set(handles.enumerated().filter { $0.offset % 6 == 5 || $0.offset % 6 == 3 }.map(\.element.delay))
                continuation.resume(returning: delays.filter { !cancelled.contains($0) }.sorted())
            }
        }
        let done = await eventually { fired.withLock { $0.count } >= expected.count }
        #expect(done)
        try await Task.sleep(for: .milliseconds(150))  // after the last deadline: nothing more fires
        #expect(fired.withLock { $0 } == expected)
        #expect(await scheduledTimers(on: loop) == 0)
    }

    private func scheduledTimers(on loop: EventLoop) async -> Int {
        await withCheckedContinuation { continuation in
            loop.execute { continuation.resume(returning: loop.scheduledTimerCount) }
        }
    }
}
