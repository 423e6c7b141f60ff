import Logging
import ServiceLifecycle
import STBMessages
import STBRPC
import Synchronization

/// The running mocks: one RPC server per stubbed service, each on its own port, with
/// health and reflection like a real server.
public final class MockHost: Sendable {
    private let registry: StubRegistry
    private let journal: StubJournal
    private let host: String
    private let logger: Logger
    private let servers = Mutex<[String: RPCServer]>([:])

    public init(registry: StubRegistry, journal: StubJournal, host: String, logger: Logger) {
        self.registry = registry
        self.journal = journal
        self.host = host
        self.logger = logger
    }

    /// The services a mock can stand in for: every service of `Protos/` but health and
    /// reflection.
    public static var stubbableServices: [String] {
        Set(ProtoMethodDescriptor.generated.map(\.serviceName)).filter { !$0.hasPrefix("grpc.") }.sorted()
    }

    /// Starts a mock of `service` on `port` (0: any); returns the bound port. A mock that
    /// already runs keeps running (its port is returned).
    public func start(service: String, port: Int) async throws -> Int {
        guard Self.stubbableServices.contains(service) else {
            throw RPCError(code: .notFound, message: "no service \(service) in Protos/")
        }
        guard (0...65535).contains(port) else { throw RPCError(code: .invalidArgument, message: "port: 0 to 65535") }
        if let running = servers.withLock({ $0[service] }) { return running.port }
        var configuration = RPCServer.Configuration()
        configuration.host = host
        configuration.port = port
        configuration.workers = 1
        let server = try RPCServer(
            configuration: configuration, services: [MockService(serviceName: service, registry: registry, journal: journal)],
            logger: logger)
        let bound: Int
        do {
            bound = try await server.start()
        } catch {
            throw RPCError(code: .failedPrecondition, message: "could not listen on \(host):\(port)")
        }
        let kept = servers.withLock { servers -> RPCServer? in
            if let other = servers[service] { return other }
            servers[service] = server
            return nil
        }
        if let kept {
            await server.shutdown(gracePeriod: .zero)
            return kept.port
        }
        logger.info("mock listening", metadata: ["service": "\(service)", "port": "\(bound)"])
        return bound
    }

    /// Stops the mock of `service`; false when none runs.
    public func stop(service: String) async -> Bool {
        guard let server = servers.withLock({ $0.removeValue(forKey: service) }) else { return false }
        await server.shutdown(gracePeriod: .seconds(1))
        logger.info("mock stopped", metadata: ["service": "\(service)"])
        return true
    }

    /// The running mocks and their ports, by service.
    public func running() -> [(service: String, port: Int)] {
        servers.withLock { servers in servers.keys.sorted().map { ($0, servers[$0]?.port ?? 0) } }
    }

    /// Stops every mock (at shutdown).
    public func stopAll() async {
        for (service, _) in running() { _ = await stop(service: service) }
    }
}

/// Stops the mocks when stubd stops (run in its service group).
public struct MockShutdown: Service {
    let mocks: MockHost

    public init(mocks: MockHost) { self.mocks = mocks }

    public func run() async throws {
        try? await gracefulShutdown()
        await mocks.stopAll()
    }
}
