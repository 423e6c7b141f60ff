import Glibc
import Logging
import STBAuth
import STBBench
import STBCatalog
import STBMessages
import STBPostgres
import STBRPC
import STBService

// What authentication costs a cheap call, for scripts/bench-auth (issue 12, target 1).
//
//   stb-auth-bench --database CONNINFO --migrations DIR [--seconds N] [--callers C]
//                  [--connections K] [--rounds R]
//   stb-auth-bench jwks        (prints the benchmark's JWKS, for a server under test)
//   stb-auth-bench token       (prints an engineer's bearer token signed with that key, for
//                               another client such as h2load against the same server)
//
// On a fresh schema in CONNINFO it assembles the real CatalogService twice on one worker
// loop: once with the interceptors every service runs (metrics, statuses,
// authentication), once with the same chain minus authentication (the executables have
// no such switch; only this program builds that server). A small catalog is imported,
// then each server in turn (R rounds, alternating) gets C callers on K connections for N
// seconds of GetConfig with the current known_revision (the poll an up-to-date box makes:
// the reply is just `unchanged`), every call carrying the same viewer token. Rounds are
// short and alternate, so that a machine shared with other work slows both alike; the
// ratio is of the calls each server completed over all rounds. The worker thread's CPU
// time per call is printed beside it: what each call costs the server, whatever else
// runs on the machine.
// Prints greppable lines:
//   auth getconfig_unchanged variant=auth|noauth round=R rps=... p50_us=... p99_us=... errors=...
//   auth total auth_rps=... noauth_rps=... ratio=... (best rounds: ...) target=0.90 PASS|MISS
//   auth cpu auth_us_per_call=... noauth_us_per_call=... ratio=... (the server worker's CPU time)
// Exit status 1 when a step fails to run (a missed target is not a failure).

let usage = """
    usage: stb-auth-bench --database CONNINFO --migrations DIR [--seconds N] [--callers C] [--connections K] [--rounds R]
           stb-auth-bench jwks
           stb-auth-bench token
    """

if CommandLine.arguments.dropFirst().first == "jwks" {
    report(BenchIdentity.keys.jwksJSON)
    exit(0)
}
if CommandLine.arguments.dropFirst().first == "token" {
    report(BenchIdentity.token(role: .engineer))
    exit(0)
}

let values = BenchOptions(
    CommandLine.arguments.dropFirst(),
    allowed: ["database", "migrations", "seconds", "callers", "connections", "rounds"], usage: usage)
guard let base = values["database"] else { fail("--database is required\n\(usage)") }
guard let migrations = values["migrations"] else { fail("--migrations is required\n\(usage)") }
let seconds = values.positiveInt("seconds", 1)
let callers = values.positiveInt("callers", 16)
let connections = values.positiveInt("connections", 4)
let rounds = values.positiveInt("rounds", 20)
let target = 0.90

// MARK: - the catalog on a fresh schema

let logger = Logger(label: "stb-auth-bench")
let group: EventLoopGroup
do { group = try EventLoopGroup(count: 1, name: "auth-bench") } catch { fail("worker loop: \(error)") }
let schema = "auth_bench_\(getpid())_\(now() % 1_000_000)"
let admin = PostgresPool(configuration: PostgresConfiguration(conninfo: base, poolSize: 1), group: group)
do { _ = try await admin.query("CREATE SCHEMA \(unescaped: schema)") } catch { fail("CREATE SCHEMA: \(error)") }
let conninfo = base + (base.contains("?") ? "&" : "?") + "options=-csearch_path%3D\(schema)"
let pool = PostgresPool(configuration: PostgresConfiguration(conninfo: conninfo, poolSize: 2), group: group)
let listener = PostgresListener(conninfo: conninfo, channels: [CatalogService.channel], loop: group.loops[0])

func dropSchema() async {
    await listener.stop()
    await pool.close()
    do { _ = try await admin.query("DROP SCHEMA IF EXISTS \(unescaped: schema) CASCADE") } catch { complain("DROP SCHEMA \(schema): \(error)") }
    await admin.close()
}

var servers: [(variant: String, server: RPCServer, port: Int)] = []
do {
    _ = try await Migrator(directory: migrations).migrate(pool)
    listener.start()
    let service = CatalogService(pool: pool, signal: listener.signal, logger: logger)
    var configuration = RPCServer.Configuration()
    configuration.port = 0
    configuration.workers = 1
    let authenticated = ServiceDaemon.interceptors(
        for: "catalog", logger: logger, authenticator: Authenticator(keys: CurrentKeys(BenchIdentity.keys)))
    // The same chain without its authentication interceptor (the last one).
    let unauthenticated = Array(authenticated.dropLast())
    guard authenticated.last is AuthenticationInterceptor else { fail("the service chain no longer ends with authentication") }
    for (variant, interceptors) in [("auth", authenticated), ("noauth", unauthenticated)] {
        let server = try RPCServer(configuration: configuration, services: [service], interceptors: interceptors, group: group, logger: logger)
        servers.append((variant, server, try await server.start()))
    }
} catch {
    await dropSchema()
    fail("setup: \(error)")
}

func clients(port: Int, role: Role) -> [RPCClient] {
    var configuration = RPCClient.Configuration()
    configuration.credentials = BearerCredentials(token: BenchIdentity.token(role: role))
    do {
        return try (0..<connections).map { _ in try RPCClient(host: "127.0.0.1", port: port, configuration: configuration) }
    } catch {
        fail("client: \(error)")
    }
}

// A small catalog, imported as an engineer through the authenticated server.
let seed = #"{"modules": [{"key": "video", "name": "Video", "groups": [{"key": "output", "name": "Output", "options": [{"key": "hdr", "name": "HDR", "type": "boolean", "default": true}]}]}]}"#
let revision: UInt64
do {
    let engineer = clients(port: servers[0].port, role: .engineer)[0]
    var request = Stb_Catalog_V1_ImportSeedRequest()
    request.documentJson = seed
    request.fileName = "bench.json"
    _ = try await engineer.unary(Stb_Catalog_V1_Catalog.importSeed, request: request, timeout: .seconds(30))
    revision = try await engineer.unary(Stb_Catalog_V1_Catalog.getConfig, request: Stb_Catalog_V1_GetConfigRequest(), timeout: .seconds(30)).revision
    await engineer.close()
} catch {
    await dropSchema()
    fail("import: \(error)")
}

// MARK: - load

let request = Stb_Catalog_V1_GetConfigRequest(moduleKeys: [], knownRevision: revision)
let getConfigCounted = Stb_Catalog_V1_Catalog.getConfig.counted
let call: @Sendable (RPCClient) async throws -> Int = { client in
    try await client.unary(getConfigCounted, request: request, timeout: .seconds(30)).count
}
/// The worker loop thread's CPU time so far, in nanoseconds, read on that thread.
func workerCPUTime() async -> UInt64 {
    await withCheckedContinuation { continuation in
        group.loops[0].execute {
            var spec = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
            continuation.resume(returning: UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec))
        }
    }
}

var best: [String: Double] = [:]
var total: [String: (calls: Int, seconds: Double)] = [:]
var cpu: [String: UInt64] = [:]
var failed = false
let loads = servers.map { (variant: $0.variant, clients: clients(port: $0.port, role: .viewer)) }
for (_, viewers) in loads { _ = await closedLoad(clients: viewers, callers: callers, seconds: 1, call) }
for round in 1...rounds {
    // Alternate which server goes first, so neither always follows the other.
    for (variant, viewers) in round % 2 == 1 ? loads : loads.reversed() {
        let cpuBefore = await workerCPUTime()
        let (result, elapsed) = await closedLoad(clients: viewers, callers: callers, seconds: seconds, call)
        cpu[variant, default: 0] += await workerCPUTime() - cpuBefore
        let sorted = result.latencies.sorted()
        let rps = Double(result.calls) / elapsed
        report("auth getconfig_unchanged variant=\(variant) round=\(round) callers=\(callers) connections=\(connections) seconds=\(format(elapsed, 2)) calls=\(result.calls) errors=\(result.errors) rps=\(format(rps, 0)) p50_us=\(percentile(sorted, 50) / 1000) p99_us=\(percentile(sorted, 99) / 1000)")
        if let error = result.firstError {
            complain("\(variant): first error: \(error)")
            failed = true
        }
        best[variant] = max(best[variant] ?? 0, rps)
        total[variant, default: (0, 0)].calls += result.calls
        total[variant, default: (0, 0)].seconds += elapsed
    }
}
for (_, viewers) in loads { for client in viewers { await client.close() } }
for (_, server, _) in servers { await server.shutdown(gracePeriod: .seconds(1)) }
await dropSchema()
group.shutdown()

let rates = total.mapValues { $0.seconds > 0 ? Double($0.calls) / $0.seconds : 0 }
let ratio = (rates["auth"] ?? 0) / max(rates["noauth"] ?? 1, 1)
report("auth total auth_rps=\(format(rates["auth"] ?? 0, 0)) noauth_rps=\(format(rates["noauth"] ?? 0, 0)) ratio=\(format(ratio, 3)) (best rounds: auth_rps=\(format(best["auth"] ?? 0, 0)) noauth_rps=\(format(best["noauth"] ?? 0, 0))) target=\(format(target, 2)) \(ratio >= target ? "PASS" : "MISS")")
let cpuPerCall = cpu.mapValues { Double($0) / 1000 }.merging(total.mapValues { Double(max($0.calls, 1)) }) { $0 / $1 }
report("auth cpu auth_us_per_call=\(format(cpuPerCall["auth"] ?? 0, 2)) noauth_us_per_call=\(format(cpuPerCall["noauth"] ?? 0, 2)) ratio=\(format((cpuPerCall["noauth"] ?? 0) / max(cpuPerCall["auth"] ?? 1, 0.001), 3))")
if failed { exit(1) }
