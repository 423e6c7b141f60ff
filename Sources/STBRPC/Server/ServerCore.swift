import Glibc
internal import CLinux
import Logging
import Metrics
import Synchronization
import STBEventLoop

/// What every connection of a server shares: settings, routes, logger, and the
/// per-loop connection registries used for shutdown.
final class ServerCore: Sendable {
    let configuration: RPCServer.Configuration
    let router: RPCRouter
    /// The router's methods by path bytes, for the request headers.
    let routes: RouteTable
    let logger: Logger
    let transportMetrics: TransportMetrics
    private let registries: [ObjectIdentifier: ConnectionRegistry]
    private let closedSinceTrim = Atomic<Int>(0)
    /// Closed connections after which freed memory is handed back to the OS.
    static let trimInterval = 1000

    init(configuration: RPCServer.Configuration, router: RPCRouter, logger: Logger, loops: [EventLoop]) {
        self.configuration = configuration
        self.router = router
        self.routes = RouteTable(router)
        self.logger = logger
        self.transportMetrics = TransportMetrics(factory: configuration.metricsFactory ?? MetricsSystem.factory)
        var registries: [ObjectIdentifier: ConnectionRegistry] = [:]
        for loop in loops { registries[ObjectIdentifier(loop)] = ConnectionRegistry() }
        self.registries = registries
    }

    /// The connections on `loop`. Loop only.
    func registry(for loop: EventLoop) -> ConnectionRegistry {
        registries[ObjectIdentifier(loop)]!
    }

    func connectionClosed(_ connection: ServerConnection) {
        registry(for: connection.loop).connections[ObjectIdentifier(connection)] = nil
        // Each nghttp2 session holds ~25 KiB of buffers; after many connections close,
        // glibc keeps those pages resident and reuses them fully touched, so RSS ratchets
        // up with every wave of clients. Trimming returns them (measured with
        // scripts/bench-rpc's second idle round).
        if closedSinceTrim.wrappingAdd(1, ordering: .relaxed).newValue >= Self.trimInterval {
            closedSinceTrim.store(0, ordering: .relaxed)
            malloc_trim(0)
        }
    }
}

/// The live connections of one loop. Loop only.
final class ConnectionRegistry: @unchecked Sendable {
    // @unchecked: read and written only on the loop that owns it.
    var connections: [ObjectIdentifier: ServerConnection] = [:]
}

/// Accepts connections on one loop's listening socket.
final class ServerListener: EventLoopSource {
    let fd: Int32
    private let loop: EventLoop
    private let core: ServerCore

    init(fd: Int32, loop: EventLoop, core: ServerCore) {
        self.fd = fd
        self.loop = loop
        self.core = core
    }

    func handleEvents(_ events: UInt32) {
        for _ in 0..<64 {
            let client = CLinux_accept4(fd, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            if client < 0 {
                if errno == EAGAIN || errno == EINTR || errno == ECONNABORTED { return }
                // Out of descriptors or memory: log and let the backlog wait for the next wake-up.
                core.logger.warning("accept failed", metadata: ["error": "\(String(cString: strerror(errno)))"])
                return
            }
            do {
                let connection = try ServerConnection(server: core, loop: loop, fd: client)
                core.registry(for: loop).connections[ObjectIdentifier(connection)] = connection
            } catch {
                core.logger.warning("could not set up a connection", metadata: ["error": "\(error)"])
                Glibc.close(client)
            }
        }
    }

    func close() {
        loop.deregister(fd: fd)
        Glibc.close(fd)
    }
}
