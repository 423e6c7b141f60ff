import Glibc
import STBAuth
import STBBench
import STBMessages
import STBRPC
import Synchronization

// Client-side measurements of catalogd for scripts/bench-catalog.
//
//   stb-catalog-bench --addr HOST:PORT --seed SEED.json [--variant VARIANT.json]
//                     [--seconds N] [--callers C] [--watch-updates U]
//
// Against a server on an EMPTY database it runs, in order:
//   1. ImportSeed of SEED (first import, timed), then the same document again (timed; it
//      must report applied=false and the same revision); with --variant, an import of
//      VARIANT (timed, for reference: ~13% of the options change).
//   2. GetConfig (all modules): one decoded call (size, option count), warm-up, then C
//      concurrent callers (one Task each) for N seconds, twice: all callers sharing one
//      RPCClient connection, and one RPCClient connection per caller. The load loops do not
//      decode the ~MB reply (they only count its bytes) so the figure is the server's.
//   3. grpc.health.v1.Health/Check the same two ways, same C and N, same server.
//   3b. Deltas: one UpdateOption (a description), then GetConfig with known_revision the
//      revision before it and accept_delta (the reply a box one revision behind gets): one
//      decoded call (it must be a delta naming that option; its size), then the same load
//      runs as for GetConfig, and both again through `PreparedUnary` (modes shared-prepared
//      and per-caller-prepared: headers encoded once, the reply kept as bytes), with
//      Health/Check beside them the same way (health_prepared).
//   4. Watch latency: a Watch subscriber, then U sequential UpdateOption calls (description
//      changes on one option); for each, the time from sending UpdateOption to receiving the
//      Watch event carrying that description.
// Prints greppable lines:
//   catalog import_first ms=... applied=... revision=... created=... updated=... unchanged=...
//   catalog import_again ms=... applied=... revision=... same_revision=true|false ...
//   catalog getconfig mode=shared|per-caller callers=C rps=... p50_us=... p99_us=... bytes=...
//   catalog getconfig_unchanged mode=... (known_revision current: the `unchanged` reply, for reference)
//   catalog health mode=shared|per-caller callers=C rps=... p50_us=... p99_us=...
//   catalog getconfig_delta_decoded bytes=... options=... base=... revision=...
//   catalog getconfig_delta mode=shared|per-caller|shared-prepared|per-caller-prepared callers=C rps=... bytes=...
//   catalog health_prepared mode=shared-prepared|per-caller-prepared callers=C rps=... p50_us=... p99_us=...
//   catalog watch updates=U p50_us=... p99_us=... max_us=... update_p50_us=... update_p99_us=...
// Exit status 1 when a step fails to run (a missed target is not a failure).

let usage = """
    usage: stb-catalog-bench --addr HOST:PORT --seed SEED.json [--variant VARIANT.json]
                             [--seconds N] [--callers C] [--watch-updates U]
    """

func readFile(_ path: String) -> String {
    guard let file = fopen(path, "rb") else { fail("cannot open \(path)") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = fread(&chunk, 1, chunk.count, file)
        if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
        if n < chunk.count { break }
    }
    return String(decoding: bytes, as: UTF8.self)
}

// MARK: - arguments

let values = BenchOptions(
    CommandLine.arguments.dropFirst(),
    allowed: ["addr", "seed", "variant", "seconds", "callers", "watch-updates"], usage: usage)
guard let addr = values["addr"], let colon = addr.lastIndex(of: ":"), let port = Int(addr[addr.index(after: colon)...]) else {
    fail("--addr HOST:PORT is required\n\(usage)")
}
let host = String(addr[..<colon])
guard let seedPath = values["seed"] else { fail("--seed is required\n\(usage)") }
let variantPath = values["variant"]
let seconds = values.positiveInt("seconds", 10)
let callers = values.positiveInt("callers", 16)
let watchUpdates = values.positiveInt("watch-updates", 200)

func makeClient() -> RPCClient {
    var configuration = RPCClient.Configuration()
    configuration.maxReceiveMessageSize = 256 * 1024 * 1024
    // catalogd verifies the benchmark key (scripts/bench-catalog gives it `stb-auth-bench jwks`).
    configuration.credentials = BearerCredentials(token: BenchIdentity.token(role: .engineer))
    do { return try RPCClient(host: host, port: port, configuration: configuration) } catch { fail("client: \(error)") }
}

let client = makeClient()
let timeout: Duration = .seconds(120)

// MARK: - 1. ImportSeed

func importSeed(_ path: String) async -> (ms: Double, response: Stb_Catalog_V1_ImportSeedResponse) {
    var request = Stb_Catalog_V1_ImportSeedRequest()
    request.documentJson = readFile(path)
    request.fileName = path
    let start = now()
    do {
        let response = try await client.unary(Stb_Catalog_V1_Catalog.importSeed, request: request, timeout: timeout)
        return (Double(now() - start) / 1e6, response)
    } catch {
        fail("ImportSeed \(path): \(error)")
    }
}

func planFields(_ response: Stb_Catalog_V1_ImportSeedResponse) -> String {
    let plan = response.plan ?? Stb_Catalog_V1_ImportPlan()
    return "created=\(plan.created.count) updated=\(plan.updated.count) deleted=\(plan.deleted.count) unchanged=\(plan.unchanged)"
}

// Health first, so a server that is not answering fails fast.
do {
    let health = try await client.unary(Grpc_Health_V1_Health.check, request: Grpc_Health_V1_HealthCheckRequest(), timeout: .seconds(10))
    guard health.status == .serving else { fail("health status \(health.status)") }
} catch {
    fail("health check of \(addr): \(error)")
}

let first = await importSeed(seedPath)
report("catalog import_first ms=\(format(first.ms)) applied=\(first.response.applied) revision=\(first.response.revision) \(planFields(first.response))")
let again = await importSeed(seedPath)
let sameRevision = again.response.revision == first.response.revision
report("catalog import_again ms=\(format(again.ms)) applied=\(again.response.applied) revision=\(again.response.revision) same_revision=\(sameRevision) \(planFields(again.response))")
if let variantPath {
    let variant = await importSeed(variantPath)
    report("catalog import_variant ms=\(format(variant.ms)) applied=\(variant.response.applied) revision=\(variant.response.revision) \(planFields(variant.response))")
}

// MARK: - 2./3. load

let getConfigCounted = Stb_Catalog_V1_Catalog.getConfig.counted

// One decoded GetConfig: the reply's size and shape, and an option key for the Watch test.
let watchKey: String
let decodedRevision: UInt64
do {
    let start = now()
    let config = try await client.unary(Stb_Catalog_V1_Catalog.getConfig, request: Stb_Catalog_V1_GetConfigRequest(), timeout: timeout)
    let decodedMs = Double(now() - start) / 1e6
    let options = config.modules.reduce(0) { $0 + $1.groups.reduce(0) { $0 + $1.options.count } }
    let size = config.serializedBytes().count
    guard let key = config.modules.first?.groups.first?.options.first?.key else { fail("GetConfig returned no options") }
    watchKey = key
    decodedRevision = config.revision
    report("catalog getconfig_decoded ms=\(format(decodedMs, 2)) bytes=\(size) modules=\(config.modules.count) options=\(options) revision=\(config.revision)")
} catch {
    fail("GetConfig: \(error)")
}

func run<Client: Sendable>(_ name: String, mode: String, clients: [Client], _ call: @escaping @Sendable (Client) async throws -> Int) async -> Double {
    // Warm-up: connections open, caches filled, one second of load.
    _ = await closedLoad(clients: clients, callers: callers, seconds: 1, call)
    let (result, elapsed) = await closedLoad(clients: clients, callers: callers, seconds: seconds, call)
    let sorted = result.latencies.sorted()
    let rps = Double(result.calls) / elapsed
    var line = "catalog \(name) mode=\(mode) callers=\(callers) connections=\(clients.count) seconds=\(format(elapsed, 2)) calls=\(result.calls) errors=\(result.errors) rps=\(format(rps, 0))"
    line += " p50_us=\(percentile(sorted, 50) / 1000) p90_us=\(percentile(sorted, 90) / 1000) p99_us=\(percentile(sorted, 99) / 1000) max_us=\(percentile(sorted, 100) / 1000)"
    if name.hasPrefix("getconfig") {
        line += " bytes=\(result.bytes) mb_per_s=\(format(rps * Double(result.bytes) / 1e6, 0))"
    }
    report(line)
    if let error = result.firstError { complain("\(name) \(mode): first error: \(error)") }
    return rps
}

let getConfigCall: @Sendable (RPCClient) async throws -> Int = { client in
    try await client.unary(getConfigCounted, request: Stb_Catalog_V1_GetConfigRequest(), timeout: .seconds(30)).count
}
// The poll an up-to-date box makes: known_revision current, the reply is just `unchanged`.
let unchangedRequest = Stb_Catalog_V1_GetConfigRequest(moduleKeys: [], knownRevision: decodedRevision)
let getConfigUnchangedCall: @Sendable (RPCClient) async throws -> Int = { [unchangedRequest] client in
    try await client.unary(getConfigCounted, request: unchangedRequest, timeout: .seconds(30)).count
}
let healthCall: @Sendable (RPCClient) async throws -> Int = { client in
    _ = try await client.unary(Grpc_Health_V1_Health.check, request: Grpc_Health_V1_HealthCheckRequest(), timeout: .seconds(30))
    return 0
}

let perCaller = (0..<callers).map { _ in makeClient() }
var best: [String: Double] = [:]
for (mode, clients) in [("shared", [client]), ("per-caller", perCaller)] {
    let config = await run("getconfig", mode: mode, clients: clients, getConfigCall)
    _ = await run("getconfig_unchanged", mode: mode, clients: clients, getConfigUnchangedCall)
    let health = await run("health", mode: mode, clients: clients, healthCall)
    report("catalog ratio mode=\(mode) getconfig_over_health=\(format(config / max(health, 1), 3))")
    best["getconfig", default: 0] = max(best["getconfig", default: 0], config)
    best["health", default: 0] = max(best["health", default: 0], health)
}

// MARK: - 3b. deltas

// One option changes (one revision); a box still at the revision before asks for the delta.
do {
    var request = Stb_Catalog_V1_UpdateOptionRequest()
    request.ref = Stb_Catalog_V1_OptionRef(ref: .key(watchKey))
    request.description_p = "bench-delta-\(now())"
    _ = try await client.unary(Stb_Catalog_V1_Catalog.updateOption, request: request, timeout: .seconds(30))
} catch {
    fail("UpdateOption \(watchKey): \(error)")
}
let deltaRevision = decodedRevision + 1
var deltaRequest = Stb_Catalog_V1_GetConfigRequest(moduleKeys: [], knownRevision: decodedRevision)
deltaRequest.acceptDelta = true
do {
    let reply = try await client.unary(Stb_Catalog_V1_Catalog.getConfig, request: deltaRequest, timeout: timeout)
    let options = reply.changes?.options.map(\.key) ?? []
    guard reply.delta, reply.revision == deltaRevision, options == [watchKey] else {
        fail("GetConfig from revision \(decodedRevision) after one update: delta=\(reply.delta) revision=\(reply.revision) options=\(options)")
    }
    report("catalog getconfig_delta_decoded bytes=\(reply.serializedBytes().count) options=\(options.count) base=\(decodedRevision) revision=\(reply.revision)")
} catch {
    fail("GetConfig delta: \(error)")
}
let getConfigDeltaCall: @Sendable (RPCClient) async throws -> Int = { [deltaRequest] client in
    try await client.unary(getConfigCounted, request: deltaRequest, timeout: .seconds(30)).count
}
for (mode, clients) in [("shared", [client]), ("per-caller", perCaller)] {
    _ = await run("getconfig_delta", mode: mode, clients: clients, getConfigDeltaCall)
}
// The same calls through `PreparedUnary`, the client API of `stb-load`: the headers (token
// included) encoded once, one object and one continuation per call, the reply kept as
// bytes. The server's work is the same; the client's share of the two cores is smaller.
do {
    let framedDelta = FramedMessage(deltaRequest.serializedBytes())
    let framedHealth = FramedMessage(Grpc_Health_V1_HealthCheckRequest().serializedBytes())
    for (mode, clients) in [("shared-prepared", [client]), ("per-caller-prepared", perCaller)] {
        var deltas: [PreparedUnary] = []
        var checks: [PreparedUnary] = []
        for each in clients {
            deltas.append(try await each.prepareUnary(path: Stb_Catalog_V1_Catalog.getConfig.path, timeout: .seconds(30)))
            checks.append(try await each.prepareUnary(path: Grpc_Health_V1_Health.check.path, timeout: .seconds(30)))
        }
        _ = await run("getconfig_delta", mode: mode, clients: deltas) { try await $0.call(framedDelta).count }
        _ = await run("health_prepared", mode: mode, clients: checks) { _ = try await $0.call(framedHealth); return 0 }
    }
} catch {
    fail("prepared calls: \(error)")
}
for extra in perCaller { await extra.close() }

// MARK: - 4. Watch latency

/// Arrival times of Watch events, by update index (parsed from the description).
final class Arrivals: Sendable {
    private let times = Mutex<[Int: UInt64]>([:])
    func record(_ index: Int, at time: UInt64) { times.withLock { $0[index] = time } }
    func time(of index: Int) -> UInt64? { times.withLock { $0[index] } }
}

/// Follows Watch from now on, noting when each benchmark update of `key` arrives.
func watchLoop(client: RPCClient, key: String, arrivals: Arrivals) async {
    do {
        try await client.serverStreaming(Stb_Catalog_V1_Catalog.watch, request: Stb_Catalog_V1_WatchRequest()) { events in
            for try await event in events {
                let at = now()
                guard event.key == key, case .option(let option)? = event.state?.entity,
                    option.description_p.hasPrefix("bench-watch-"), let index = Int(option.description_p.dropFirst(12))
                else { continue }
                arrivals.record(index, at: at)
            }
        }
    } catch is CancellationError {
    } catch {
        if !Task.isCancelled { complain("watch stream ended: \(error)") }
    }
}

let arrivals = Arrivals()
let watchClient = makeClient()
let watcher = Task.detached { [watchKey] in
    await watchLoop(client: watchClient, key: watchKey, arrivals: arrivals)
}

let stamp = now()
/// Sends update `index`; returns (send time, UpdateOption round trip).
func update(_ index: Int) async -> (sent: UInt64, rpc: UInt64) {
    var request = Stb_Catalog_V1_UpdateOptionRequest()
    request.ref = Stb_Catalog_V1_OptionRef(ref: .key(watchKey))
    request.description_p = "bench-watch-\(index)"
    let sent = now()
    do {
        _ = try await client.unary(Stb_Catalog_V1_Catalog.updateOption, request: request, timeout: .seconds(30))
    } catch {
        fail("UpdateOption \(watchKey): \(error)")
    }
    return (sent, now() - sent)
}
/// Waits for event `index` (5 s at most). The arrival time is taken by the watcher when the
/// event is decoded, so this polling interval does not enter the measurement.
func awaitEvent(_ index: Int) async -> Bool {
    let deadline = now() + 5_000_000_000
    while now() < deadline {
        if arrivals.time(of: index) != nil { return true }
        try? await Task.sleep(for: .microseconds(200))
    }
    return false
}

// Subscribed once a first (unmeasured) update comes through; retry while the stream opens.
let base = Int(stamp % 1_000_000) * 10_000
var subscribed = false
for attempt in 0..<10 where !subscribed {
    try? await Task.sleep(for: .milliseconds(100))
    _ = await update(base + attempt)
    subscribed = await awaitEvent(base + attempt)
}
guard subscribed else { fail("no Watch event arrived for updates of \(watchKey)") }

var watchLatencies: [UInt64] = []
var rpcLatencies: [UInt64] = []
var missed = 0
for i in 0..<watchUpdates {
    let index = base + 1000 + i
    let (sent, rpc) = await update(index)
    rpcLatencies.append(rpc)
    if await awaitEvent(index), let at = arrivals.time(of: index) {
        watchLatencies.append(at - sent)
    } else {
        missed += 1
    }
}
watcher.cancel()
await watchClient.close()
let ws = watchLatencies.sorted()
let rs = rpcLatencies.sorted()
report("catalog watch updates=\(watchUpdates) received=\(ws.count) missed=\(missed) p50_us=\(percentile(ws, 50) / 1000) p90_us=\(percentile(ws, 90) / 1000) p99_us=\(percentile(ws, 99) / 1000) max_us=\(percentile(ws, 100) / 1000) update_p50_us=\(percentile(rs, 50) / 1000) update_p99_us=\(percentile(rs, 99) / 1000)")
report("catalog best getconfig_rps=\(format(best["getconfig"] ?? 0, 0)) health_rps=\(format(best["health"] ?? 0, 0)) ratio=\(format((best["getconfig"] ?? 0) / max(best["health"] ?? 1, 1), 3))")
await client.close()
exit(missed == 0 ? 0 : 1)
