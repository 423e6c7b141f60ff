import Glibc
internal import CLinux
import Synchronization

/// A fixed set of worker threads, each running one `EventLoop`.
public final class EventLoopGroup: Sendable {
    /// The loops, one per thread.
    public let loops: [EventLoop]
    private let threads: Mutex<[pthread_t]>
    private let nextIndex = Atomic<Int>(0)

    /// Starts `count` worker threads named `<name>-<n>`.
    public init(count: Int, name: String = "stb-loop") throws {
        precondition(count > 0, "an event loop group needs at least one loop")
        var loops: [EventLoop] = []
        for _ in 0..<count { loops.append(try EventLoop()) }
        self.loops = loops
        var threads: [pthread_t] = []
        for (index, loop) in loops.enumerated() {
            let box = Unmanaged.passRetained(ThreadStart(loop: loop, name: "\(name)-\(index)"))
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                let start = Unmanaged<ThreadStart>.fromOpaque(raw!).takeRetainedValue()
                // Linux limits thread names to 15 bytes.
                CLinux_setThreadName(start.name)
                start.loop.run()
                return nil
            }, box.toOpaque())
            guard rc == 0 else {
                box.release()
                throw SocketError(operation: "pthread_create", errno: rc)
            }
            threads.append(thread)
        }
        self.threads = Mutex(threads)
        // Wait until every loop knows its thread, so `inEventLoop` is reliable at once.
        for loop in loops {
            while !loop.isStarted { usleep(100) }
        }
    }

    /// The next loop, round robin.
    public func next() -> EventLoop {
        loops[nextIndex.wrappingAdd(1, ordering: .relaxed).oldValue % loops.count]
    }

    /// Stops every loop and joins the threads. Call once, not from a loop thread.
    public func shutdown() {
        let threads = self.threads.withLock { threads in
            defer { threads.removeAll() }
            return threads
        }
        for loop in loops { loop.stop() }
        for thread in threads { pthread_join(thread, nil) }
    }
}

private final class ThreadStart {
    let loop: EventLoop
    let name: String
    init(loop: EventLoop, name: String) {
        self.loop = loop
        self.name = name
    }
}
