import Glibc
internal import CLinux
import Synchronization

/// Something an event loop watches: a socket with readiness callbacks.
package protocol EventLoopSource: AnyObject {
    /// Called on the loop thread with the epoll event bits.
    func handleEvents(_ events: UInt32)
}

/// One worker: an epoll loop on its own thread, and a Swift `TaskExecutor`.
///
/// Connections live on one loop for their whole life. Handler tasks prefer their
/// connection's loop as executor, so a call (and its continuations) runs on the same
/// thread as its socket: no locks on connection state and no thread hops. State marked
/// "loop only" below is touched by the loop thread alone.
public final class EventLoop: TaskExecutor, @unchecked Sendable {
    // @unchecked: loop-only state is confined to the loop thread; cross-thread
    // entry points (`enqueue`, `execute`, `stop`) go through `remote`.

    private let epollFD: Int32
    private let wakeFD: Int32
    /// The loop thread's id (0 until `run()` starts); read from any thread.
    private let threadID = Atomic<UInt>(0)

    // Loop only.
    private var sources: [Int32: any EventLoopSource] = [:]
    private var localJobs: [UnownedJob] = []
    private var localTasks: [() -> Void] = []
    // Emptied buffers swapped with the queues above (and `remote`'s) while a batch runs,
    // so taking a batch allocates nothing: a copy followed by removeAll(keepingCapacity:)
    // would allocate a new buffer every time, the copy still sharing the old one.
    private var runningJobs: [UnownedJob] = []
    private var runningTasks: [() -> Void] = []
    private var arrivedJobs: [UnownedJob] = []
    private var arrivedTasks: [@Sendable () -> Void] = []
    private let timers = TimerQueue()
    private var pendingFlushes: [any FlushTarget] = []
    private var tickHandlers: [ObjectIdentifier: () -> Void] = [:]
    private var nextTick: UInt64 = 0
    private var running = false
    /// The loop's cached monotonic time, refreshed once per iteration.
    package private(set) var now: UInt64 = monotonicNanos()
    /// One read buffer shared by every connection on the loop.
    package let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)

    private struct Remote {
        var jobs: [UnownedJob] = []
        var tasks: [@Sendable () -> Void] = []
        var wakePending = false
        var stopRequested = false
    }
    private let remote = Mutex(Remote())

    /// How often per-connection housekeeping (idle, slow-header, stall timers) runs.
    package static let tickInterval: UInt64 = 250_000_000

    package init() throws(SocketError) {
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw SocketError(operation: "epoll_create1", errno: errno) }
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard wakeFD >= 0 else { throw SocketError(operation: "eventfd", errno: errno) }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = wakeFD
        epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &event)
    }

    deinit {
        timers.removeAll()
        close(epollFD)
        close(wakeFD)
        readBuffer.deallocate()
    }

    /// Whether the caller runs on this loop's thread.
    public var inEventLoop: Bool {
        let id = threadID.load(ordering: .acquiring)
        return id != 0 && pthread_equal(pthread_self(), id) != 0
    }

    /// Whether the loop thread has started running.
    package var isStarted: Bool { threadID.load(ordering: .acquiring) != 0 }

    // MARK: - Work from any thread

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if inEventLoop {
            localJobs.append(job)
            return
        }
        let wake = remote.withLock { state in
            state.jobs.append(job)
            defer { state.wakePending = true }
            return !state.wakePending
        }
        if wake { signalWake() }
    }

    /// Runs `body` on the loop thread, soon.
    public func execute(_ body: @escaping @Sendable () -> Void) {
        if inEventLoop {
            localTasks.append(body)
            return
        }
        let wake = remote.withLock { state in
            state.tasks.append(body)
            defer { state.wakePending = true }
            return !state.wakePending
        }
        if wake { signalWake() }
    }

    /// Asks the loop to return from `run()` after its current iteration.
    package func stop() {
        remote.withLock { $0.stopRequested = true }
        signalWake()
    }

    private func signalWake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    // MARK: - Loop-only API

    /// Runs `body` on the loop; if already there, right away.
    package func executeSoon(_ body: @escaping () -> Void) {
        precondition(inEventLoop, "loop-only call made off the loop thread")
        localTasks.append(body)
    }

    package func register(_ source: any EventLoopSource, fd: Int32, events: UInt32) throws(SocketError) {
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) == 0 else {
            throw SocketError(operation: "epoll_ctl(ADD)", errno: errno)
        }
        sources[fd] = source
    }

    package func modify(fd: Int32, events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event)
    }

    package func deregister(fd: Int32) {
        epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
        sources[fd] = nil
    }

    /// Fires `body` once, `nanoseconds` from now, unless cancelled.
    @discardableResult
    package func schedule(afterNanoseconds nanoseconds: UInt64, _ body: @escaping () -> Void) -> TimerHandle {
        let handle = TimerHandle(deadline: monotonicNanos() &+ nanoseconds, action: body)
        timers.insert(handle)
        return handle
    }

    /// Timers scheduled and not yet fired or cancelled. Loop only.
    package var scheduledTimerCount: Int { timers.count }

    /// Calls `target.flush()` once at the end of this loop iteration.
    package func scheduleFlush(_ target: any FlushTarget) {
        guard !target.flushScheduled else { return }
        target.flushScheduled = true
        pendingFlushes.append(target)
    }

    /// Registers a callback run every `tickInterval` (connection housekeeping).
    package func addTickHandler(_ owner: AnyObject, _ body: @escaping () -> Void) {
        tickHandlers[ObjectIdentifier(owner)] = body
    }

    package func removeTickHandler(_ owner: AnyObject) {
        tickHandlers[ObjectIdentifier(owner)] = nil
    }

    // MARK: - Running

    /// Runs the loop on the calling thread until `stop()`.
    package func run() {
        running = true
        threadID.store(pthread_self(), ordering: .releasing)
        let capacity = 512
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        nextTick = monotonicNanos() &+ Self.tickInterval
        while running {
            let count = epoll_wait(epollFD, events, Int32(capacity), waitTimeoutMillis())
            now = monotonicNanos()
            if count > 0 {
                for index in 0..<Int(count) {
                    let event = events[index]
                    if event.data.fd == wakeFD {
                        var value: UInt64 = 0
                        _ = read(wakeFD, &value, 8)
                    } else if let source = sources[event.data.fd] {
                        source.handleEvents(event.events)
                    }
                }
            }
            drainRemote()
            runDueTimers()
            runLocalWork()
            runFlushes()
        }
    }

    private func waitTimeoutMillis() -> Int32 {
        if !localJobs.isEmpty || !localTasks.isEmpty || !pendingFlushes.isEmpty { return 0 }
        let current = monotonicNanos()
        var deadline = nextTick
        if let first = timers.peek() { deadline = min(deadline, first.deadline) }
        guard deadline > current else { return 0 }
        return Int32(min((deadline - current + 999_999) / 1_000_000, 60_000))
    }

    private func drainRemote() {
        var jobs = arrivedJobs
        var tasks = arrivedTasks
        arrivedJobs = []
        arrivedTasks = []
        let stop = remote.withLock { state in
            swap(&state.jobs, &jobs)
            swap(&state.tasks, &tasks)
            state.wakePending = false
            return state.stopRequested
        }
        localJobs.append(contentsOf: jobs)
        for task in tasks { localTasks.append(task) }
        jobs.removeAll(keepingCapacity: true)
        tasks.removeAll(keepingCapacity: true)
        arrivedJobs = jobs
        arrivedTasks = tasks
        if stop { running = false }
    }

    private func runDueTimers() {
        while let first = timers.peek(), first.deadline <= now {
            timers.removeFirst()
            first.fire()
        }
        if now >= nextTick {
            nextTick = now &+ Self.tickInterval
            for handler in Array(tickHandlers.values) { handler() }
        }
    }

    /// Runs queued jobs and closures; bounded per iteration so sockets are not starved.
    private func runLocalWork() {
        var budget = 8192
        let executor = asUnownedTaskExecutor()
        while budget > 0, !localJobs.isEmpty || !localTasks.isEmpty {
            if !localTasks.isEmpty {
                // What the batch queues goes to the (empty) spare buffer, for the next round.
                swap(&localTasks, &runningTasks)
                for task in runningTasks { task() }
                budget -= runningTasks.count
                runningTasks.removeAll(keepingCapacity: true)
            }
            if !localJobs.isEmpty {
                swap(&localJobs, &runningJobs)
                for job in runningJobs { job.runSynchronously(on: executor) }
                budget -= runningJobs.count
                runningJobs.removeAll(keepingCapacity: true)
            }
            // Handlers that completed may have queued output: send it with the rest.
        }
    }

    private func runFlushes() {
        while !pendingFlushes.isEmpty {
            let targets = pendingFlushes
            pendingFlushes.removeAll(keepingCapacity: true)
            for target in targets {
                target.flushScheduled = false
                target.flush()
            }
        }
    }
}

/// Something with buffered output that the loop flushes once per iteration.
package protocol FlushTarget: AnyObject {
    var flushScheduled: Bool { get set }
    func flush()
}

/// Nanoseconds on the monotonic clock.
package func monotonicNanos() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
}
