import Metrics
import Synchronization

/// Times every call and counts it by its status code: `stb_rpc_server_requests_total`
/// (`service`, `method`, `code`, `protocol`: `grpc` or `connect`),
/// `stb_rpc_server_request_duration_seconds` and `stb_rpc_server_calls_in_flight`
/// (`service`, `method`).
///
/// Put it first (outermost), so it sees the status the caller gets after every other
/// interceptor has mapped errors. The metric objects of a method are made at its first
/// call and reused, so a call costs a dictionary look-up, a clock read and a few atomic
/// adds, and no label strings.
public final class MetricsInterceptor: ServerInterceptor {
    private let factory: any MetricsFactory
    private let methods = Mutex<[MethodKey: MethodMetrics]>([:])

    private struct MethodKey: Hashable {
        var path: String
        var rpcProtocol: RPCProtocol
    }

    /// Records into `factory`; by default the process's `MetricsSystem`.
    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
    }

    public func intercept<Result: Sendable>(
        context: ServerContext,
        next: @Sendable (ServerContext) async throws -> Result
    ) async throws -> Result {
        let metrics = self.metrics(for: MethodKey(path: context.path, rpcProtocol: context.rpcProtocol))
        metrics.inFlight.increment()
        let start = ContinuousClock.now
        do {
            let result = try await next(context)
            metrics.finished(code: .ok, after: ContinuousClock.now - start)
            return result
        } catch {
            metrics.finished(code: Self.code(of: error), after: ContinuousClock.now - start)
            throw error
        }
    }

    public func interceptImmediately<Result: Sendable>(
        context: ServerContext,
        next: (ServerContext) throws -> Result?
    ) throws -> Result? {
        let metrics = self.metrics(for: MethodKey(path: context.path, rpcProtocol: context.rpcProtocol))
        let start = ContinuousClock.now
        // Not counted in flight: the call starts and ends within this synchronous call on
        // one thread, so the gauge would go up and back down at once (two atomic updates
        // for nothing). A call not answered here goes through `intercept`, which counts it.
        do {
            guard let result = try next(context) else { return nil }
            metrics.recorded(code: .ok, after: ContinuousClock.now - start)
            return result
        } catch {
            metrics.recorded(code: Self.code(of: error), after: ContinuousClock.now - start)
            throw error
        }
    }

    /// The status the server sends for `error` (as `ServerConnection.handlerFinished` maps it).
    static func code(of error: any Error) -> RPCError.Code {
        switch error {
        case let error as RPCError: error.code
        case is CancellationError: .cancelled
        default: .unknown
        }
    }

    private func metrics(for key: MethodKey) -> MethodMetrics {
        if let known = methods.withLock({ $0[key] }) { return known }
        let made = MethodMetrics(path: key.path, rpcProtocol: key.rpcProtocol, factory: factory)
        return methods.withLock { methods in
            if let known = methods[key] { return known }
            methods[key] = made
            return made
        }
    }
}

/// One method's metric objects, for calls in one protocol.
final class MethodMetrics: Sendable {
    let service: String
    let method: String
    let rpcProtocol: RPCProtocol
    let inFlight: Meter
    let duration: Metrics.Timer
    private let factory: any MetricsFactory
    /// Counters by status code, made at a code's first use (most methods see few codes).
    private let requests = Mutex<[Int: Counter]>([:])

    init(path: String, rpcProtocol: RPCProtocol, factory: any MetricsFactory) {
        // "/package.Service/Method": labels from the two parts; the router only routes
        // registered paths, so the label values are bounded.
        let parts = path.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: true)
        service = parts.count == 2 ? String(parts[0]) : ""
        method = parts.count == 2 ? String(parts[1]) : path
        self.rpcProtocol = rpcProtocol
        self.factory = factory
        let dimensions = [("service", service), ("method", method)]
        inFlight = Meter(label: RPCMetricName.inFlight, dimensions: dimensions, factory: factory)
        duration = Metrics.Timer(label: RPCMetricName.duration, dimensions: dimensions, factory: factory)
    }

    /// A call counted in flight has ended.
    func finished(code: RPCError.Code, after elapsed: Duration) {
        inFlight.decrement()
        recorded(code: code, after: elapsed)
    }

    /// Records a call's duration and status.
    func recorded(code: RPCError.Code, after elapsed: Duration) {
        let (seconds, attoseconds) = elapsed.components
        duration.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        counter(for: code).increment()
    }

    private func counter(for code: RPCError.Code) -> Counter {
        if let known = requests.withLock({ $0[code.rawValue] }) { return known }
        let made = Counter(
            label: RPCMetricName.requests,
            dimensions: [("service", service), ("method", method), ("code", code.description), ("protocol", rpcProtocol.rawValue)],
            factory: factory)
        return requests.withLock { requests in
            if let known = requests[code.rawValue] { return known }
            requests[code.rawValue] = made
            return made
        }
    }
}
