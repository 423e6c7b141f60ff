import STBMessages
import Synchronization
import STBEventLoop

/// `grpc.health.v1.Health`: Check, List and Watch over per-service statuses.
///
/// The empty service name stands for the whole server. Shutdown sets every status to
/// NOT_SERVING before connections are told to go away.
public final class HealthService: RPCService {
    public typealias Status = Grpc_Health_V1_HealthCheckResponse.ServingStatus

    private struct State {
        var statuses: [String: Status] = [:]
        var watchers: [Int: (service: String, queue: MessageQueue)] = [:]
        var nextWatcher = 0
        var shuttingDown = false
    }

    private let state = Mutex(State())

    public init() {}

    /// Sets the status of `service` ("" for the server) and tells its watchers.
    public func setStatus(_ status: Status, forService service: String) {
        let queues = state.withLock { state -> [MessageQueue] in
            guard !state.shuttingDown, state.statuses[service] != status else { return [] }
            state.statuses[service] = status
            return state.watchers.values.filter { $0.service == service }.map(\.queue)
        }
        let message = Grpc_Health_V1_HealthCheckResponse(status: status).serializedBytes()
        for queue in queues { queue.push(message) }
    }

    /// The current status of `service`, nil when unknown.
    public func status(forService service: String) -> Status? {
        state.withLock { $0.statuses[service] }
    }

    /// Marks every service NOT_SERVING and ignores later changes.
    func enterShutdown() {
        let updates = state.withLock { state -> [MessageQueue] in
            state.shuttingDown = true
            for key in state.statuses.keys { state.statuses[key] = .notServing }
            return state.watchers.values.map(\.queue)
        }
        let message = Grpc_Health_V1_HealthCheckResponse(status: .notServing).serializedBytes()
        for queue in updates {
            queue.push(message)
            // Watches end after NOT_SERVING so draining connections can close.
            queue.finish()
        }
    }

    public func register(in router: inout RPCRouter) {
        router.register(Grpc_Health_V1_Health.check, unary: { [self] request, _ in try check(request) })
        // From memory alone: answered at once, on the connection's thread.
        router.register(Grpc_Health_V1_Health.check, immediate: { [self] request, _ in try check(request) })
        router.register(Grpc_Health_V1_Health.list, unary: { [self] _, _ in
            let statuses = state.withLock { $0.statuses }
            return Grpc_Health_V1_HealthListResponse(
                statuses: statuses.mapValues { Grpc_Health_V1_HealthCheckResponse(status: $0) })
        })
        router.register(Grpc_Health_V1_Health.watch, serverStreaming: { [self] request, writer, _ in
            try await watch(request.service, writer: writer)
        })
    }

    /// Check's answer: the service's status, NOT_FOUND for a service never set.
    private func check(_ request: Grpc_Health_V1_HealthCheckRequest) throws(RPCError) -> Grpc_Health_V1_HealthCheckResponse {
        guard let status = status(forService: request.service) else {
            throw RPCError(code: .notFound, message: "unknown service \"\(request.service)\"")
        }
        return Grpc_Health_V1_HealthCheckResponse(status: status)
    }

    private func watch(_ service: String, writer: RPCWriter<Grpc_Health_V1_HealthCheckResponse>) async throws {
        let queue = MessageQueue()
        let (id, current) = state.withLock { state in
            defer { state.nextWatcher += 1 }
            state.watchers[state.nextWatcher] = (service, queue)
            return (state.nextWatcher, state.statuses[service] ?? .serviceUnknown)
        }
        defer { _ = state.withLock { $0.watchers.removeValue(forKey: id) } }
        try await writer.write(Grpc_Health_V1_HealthCheckResponse(status: current))
        var last = current
        // Ends when the call is cancelled (the queue's wait throws CancellationError).
        while let bytes = try await queue.next() {
            let update = try Grpc_Health_V1_HealthCheckResponse(serializedBytes: bytes)
            if update.status != last {
                last = update.status
                try await writer.write(update)
            }
        }
    }
}
