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
        let start = monotonicNanos()
        if configuration.method.kind == .unary {
            var prepared: [PreparedUnary] = []
            for client in clients {
                do {
                    prepared.append(try await client.prepareUnary(
                        path: configuration.method.path, metadata: configuration.metadata, timeout: configuration.timeout))
                } catch {
                    return LoadReport(configuration: configuration, steps: [], elapsedNanos: 0, setupError: "could not prepare the call: \(error)")
                }
            }
            await Self.runUnary(configuration: configuration, prepared: prepared, loop: loops[0], statistics: statistics, start: start)
        } else {
            await Self.runServerStreaming(configuration: configuration, clients: clients, loops: loops, statistics: statistics, start: start)
        }
        let elapsed = monotonicNanos() - start
        for client in clients { await client.close() }
        return LoadReport(configuration: configuration, steps: statistics.steps.withLock { $0 }, elapsedNanos: elapsed, setupError: nil)
    }

    /// Unary calls: one dispatcher on `loop` walks the schedule and starts each call on a
    /// connection with a free slot; the call's completion (on its connection's loop) records
    /// it and frees the slot. No task and no continuation per call.
    private static func runUnary(
        configuration: LoadConfiguration, prepared: [PreparedUnary], loop: EventLoop, statistics: RunStatistics, start: UInt64
    ) async {
        let slots = CallSlots(
            connections: configuration.connections, perConnection: configuration.streamsPerConnection, cap: configuration.inFlightCap)
        // A list of requests is framed once; a template's requests are made as they go.
        let framed = configuration.requests.fixedRequests?.map(FramedMessage.init)
        await withTaskExecutorPreference(loop) {
            var index = 0
            await dispatch(configuration: configuration, statistics: statistics, start: start, acquire: { await slots.acquire() }, putBack: slots.release) { job, connection in
                let requestIndex = index
                index += 1
                let request: FramedMessage
                if let framed {
                    request = framed[requestIndex % framed.count]
                } else if let bytes = configuration.requests.request(requestIndex) {
                    request = FramedMessage(bytes)
                } else {
                    let end = monotonicNanos()
                    statistics.steps.withLock {
                        $0[job.step].record(
                            intendedNanos: job.dueNanos, sentNanos: job.sentNanos, endNanos: end,
                            status: RPCError.Code.invalidArgument.rawValue, firstMessageNanos: nil, messages: 0,
                            error: "the template made an invalid request for n = \(requestIndex)")
                    }
                    slots.release(connection)
                    return
                }
                prepared[connection].start(request) { result in
                    let end = monotonicNanos()
                    let status: Int
                    let error: String?
                    switch result {
                    case .success:
                        (status, error) = (0, nil)
                    case .failure(let failure):
                        (status, error) = (failure.code.rawValue, "\(failure.code): \(failure.message)")
                    }
                    statistics.steps.withLock {
                        $0[job.step].record(
                            intendedNanos: job.dueNanos, sentNanos: job.sentNanos, endNanos: end, status: status,
                            firstMessageNanos: nil, messages: 0, error: error)
                    }
                    slots.release(connection)
                }
            }
            await slots.drained()
        }
    }

    /// Server-streaming calls: long-lived senders (tasks, each bound to one connection) take
    /// the dispatcher's requests, starting a new sender only while fewer than the in-flight
    /// cap exist: no task per call.
    private static func runServerStreaming(
        configuration: LoadConfiguration, clients: [RPCClient], loops: [EventLoop], statistics: RunStatistics, start: UInt64
    ) async {
        let workers = WorkerPool(connections: configuration.connections, cap: configuration.inFlightCap)
        let method = ProtoMethod<ProtoWireMessage, ProtoWireMessage>(path: configuration.method.path, kind: .serverStreaming)
        await withTaskExecutorPreference(loops[0]) {
            await withDiscardingTaskGroup { tasks in
                var index = 0
                await dispatch(
                    configuration: configuration, statistics: statistics, start: start, acquire: { await workers.acquire() },
                    putBack: { if case .idle(let worker) = $0 { workers.putBack(worker) } }
                ) { job, sender in
                    let job = SendJob(step: job.step, dueNanos: job.dueNanos, sentNanos: job.sentNanos, requestIndex: index)
                    index += 1
                    switch sender {
                    case .idle(let worker):
                        workers.assign(job, to: worker)
                    case .new(let worker, let connection):
                        let client = clients[connection]
                        tasks.addTask(executorPreference: loops[connection]) {
                            var next: SendJob? = job
                            while let job = next {
                                let outcome = await Self.call(client: client, method: method, configuration: configuration, requestIndex: job.requestIndex)
                                let end = monotonicNanos()
                                statistics.steps.withLock {
                                    $0[job.step].record(
                                        intendedNanos: job.dueNanos, sentNanos: job.sentNanos, endNanos: end, status: outcome.status,
                                        firstMessageNanos: outcome.firstMessage, messages: outcome.messages, error: outcome.error)
                                }
                                next = await workers.finished(worker)
                            }
                        }
                    }
                }
                workers.close()
            }
        }
    }

    /// Walks the schedule: waits until each request is due, takes a sender (`acquire`), and
    /// records the send, or counts the request never sent when it is past the grace period
    /// (handing the sender back with `putBack`); `launch` sends it.
    private static func dispatch<Sender>(
        configuration: LoadConfiguration, statistics: RunStatistics, start: UInt64,
        acquire: () async -> Sender, putBack: (Sender) -> Void, launch: (SendJob, Sender) -> Void
    ) async {
        let giveUp = start + configuration.schedule.durationNanos + configuration.sendGraceNanos
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
            let sender = await acquire()
            let sent = monotonicNanos()
            if sent > giveUp {
                putBack(sender)
                statistics.steps.withLock { $0[arrival.step].neverSent += 1 }
                continue
            }
            let lag = sent > due ? sent - due : 0
            statistics.steps.withLock {
                $0[arrival.step].sent += 1
                if lag > configuration.lateThresholdNanos { $0[arrival.step].late += 1 }
                _ = $0[arrival.step].sendLag.record(max(lag / 1000, 1))
            }
            launch(SendJob(step: arrival.step, dueNanos: due, sentNanos: sent, requestIndex: 0), sender)
        }
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

/// One request handed to a sender: its step, intended and actual send times, and number.
struct SendJob: Sendable {
    var step: Int
    var dueNanos: UInt64
    var sentNanos: UInt64
    var requestIndex: Int
}

/// The senders of a server-streaming run: long-lived tasks, each bound to one connection, that wait idle
/// for the dispatcher's next request. At most `cap` exist; sender k is on connection
/// k mod connections, so the first calls go to connection 0, 1, 2, …
final class WorkerPool: Sendable {
    /// What `acquire` gives the dispatcher.
    enum Sender {
        /// An idle sender, waiting for `assign`.
        case idle(Int)
        /// No sender is idle and the cap allows one more: the dispatcher starts it.
        case new(Int, connection: Int)
    }

    private struct State {
        var idle: [Int] = []
        var started = 0
        /// Each idle sender's wait for its next request.
        var waiting: [UnsafeContinuation<SendJob?, Never>?] = []
        var dispatcher: UnsafeContinuation<Int, Never>?
        var closed = false
    }

    private let state = Mutex(State())
    private let connections: Int
    private let cap: Int

    init(connections: Int, cap: Int) {
        self.connections = connections
        self.cap = cap
    }

    /// An idle sender, or a new one while fewer than the cap exist; else waits for one
    /// to finish its call (only the dispatcher calls this).
    func acquire() async -> Sender {
        let immediate: Sender? = state.withLock { state in
            if let worker = state.idle.popLast() { return .idle(worker) }
            guard state.started < cap else { return nil }
            defer { state.started += 1 }
            state.waiting.append(nil)
            return .new(state.started, connection: state.started % connections)
        }
        if let immediate { return immediate }
        let worker = await withUnsafeContinuation { (continuation: UnsafeContinuation<Int, Never>) in
            let worker: Int? = state.withLock { state in
                if let worker = state.idle.popLast() { return worker }
                state.dispatcher = continuation
                return nil
            }
            if let worker { continuation.resume(returning: worker) }
        }
        return .idle(worker)
    }

    /// Gives an idle sender (from `acquire`) its request.
    func assign(_ job: SendJob, to worker: Int) {
        let waiter = state.withLock { state in
            defer { state.waiting[worker] = nil }
            return state.waiting[worker]
        }
        waiter?.resume(returning: job)
    }

    /// Returns an idle sender unused (from `acquire`).
    func putBack(_ worker: Int) {
        state.withLock { $0.idle.append(worker) }
    }

    /// A sender's call ended: it waits for its next request; nil once the run is closed.
    func finished(_ worker: Int) async -> SendJob? {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<SendJob?, Never>) in
            let (closed, dispatcher) = state.withLock { state -> (Bool, UnsafeContinuation<Int, Never>?) in
                if state.closed { return (true, nil) }
                state.waiting[worker] = continuation
                if let dispatcher = state.dispatcher {
                    state.dispatcher = nil
                    return (false, dispatcher)
                }
                state.idle.append(worker)
                return (false, nil)
            }
            if closed { continuation.resume(returning: nil) }
            dispatcher?.resume(returning: worker)
        }
    }

    /// The schedule is done: idle senders end, busy ones end after their call.
    func close() {
        let waiting = state.withLock { state -> [UnsafeContinuation<SendJob?, Never>] in
            state.closed = true
            state.idle.removeAll()
            defer { state.waiting = Array(repeating: nil, count: state.waiting.count) }
            return state.waiting.compactMap { $0 }
        }
        for waiter in waiting { waiter.resume(returning: nil) }
    }
}
