import Glibc
import STBBench
import STBMessages
import STBRPC
import Synchronization

// Subscribe figures for scripts/bench-gateway (issue 14's targets):
//
//   stb-gateway-bench realtime MODE --gateway HOST:PORT --catalog HOST:PORT --username U
//       --password-file F [--subscribers N] [--connections N] [--rate N] [--seconds N]
//       [--commits N] [--gap N] [--rounds N] [--gateway-pid PID]
//
// Subscribers follow the `catalog` topic (a snapshot, then deltas; each event read for its
// kind, key and token only, `EventDigest`); a writer creates catalog modules and notes
// when each commit was acknowledged. Times are taken on one monotonic clock in this
// process. Modes, each printing one `realtime MODE …` line:
//   latency  `subscribers` streams, commits at `rate`/s for `seconds`: acknowledged
//            commit → receipt p50/p99 over every delivery; also per commit its first
//            receipt (the path up to the gateway's fan-out) and its last (the whole
//            fan-out), p50/p99 over commits
//   fanout   `subscribers` streams, `commits` commits 500 ms apart: per commit the last
//            delivery after the acknowledgement (p50/p99 over commits), deliveries/s
//   idle     `subscribers` streams, each on its own connection: the gateway's VmRSS
//            (/proc/PID/status) before and after, bytes per subscriber
//   resume   one stream, commits at `rate`/s throughout; `rounds` times: disconnect for
//            `gap` seconds, resume with the last token, time until the newest commit
//            acknowledged before the resume arrives (and every missed one, in order)

struct RealtimeOptions {
    var mode = ""
    var gateway = (host: "127.0.0.1", port: 50050)
    var catalog = (host: "127.0.0.1", port: 50051)
    var username = ""
    var password = ""
    var subscribers = 1000
    var connections = 0
    var rate = 100
    var seconds = 10
    var commits = 20
    var gap = 10
    var rounds = 3
    var gatewayPID = 0
}

func runRealtime(_ given: ArraySlice<String>) async {
    let usage = "usage: stb-gateway-bench realtime latency|fanout|idle|resume --gateway HOST:PORT --catalog HOST:PORT --username U --password-file F [--subscribers N] [--connections N] [--rate N] [--seconds N] [--commits N] [--gap N] [--rounds N] [--gateway-pid PID]"
    guard let mode = given.first, ["latency", "fanout", "idle", "resume"].contains(mode) else { fail(usage) }
    let parsed = BenchOptions(given.dropFirst(), allowed: [
        "gateway", "catalog", "username", "password-file", "subscribers", "connections", "rate", "seconds", "commits", "gap",
        "rounds", "gateway-pid",
    ], usage: usage, scope: mode)
    var options = RealtimeOptions()
    options.mode = mode
    options.gateway = address(parsed["gateway"] ?? "127.0.0.1:50050")
    options.catalog = address(parsed["catalog"] ?? "127.0.0.1:50051")
    options.username = parsed["username"] ?? ""
    options.password = readPassword(parsed["password-file"] ?? "")
    options.subscribers = parsed.positiveInt("subscribers", 1000)
    options.connections = parsed.positiveInt("connections", options.subscribers)
    options.rate = parsed.positiveInt("rate", 100)
    options.seconds = parsed.positiveInt("seconds", 10)
    options.commits = parsed.positiveInt("commits", 20)
    options.gap = parsed.positiveInt("gap", 10)
    options.rounds = parsed.positiveInt("rounds", 3)
    options.gatewayPID = parsed.positiveInt("gateway-pid", 0)
    guard !options.username.isEmpty else { fail("--username is required") }

    let bench: RealtimeBench
    do { bench = try await RealtimeBench(options) } catch { fail("cannot start: \(error)") }
    switch mode {
    case "latency": await bench.latency()
    case "fanout": await bench.fanout()
    case "idle": await bench.idle()
    default: await bench.resume()
    }
    await bench.close()
}

private func address(_ text: String) -> (host: String, port: Int) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
        fail("an address must be host:port, not \(text)")
    }
    return (String(text[..<colon]), port)
}

/// Receipts of one subscriber: (module key, monotonic ns), and whether its snapshot came.
final class SubscriberLog: Sendable {
    private let state = Mutex<(receipts: [(String, UInt64)], ready: Bool, token: String, failure: String?)>(([], false, "", nil))

    func snapshot(token: String) { state.withLock { $0.ready = true; $0.token = token } }
    func delta(_ key: String, at time: UInt64, token: String) { state.withLock { $0.receipts.append((key, time)); $0.token = token } }
    func failed(_ text: String) { state.withLock { if $0.failure == nil { $0.failure = text } } }
    var ready: Bool { state.withLock { $0.ready } }
    var token: String { state.withLock { $0.token } }
    var failure: String? { state.withLock { $0.failure } }
    var receipts: [(String, UInt64)] { state.withLock { $0.receipts } }
    func clear() { state.withLock { $0.receipts.removeAll() } }
}

/// Acknowledged commits: module key → monotonic ns of the acknowledgement, in order.
final class CommitLog: Sendable {
    private let state = Mutex<(order: [String], acknowledged: [String: UInt64], errors: Int)>(([], [:], 0))

    func acknowledged(_ key: String, at time: UInt64) { state.withLock { $0.order.append(key); $0.acknowledged[key] = time } }
    func error() { state.withLock { $0.errors += 1 } }
    var order: [String] { state.withLock { $0.order } }
    var acknowledged: [String: UInt64] { state.withLock { $0.acknowledged } }
    var errors: Int { state.withLock { $0.errors } }
}

/// Tells a writer to stop.
final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
}

struct RealtimeBench: Sendable {
    let options: RealtimeOptions
    let group: EventLoopGroup
    let gateway: RPCClient
    let catalog: RPCClient
    let metadata: Metadata
    let run: String

    init(_ options: RealtimeOptions) async throws {
        self.options = options
        group = try EventLoopGroup(count: 1, name: "bench-client")
        gateway = try RPCClient(host: options.gateway.host, port: options.gateway.port, group: group)
        catalog = try RPCClient(host: options.catalog.host, port: options.catalog.port, group: group)
        var login = Stb_Gateway_V1_LoginRequest()
        login.username = options.username
        login.password = options.password
        // A gateway still ending the streams of the mode before may refuse a while.
        var reply: Stb_Gateway_V1_LoginResponse?
        let deadline = now() + 60_000_000_000
        while reply == nil {
            do {
                reply = try await gateway.unary(Stb_Gateway_V1_Auth.login, request: login, timeout: .seconds(60))
            } catch {
                if now() > deadline { throw error }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        metadata = Metadata.bearer(reply?.accessToken ?? "")
        // Module keys unique to this run.
        run = String(now() % 1_000_000_000, radix: 36)
    }

    func close() async {
        await gateway.close()
        await catalog.close()
        group.shutdown()
    }

    // MARK: - Parts

    /// Creates one module; its key when acknowledged.
    func commit(_ index: Int, into log: CommitLog) async {
        var module = Stb_Catalog_V1_Module()
        module.key = "rt\(run)x\(index)"
        module.name = module.key
        var request = Stb_Catalog_V1_CreateModuleRequest()
        request.module = module
        do {
            _ = try await catalog.unary(Stb_Catalog_V1_Catalog.createModule, request: request, metadata: metadata, timeout: .seconds(30))
            log.acknowledged(module.key, at: now())
        } catch {
            log.error()
        }
    }

    /// Commits at `rate` per second until `stop` (or `count` commits), one at a time.
    func write(rate: Int, count: Int? = nil, start: Int = 0, log: CommitLog, stop: StopFlag) async {
        let began = now()
        var index = 0
        while !stop.value.load(ordering: .relaxed), count.map({ index < $0 }) ?? true {
            let due = began + UInt64(index) * 1_000_000_000 / UInt64(rate)
            let current = now()
            if due > current { try? await Task.sleep(for: .nanoseconds(Int64(due - current))) }
            await commit(start + index, into: log)
            index += 1
        }
    }

    /// One `catalog` stream (resuming from `resume` when given) into `log` until cancelled.
    func subscribe(_ client: RPCClient, log: SubscriberLog, resume: String = "") async {
        var request = Stb_Gateway_V1_SubscribeRequest()
        request.topics = ["catalog"]
        request.resumeToken = resume
        do {
            try await client.serverStreaming(EventDigest.subscribe, request: request, metadata: metadata) { stream in
                for try await message in stream {
                    guard let event = EventDigest(message.bytes) else {
                        log.failed("a message that is not a SubscribeEvent")
                        continue
                    }
                    switch event.kind {
                    case .snapshot: log.snapshot(token: event.token)
                    case .delta(let key): log.delta(key, at: now(), token: event.token)
                    case .resync(let reason): log.failed("resync: \(reason)")
                    case .other: break
                    }
                }
            }
        } catch {
            if !Task.isCancelled { log.failed("\(error)") }
        }
    }

    /// Clients for `count` subscribers: `connections` of them, shared round robin.
    func clients(_ count: Int, connections: Int) throws -> [RPCClient] {
        try (0..<min(count, connections)).map { _ in
            try RPCClient(host: options.gateway.host, port: options.gateway.port, group: group)
        }
    }

    /// Runs `count` subscribers in `body`'s time: opened 100 at a time, `body` runs once
    /// every snapshot has arrived (or after 300 s); then the streams are cancelled.
    func withSubscribers(_ count: Int, connections: Int, _ body: @Sendable ([SubscriberLog]) async -> Void) async {
        let logs = (0..<count).map { _ in SubscriberLog() }
        let pool: [RPCClient]
        do { pool = try clients(count, connections: connections) } catch { fail("cannot make clients: \(error)") }
        let opened = now()
        await withTaskGroup(of: Void.self) { group in
            for (index, log) in logs.enumerated() {
                if index >= 100 {
                    // Opened in waves: at most 100 waiting for their snapshot.
                    while logs[index - 100].ready == false && logs[index - 100].failure == nil && now() - opened < 300_000_000_000 {
                        try? await Task.sleep(for: .milliseconds(2))
                    }
                }
                let client = pool[index % pool.count]
                group.addTask { await subscribe(client, log: log) }
            }
            while logs.contains(where: { !$0.ready && $0.failure == nil }) && now() - opened < 300_000_000_000 {
                try? await Task.sleep(for: .milliseconds(20))
            }
            let ready = logs.filter(\.ready).count
            complain("\(ready) of \(count) subscribers have their snapshot after \(format(Double(now() - opened) / 1e9, 1)) s")
            if let failure = logs.lazy.compactMap(\.failure).first { complain("a subscriber failed: \(failure)") }
            await body(logs)
            group.cancelAll()
        }
        for client in pool { await client.close() }
    }

    /// Waits until every subscriber has `expected` receipts, or nothing arrived for 10 s
    /// (at most 60 s): what is still missing then counts as missing.
    func drain(_ logs: [SubscriberLog], expected: Int) async {
        var last = -1
        var quietSince = now()
        let deadline = now() + 60_000_000_000
        while now() < deadline {
            let total = logs.reduce(0) { $0 + $1.receipts.count }
            if total >= expected * logs.count { return }
            if total != last { last = total; quietSince = now() }
            if now() - quietSince > 10_000_000_000 { return }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    // MARK: - Modes

    func latency() async {
        let commits = CommitLog()
        let count = options.subscribers, rate = options.rate, seconds = options.seconds
        await withSubscribers(count, connections: options.connections) { logs in
            for log in logs { log.clear() }
            let stop = StopFlag()
            let cpu = CPUMeter(gatewayPID: options.gatewayPID)
            await write(rate: rate, count: rate * seconds, log: commits, stop: stop)
            await drain(logs, expected: commits.acknowledged.count)
            let busy = cpu.reading()
            let acknowledged = commits.acknowledged
            var latencies: [UInt64] = []
            var missing = 0
            var first: [String: UInt64] = [:], last: [String: UInt64] = [:]
            for log in logs {
                let receipts = log.receipts
                for (key, time) in receipts {
                    guard let at = acknowledged[key] else { continue }
                    let latency = time > at ? time - at : 0
                    latencies.append(latency)
                    first[key] = min(first[key] ?? latency, latency)
                    last[key] = max(last[key] ?? latency, latency)
                }
                missing += acknowledged.count - Set(receipts.map(\.0)).count
            }
            latencies.sort()
            let firsts = first.values.sorted(), lasts = last.values.sorted()
            let failures = logs.compactMap(\.failure)
            if let first = failures.first { complain("\(failures.count) streams failed; the first: \(first)") }
            report("realtime latency failed_streams=\(failures.count) subscribers=\(count) connections=\(min(count, options.connections)) commits=\(acknowledged.count) commit_errors=\(commits.errors) commits_per_s=\(format(Double(acknowledged.count) / Double(seconds), 1)) deliveries=\(latencies.count) missing=\(missing) p50_ms=\(ms(percentile(latencies, 50))) p99_ms=\(ms(percentile(latencies, 99))) max_ms=\(ms(latencies.last ?? 0)) first_p50_ms=\(ms(percentile(firsts, 50))) first_p99_ms=\(ms(percentile(firsts, 99))) last_p50_ms=\(ms(percentile(lasts, 50))) last_p99_ms=\(ms(percentile(lasts, 99))) \(busy)")
        }
    }

    func fanout() async {
        let commits = CommitLog()
        let count = options.subscribers, rounds = options.commits
        await withSubscribers(count, connections: options.connections) { logs in
            for log in logs { log.clear() }
            let stop = StopFlag()
            let cpu = CPUMeter(gatewayPID: options.gatewayPID)
            for index in 0..<rounds {
                await write(rate: 1, count: 1, start: index, log: commits, stop: stop)
                try? await Task.sleep(for: .milliseconds(500))
            }
            await drain(logs, expected: commits.acknowledged.count)
            let cpuUse = cpu.reading()
            let acknowledged = commits.acknowledged
            var last: [String: UInt64] = [:]
            var delivered: [String: Int] = [:]
            for log in logs {
                for (key, time) in log.receipts {
                    last[key] = max(last[key] ?? 0, time)
                    delivered[key, default: 0] += 1
                }
            }
            var spans: [UInt64] = []
            var total = 0
            for (key, at) in acknowledged {
                guard let end = last[key] else { continue }
                spans.append(end > at ? end - at : 0)
                total += delivered[key] ?? 0
            }
            spans.sort()
            let busy = Double(spans.reduce(0, +)) / 1e9
            let complete = acknowledged.keys.filter { delivered[$0] == count }.count
            let failures = logs.compactMap(\.failure)
            if let first = failures.first { complain("\(failures.count) streams failed; the first: \(first)") }
            report("realtime fanout failed_streams=\(failures.count) subscribers=\(count) connections=\(min(count, options.connections)) commits=\(acknowledged.count) complete=\(complete) deliveries=\(total) last_p50_ms=\(ms(percentile(spans, 50))) last_p99_ms=\(ms(percentile(spans, 99))) deliveries_per_s=\(format(busy > 0 ? Double(total) / busy : 0, 0)) \(cpuUse)")
        }
    }

    func idle() async {
        let before = residentBytes()
        let count = options.subscribers
        await withSubscribers(count, connections: options.connections) { logs in
            try? await Task.sleep(for: .seconds(3))
            let after = residentBytes()
            let ready = logs.filter(\.ready).count
            let perSubscriber = ready > 0 && after > before ? (after - before) / ready : 0
            report("realtime idle subscribers=\(count) connections=\(min(count, options.connections)) streaming=\(ready) rss_before_mib=\(format(Double(before) / 1048576, 1)) rss_mib=\(format(Double(after) / 1048576, 1)) bytes_per_subscriber=\(perSubscriber)")
        }
    }

    func resume() async {
        let commits = CommitLog()
        let stop = StopFlag()
        let rate = options.rate, gap = options.gap, rounds = options.rounds
        let client: RPCClient
        do { client = try RPCClient(host: options.gateway.host, port: options.gateway.port, group: group) } catch { fail("\(error)") }
        let log = SubscriberLog()
        var times: [UInt64] = []
        var replayed: [Int] = []
        var faults: [String] = []
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await write(rate: rate, log: commits, stop: stop) }
            var token = ""
            for round in 0...rounds {
                // Round 0 takes the snapshot; each later one resumes after the gap.
                let before = log.receipts.last?.0
                let resumedAt = now()
                let target = commits.order.last
                let from = token
                let stream = Task { await subscribe(client, log: log, resume: from) }
                let deadline = resumedAt + 30_000_000_000
                if round == 0 {
                    while !log.ready && log.failure == nil && now() < deadline { try? await Task.sleep(for: .milliseconds(1)) }
                } else if let target {
                    while !log.receipts.contains(where: { $0.0 == target }) && log.failure == nil && now() < deadline {
                        try? await Task.sleep(for: .milliseconds(1))
                    }
                    let receipts = log.receipts
                    if let arrived = receipts.first(where: { $0.0 == target }) {
                        times.append(arrived.1 - resumedAt)
                    } else {
                        faults.append("round \(round): the newest commit never arrived")
                    }
                    // Every commit between the last one received before and the target, once, in order.
                    let order = commits.order
                    let from = before.flatMap { order.firstIndex(of: $0) }.map { $0 + 1 } ?? 0
                    if let to = order.firstIndex(of: target) {
                        let expected = Array(order[from...to])
                        let start = before.flatMap { key in receipts.firstIndex { $0.0 == key } }.map { $0 + 1 } ?? 0
                        let got = Array(receipts[start...].prefix(expected.count).map(\.0))
                        if got != expected { faults.append("round \(round): \(got.count) received, \(expected.count) missed; not the same") }
                        replayed.append(expected.count)
                    }
                }
                if let failure = log.failure { faults.append("round \(round): \(failure)"); break }
                try? await Task.sleep(for: .milliseconds(500))
                stream.cancel()
                await stream.value
                token = log.token
                if round < rounds { try? await Task.sleep(for: .seconds(gap)) }
            }
            stop.value.store(true, ordering: .relaxed)
        }
        await client.close()
        times.sort()
        report("realtime resume rounds=\(times.count) gap_s=\(gap) commits_per_s=\(rate) missed_per_round=\(replayed.map(String.init).joined(separator: ",")) faults=\(faults.count) replayed_p50_ms=\(ms(percentile(times, 50))) replayed_max_ms=\(ms(times.last ?? 0))")
        for fault in faults { complain(fault) }
    }

    /// The gateway's resident set (VmRSS), in bytes; 0 without --gateway-pid.
    func residentBytes() -> Int {
        guard options.gatewayPID > 0, let file = fopen("/proc/\(options.gatewayPID)/status", "r") else { return 0 }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 512)
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            let line = String(cString: buffer)
            if line.hasPrefix("VmRSS:") {
                let digits = line.filter { $0 >= "0" && $0 <= "9" }
                return (Int(digits) ?? 0) * 1024
            }
        }
        return 0
    }
}

/// CPU time of the gateway (/proc/PID/stat) and of this process over a mode's run, as
/// `gateway_cpu_pct=… load_cpu_pct=…` (100: one core busy throughout): which side was
/// saturated.
struct CPUMeter {
    let gatewayPID: Int
    let began: UInt64
    let gatewayStart: Double
    let loadStart: Double

    init(gatewayPID: Int) {
        self.gatewayPID = gatewayPID
        began = now()
        gatewayStart = Self.seconds(of: gatewayPID)
        loadStart = Self.ownSeconds()
    }

    func reading() -> String {
        let wall = Double(now() - began) / 1e9
        guard wall > 0 else { return "" }
        let gateway = (Self.seconds(of: gatewayPID) - gatewayStart) / wall * 100
        let load = (Self.ownSeconds() - loadStart) / wall * 100
        return "gateway_cpu_pct=\(format(gateway, 0)) load_cpu_pct=\(format(load, 0))"
    }

    /// User and system CPU seconds of `pid` (0 without one).
    static func seconds(of pid: Int) -> Double {
        guard pid > 0, let file = fopen("/proc/\(pid)/stat", "r") else { return 0 }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 1024)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return 0 }
        let line = String(cString: buffer)
        // Fields after the command (which may hold spaces) in parentheses; utime and
        // stime are fields 14 and 15, the 12th and 13th after it.
        guard let close = line.lastIndex(of: ")") else { return 0 }
        let fields = line[line.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func ownSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}

private func ms(_ nanoseconds: UInt64) -> String { format(Double(nanoseconds) / 1e6, 1) }
