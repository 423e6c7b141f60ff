import Histogram
import Glibc
import STBEventLoop
import STBMessages
import STBRPC
import Synchronization

/// What a run is: where to send, which method, what, when, and how many at once.
public struct LoadConfiguration: Sendable {
    /// The server's host and port.
    public var host: String
    public var port: Int
    /// The method called (unary and server-streaming methods).
    public var method: ProtoMethodDescriptor
    /// The requests, of the method's input type.
    public var requests: RequestSource
    /// When each request is meant to be sent.
    public var schedule: LoadSchedule
    /// HTTP/2 connections, each with at most `streamsPerConnection` calls at once.
    public var connections = 4
    public var streamsPerConnection = 64
    /// At most this many calls in flight in all (further requests wait, and are late).
    public var maxInFlight = Int.max
    /// A request sent more than this after its intended time counts as late.
    public var lateThresholdNanos: UInt64 = 1_000_000
    /// Requests still unsent this long after the schedule's end are never sent.
    public var sendGraceNanos: UInt64 = 1_000_000_000
    /// Each call's deadline.
    public var timeout: Duration = .seconds(10)
    /// Sent with every call (an access token, say).
    public var metadata = Metadata()
    /// Event-loop threads the connections and calls run on.
    public var threads = 1

    public init(host: String, port: Int, method: ProtoMethodDescriptor, requests: RequestSource, schedule: LoadSchedule) {
        self.host = host
        self.port = port
        self.method = method
        self.requests = requests
        self.schedule = schedule
    }

    /// The cap on calls in flight: connections × streams, lowered by `maxInFlight`.
    public var inFlightCap: Int { min(maxInFlight, connections * streamsPerConnection) }

    /// Refuses what cannot run (checked before anything connects).
    public func validate() throws(LoadError) {
        guard method.kind == .unary || method.kind == .serverStreaming else {
            throw LoadError(.badOption, "\(method.path) is \(method.kind.rawValue): the load generator calls unary and server-streaming methods")
        }
        guard (1...1024).contains(connections) else { throw LoadError(.badOption, "connections must be 1 to 1024") }
        guard (1...10_000).contains(streamsPerConnection) else { throw LoadError(.badOption, "streams per connection must be 1 to 10000") }
        guard maxInFlight >= 1 else { throw LoadError(.badOption, "the in-flight cap must be at least 1") }
        guard (1...64).contains(threads) else { throw LoadError(.badOption, "threads must be 1 to 64") }
        guard requests.typeName == method.requestType else {
            throw LoadError(.badRequest, "the requests are \(requests.typeName), \(method.path) takes \(method.requestType)")
        }
    }
}

/// Runs a load: sends each request at its intended time whatever the replies do (an open
/// model), up to the in-flight cap, and measures each call from its intended and from
/// its actual send time.
public final class LoadRunner: Sendable {
    public let configuration: LoadConfiguration

    public init(configuration: LoadConfiguration) throws(LoadError) {
        try configuration.validate()
        self.configuration = configuration
    }

    /// Runs the schedule to its end, waits for the calls in flight, and reports.
    public func run() async -> LoadReport {
        let configuration = self.configuration
        let group: EventLoopGroup
        do {
            group = try EventLoopGroup(count: configuration.threads, name: "stb-load")
        } catch {
            return LoadReport(configuration: configuration, steps: [], elapsedNanos: 0, setupError: "could not start event loops: \(error)")
        }
        defer { group.shutdown() }
        var clients: [RPCClient] = []
        var loops: [EventLoop] = []
        for index in 0..<configuration.connections {
            do {
                clients.append(try RPCClient(host: configuration.host, port: configuration.port, group: group))
            } catch {
                return LoadReport(configuration: configuration, steps: [], elapsedNanos: 0, setupError: "could not create a client: \(error)")
            }
            // The group hands out its loops round robin from the first: client i is on loop
            // i mod threads, and its calls run there, without thread hops.
            loops.append(group.loops[index % group.loops.count])
        }
        let statistics = RunStatistics(steps: configuration.schedule.steps.count)
        let slots = SlotPool(connections: configuration.connections, streams: configuration.streamsPerConnection, cap: configuration.inFlightCap)
        let method = ProtoMethod<ProtoWireMessage, ProtoWireMessage>(
            path: configuration.method.path, kind: configuration.method.kind == .unary ? .unary : .serverStreaming)
        let start = monotonicNanos()
        let scheduleEnd = start + configuration.schedule.durationNanos
        let giveUp = scheduleEnd + configuration.sendGraceNanos

        await withTaskExecutorPreference(loops[0]) {
            await withDiscardingTaskGroup { tasks in
                var index = 0
                for arrival in configuration.schedule.makeArrivals() {
                    let due = start + arrival.offsetNanos
                    var current = monotonicNanos()
                    // A sleep costs a timer and two executor hops: requests due within a
                    // millisecond go now (up to that much early), so at high rates one wake-up
                    // sends a batch.
                    if due > current + 1_000_000 {
                        try? await Task.sleep(nanoseconds: due - current)
                        current = monotonicNanos()
                    }
                    if current > giveUp {
                        statistics.steps.withLock { $0[arrival.step].neverSent += 1 }
                        continue
                    }
                    let slot = await slots.acquire()
                    let sent = monotonicNanos()
                    if sent > giveUp {
                        slots.release(slot)
                        statistics.steps.withLock { $0[arrival.step].neverSent += 1 }
                        continue
                    }
                    let lag = sent > due ? sent - due : 0
                    statistics.steps.withLock {
                        $0[arrival.step].sent += 1
                        if lag > configuration.lateThresholdNanos { $0[arrival.step].late += 1 }
                        _ = $0[arrival.step].sendLag.record(max(lag / 1000, 1))
                    }
                    let requestIndex = index
                    index += 1
                    let client = clients[slot]
                    tasks.addTask(executorPreference: loops[slot]) {
                        let outcome = await Self.call(client: client, method: method, configuration: configuration, requestIndex: requestIndex)
                        let end = monotonicNanos()
                        slots.release(slot)
                        statistics.steps.withLock {
                            $0[arrival.step].record(
                                intendedNanos: due, sentNanos: sent, endNanos: end, status: outcome.status,
                                firstMessageNanos: outcome.firstMessage, messages: outcome.messages, error: outcome.error)
                        }
                    }
                }
            }
        }
        let elapsed = monotonicNanos() - start
        for client in clients { await client.close() }
        return LoadReport(configuration: configuration, steps: statistics.steps.withLock { $0 }, elapsedNanos: elapsed, setupError: nil)
    }

    private struct Outcome: Sendable {
        var status = 0
        var firstMessage: UInt64?
        var messages = 0
        var error: String?
    }

    private static func call(
        client: RPCClient, method: ProtoMethod<ProtoWireMessage, ProtoWireMessage>,
        configuration: LoadConfiguration, requestIndex: Int
    ) async -> Outcome {
        guard let bytes = configuration.requests.request(requestIndex) else {
            return Outcome(status: RPCError.Code.invalidArgument.rawValue, error: "the template made an invalid request for n = \(requestIndex)")
        }
        var outcome = Outcome()
        do {
            switch method.kind {
            case .serverStreaming:
                var first: UInt64?
                var count = 0
                try await client.serverStreaming(method, request: ProtoWireMessage(bytes: bytes), metadata: configuration.metadata, timeout: configuration.timeout) { stream in
                    for try await _ in stream {
                        if first == nil { first = monotonicNanos() }
                        count += 1
                    }
                }
                outcome.firstMessage = first
                outcome.messages = count
            default:
                _ = try await client.unaryCall(method, request: ProtoWireMessage(bytes: bytes), metadata: configuration.metadata, timeout: configuration.timeout)
            }
        } catch let error as RPCError {
            outcome.status = error.code.rawValue
            outcome.error = "\(error.code): \(error.message)"
        } catch {
            outcome.status = RPCError.Code.unknown.rawValue
            outcome.error = "\(error)"
        }
        return outcome
    }
}

/// Nanoseconds on the monotonic clock.
func monotonicNanos() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}

/// The per-step statistics every call records into.
final class RunStatistics: Sendable {
    let steps: Mutex<[StepStatistics]>

    init(steps count: Int) {
        steps = Mutex([StepStatistics](repeating: StepStatistics(), count: count))
    }
}

/// Free call slots, each naming a connection; a caller waits when none is free.
final class SlotPool: Sendable {
    private struct State {
        var free: [Int]
        var waiter: CheckedContinuation<Int, Never>?
    }

    private let state: Mutex<State>

    /// `streams` slots per connection, at most `cap` in all, spread over the connections.
    init(connections: Int, streams: Int, cap: Int) {
        var free: [Int] = []
        outer: for _ in 0..<streams {
            for connection in 0..<connections {
                if free.count == cap { break outer }
                free.append(connection)
            }
        }
        // Taken from the end: reverse so the first calls go to connection 0, 1, 2, …
        state = Mutex(State(free: free.reversed()))
    }

    /// A free slot's connection; waits for one (only the dispatcher calls this).
    func acquire() async -> Int {
        if let slot = state.withLock({ $0.free.popLast() }) { return slot }
        return await withCheckedContinuation { continuation in
            let slot: Int? = state.withLock { state in
                if let slot = state.free.popLast() { return slot }
                state.waiter = continuation
                return nil
            }
            if let slot { continuation.resume(returning: slot) }
        }
    }

    /// Returns a slot, handing it to the waiting dispatcher if there is one.
    func release(_ slot: Int) {
        let waiter: CheckedContinuation<Int, Never>? = state.withLock { state in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.free.append(slot)
            return nil
        }
        waiter?.resume(returning: slot)
    }
}
