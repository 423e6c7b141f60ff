import Glibc
import STBMessages
internal import CLinux
import Logging
import Synchronization
import STBEventLoop

/// A gRPC server: HTTP/2 (h2c) on nghttp2, with worker threads that each run an event loop
/// and accept on their own `SO_REUSEPORT` socket. Serves `grpc.health.v1.Health` always.
public final class RPCServer: Sendable {
    public let configuration: Configuration
    /// The health service; set statuses here. Shutdown sets everything NOT_SERVING.
    public let health: HealthService
    private let group: EventLoopGroup
    private let ownsGroup: Bool
    private let core: ServerCore
    private let state = Mutex(State())

    private struct State {
        var listeners: [UncheckedSendableBox<ServerListener>] = []
        var port = 0
        var stopped = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Creates a server for `services` (health and reflection are added; reflection lists
    /// the services registered here, itself and health). Call `start()` to listen.
    ///
    /// Pass `group` to share worker loops with other work (a database pool, so that a
    /// handler's queries complete on its own thread); its loop count then sets the
    /// number of workers. A group passed in is left running when the server stops: its
    /// owner shuts it down after whatever else uses it.
    public init(
        configuration: Configuration, services: [any RPCService], interceptors: [any ServerInterceptor] = [],
        group: EventLoopGroup? = nil, health: HealthService = HealthService(), logger: Logger = Logger(label: "stb.rpc.server")
    ) throws {
        self.configuration = configuration
        self.health = health
        var router = RPCRouter()
        health.register(in: &router)
        for service in services { service.register(in: &router) }
        ReflectionService(services: router.serviceNames + ReflectionService.serviceNames).register(in: &router)
        router = router.intercepted(by: interceptors)
        self.ownsGroup = group == nil
        self.group = try group ?? EventLoopGroup(count: max(1, configuration.workers), name: "stb-rpc")
        self.core = ServerCore(configuration: configuration, router: router, logger: logger, loops: self.group.loops)
    }

    /// The bound port (after `start()`).
    public var port: Int { state.withLock { $0.port } }

    /// Binds the listening sockets and starts accepting. Returns the bound port.
    @discardableResult
    public func start() async throws -> Int {
        if let port = state.withLock({ $0.listeners.isEmpty ? nil : $0.port }) { return port }
        var port = configuration.port
        var listeners: [UncheckedSendableBox<ServerListener>] = []
        for loop in group.loops {
            let fd = try Socket.listen(host: configuration.host, port: port, reusePort: true)
            if port == 0 { port = Socket.localPort(fd) }
            let listener = ServerListener(fd: fd, loop: loop, core: core)
            let box = UncheckedSendableBox(listener)
            listeners.append(box)
            try await onLoop(loop) { try loop.register(box.value, fd: box.value.fd, events: EPOLLIN.rawValue) }
        }
        state.withLock {
            $0.listeners = listeners
            $0.port = port
        }
        // A service that set its status before starting (not ready yet) keeps it.
        if health.status(forService: "") == nil { health.setStatus(.serving, forService: "") }
        core.logger.info("listening", metadata: ["host": "\(configuration.host)", "port": "\(port)", "workers": "\(group.loops.count)"])
        return port
    }

    /// Waits until `shutdown` has finished.
    public func waitUntilStopped() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state in
                if state.stopped { return true }
                state.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Graceful shutdown: health NOT_SERVING, stop accepting, GOAWAY, let running calls
    /// finish within `gracePeriod`, then cancel what remains and close.
    public func shutdown(gracePeriod: Duration = .seconds(10)) async {
        health.enterShutdown()
        let listeners = state.withLock { state in
            defer { state.listeners = [] }
            return state.listeners
        }
        for (index, loop) in group.loops.enumerated() {
            let listener = index < listeners.count ? listeners[index] : nil
            let core = self.core
            _ = try? await onLoop(loop) {
                listener?.value.close()
                for connection in core.registry(for: loop).connections.values { connection.beginShutdown() }
            }
        }
        let deadline = ContinuousClock.now + gracePeriod
        while ContinuousClock.now < deadline, await connectionCount() > 0 {
            try? await Task.sleep(for: .milliseconds(20))
        }
        for loop in group.loops {
            let core = self.core
            _ = try? await onLoop(loop) {
                for connection in Array(core.registry(for: loop).connections.values) {
                    connection.close(reason: "server shut down")
                }
            }
        }
        if ownsGroup { group.shutdown() }
        core.logger.info("stopped")
        let waiters = state.withLock { state in
            state.stopped = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Open connections across all workers.
    public func connectionCount() async -> Int {
        var total = 0
        for loop in group.loops {
            let core = self.core
            total += (try? await onLoop(loop) { core.registry(for: loop).connections.count }) ?? 0
        }
        return total
    }

    /// Runs `body` on `loop` and returns its result.
    private func onLoop<R: Sendable>(_ loop: EventLoop, _ body: @escaping @Sendable () throws -> R) async throws -> R {
        try await withCheckedThrowingContinuation { continuation in
            loop.execute { continuation.resume(with: Result { try body() }) }
        }
    }
}
