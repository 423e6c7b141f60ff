import Glibc
import STBBench
import STBEventLoop
import STBPostgres

// Postgres measurements for scripts/bench-postgres (run it with --help for usage).
//
//   stb-pg-bench [CONNINFO] [--seconds N] [--callers N] [--loops N] [--batch N]
//                [--executor loop|global] [--only LIST] [--warmup-seconds N]
//
// CONNINFO (a libpq URI or key=value string) is the first argument, else
// $STB_BENCH_DATABASE_URL. The database must hold the pgbench tables (`pgbench -i`); the
// scale is read from pgbench_branches and every aid is drawn uniformly from
// 1...100000 × scale, as `pgbench -S` does.
//
// --callers (default 8) concurrent callers, each a Swift task, share one pool of that many
// connections on --loops (default 1) event-loop threads: one leaves the other core of a
// 2-core machine to the server's backends. scripts/bench-postgres passes --loops 2 (as
// many threads as its pgbench -j 2), which measured about 7% faster there (medians of
// six interleaved runs, single selects both ways). With
// --executor loop (the default) each caller task prefers an event loop (round robin) as
// its executor, so acquiring a connection, running the statement and resuming the caller
// all happen on the loop thread; --executor global starts them on the default
// concurrent executor (each withConnection then hops onto the loop and back; 20-35%
// fewer pool-per-query selects/s measured).
//
// After --warmup-seconds (default 1) of single selects, each measurement runs for
// --seconds (default 5) and prints one line:
//
//   pg setup scale=10 accounts=1000000 callers=8 pool=8 loops=1 executor=loop seconds=5.00 batch=10
//   pg single-select pool-per-query callers=8 loops=1 executor=loop seconds=5.00 queries=N qps=Q p50_us= p90_us= p99_us= max_us= cpu_us_per_stmt= errors=0
//       every query is its own pool.withConnection { try await $0.query(...) }
//   pg single-select held-connection ...
//       each caller holds one connection (one withConnection) and loops queries on it
//   pg batch10 sequential callers=8 ... batches=N batches_per_s=B stmts_per_s=S p50_us= ... errors=0
//       each batch: one withConnection, then 10 connection.query calls one after another
//   pg batch10 pipelined ...
//       each batch: one withConnection, then one connection.pipeline([10 queries])
//   pg batch10 speedup=R   (pipelined stmts_per_s / sequential stmts_per_s)
//
// Latencies are per query (single selects) or per batch, acquisition included, from the
// caller's side; percentiles are nearest-rank over every sample. cpu_us_per_stmt is the
// process's CPU time (user + system, every thread, from getrusage) over the measurement,
// per statement: the client's own cost, steadier than rates on a busy machine. Exit 1 when a
// statement failed or returned other than one row.

let usage = """
    usage: stb-pg-bench [CONNINFO] [--seconds N] [--callers N] [--loops N] [--batch N]
                        [--executor loop|global] [--warmup-seconds N]
                        [--only single,held,sequential,pipelined]
    CONNINFO defaults to $STB_BENCH_DATABASE_URL; the database needs the pgbench tables.
    """

// MARK: - Options

struct Options {
    var conninfo: String?
    var seconds = 5.0
    var warmupSeconds = 1.0
    var callers = 8
    var loops = 1
    var batch = 10
    var executor = "loop"
    var only: Set<String> = ["single", "held", "sequential", "pipelined"]

    init(_ arguments: ArraySlice<String>) {
        var iterator = arguments.makeIterator()
        func value(_ name: String) -> String {
            guard let value = iterator.next() else { fail("\(name) needs a value\n\(usage)") }
            return value
        }
        func number(_ name: String) -> Double {
            let text = value(name)
            guard let number = Double(text), number > 0 else { fail("\(name) must be a positive number, not \(text)") }
            return number
        }
        func count(_ name: String) -> Int {
            let text = value(name)
            guard let number = Int(text), number > 0 else { fail("\(name) must be a positive integer, not \(text)") }
            return number
        }
        while let argument = iterator.next() {
            switch argument {
            case "--seconds": seconds = number(argument)
            case "--warmup-seconds": warmupSeconds = number(argument)
            case "--callers": callers = count(argument)
            case "--loops": loops = count(argument)
            case "--batch": batch = count(argument)
            case "--executor":
                executor = value(argument)
                guard executor == "loop" || executor == "global" else { fail("--executor is loop or global\n\(usage)") }
            case "--only":
                only = Set(value(argument).split(separator: ",").map(String.init))
                let known: Set<String> = ["single", "held", "sequential", "pipelined"]
                guard only.isSubset(of: known), !only.isEmpty else { fail("--only takes a list of \(known.sorted().joined(separator: ","))") }
            case "-h", "--help":
                print(usage)
                exit(0)
            default:
                guard !argument.hasPrefix("-"), conninfo == nil else { fail("unexpected argument \(argument)\n\(usage)") }
                conninfo = argument
            }
        }
        if conninfo == nil, let url = getenv("STB_BENCH_DATABASE_URL"), url[0] != 0 { conninfo = String(cString: url) }
    }
}

// MARK: - Measurement

/// xorshift64*: a per-caller generator, so drawing an aid costs no syscall and no lock.
struct FastRandom {
    private var state: UInt64
    init() { state = UInt64.random(in: 1...UInt64.max) }
    mutating func next(upTo bound: Int) -> Int {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return Int((state &* 2_685_821_657_736_338_717) % UInt64(bound))
    }
}

/// What the callers did, over how many seconds, at what CPU time (nanoseconds).
typealias Measured = (results: [CallerResult], seconds: Double, cpuNanoseconds: UInt64)

/// What one caller did.
struct CallerResult: Sendable {
    var latencies: [UInt64] = []
    var statements = 0
    var errors = 0
    var firstError: String?

    mutating func failed(_ error: any Error) {
        errors += 1
        if firstError == nil { firstError = "\(error)" }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
}

/// The number of rows at `scale` and the pieces shared by every run.
struct Setup: Sendable {
    let pool: PostgresPool
    let group: EventLoopGroup
    let accounts: Int
    let options: Options
}

func select(_ aid: Int32) -> PostgresQuery {
    "SELECT abalance FROM pgbench_accounts WHERE aid = \(aid)"
}

/// Checks that a select found its one row, and reads the balance as a real caller would.
@inline(never)
func check(_ rows: PostgresRows) throws {
    guard rows.count == 1 else { throw BenchError(description: "expected one row, got \(rows.count)") }
    _ = try rows[0].decode(0, as: Int32.self)
}

/// Runs `body` in `callers` tasks until `seconds` pass; each call of `body` is one sample
/// (its latency recorded) worth `statements` statements.
func measure(
    _ setup: Setup, seconds: Double, body: @escaping @Sendable (_ deadline: UInt64, _ random: inout FastRandom, _ result: inout CallerResult) async -> Void
) async -> Measured {
    let options = setup.options
    let cpuStart = processCPUNanoseconds()
    let start = now()
    let deadline = start + UInt64(seconds * 1e9)
    let results = await withTaskGroup(of: CallerResult.self) { group in
        for index in 0..<options.callers {
            let loop: EventLoop? = options.executor == "loop" ? setup.group.loops[index % setup.group.loops.count] : nil
            group.addTask(executorPreference: loop) {
                var random = FastRandom()
                var result = CallerResult()
                result.latencies.reserveCapacity(Int(seconds * 20_000))
                await body(deadline, &random, &result)
                return result
            }
        }
        var all: [CallerResult] = []
        for await result in group { all.append(result) }
        return all
    }
    let elapsed = Double(now() - start) / 1e9
    return (results, elapsed, processCPUNanoseconds() - cpuStart)
}

/// CPU time of the whole process so far (user + system, all threads).
func processCPUNanoseconds() -> UInt64 {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func nanos(_ time: timeval) -> UInt64 { UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_usec) * 1000 }
    return nanos(usage.ru_utime) + nanos(usage.ru_stime)
}

/// Prints one measurement's line; returns statements per second.
@discardableResult
func summarize(_ label: String, _ setup: Setup, _ measured: Measured, statementsPerSample: Int) -> Double {
    let latencies = measured.results.flatMap(\.latencies).sorted()
    let statements = measured.results.reduce(0) { $0 + $1.statements }
    let errors = measured.results.reduce(0) { $0 + $1.errors }
    let seconds = measured.seconds
    let us = { (p: Double) in format(Double(percentile(latencies, p)) / 1000, 0) }
    let options = setup.options
    var line = "pg \(label) callers=\(options.callers) loops=\(options.loops) executor=\(options.executor) seconds=\(format(seconds, 2))"
    if statementsPerSample == 1 {
        line += " queries=\(latencies.count) qps=\(format(Double(latencies.count) / seconds, 0))"
    } else {
        line += " batches=\(latencies.count) batches_per_s=\(format(Double(latencies.count) / seconds, 0))"
        line += " stmts_per_s=\(format(Double(statements) / seconds, 0))"
    }
    line += " p50_us=\(us(50)) p90_us=\(us(90)) p99_us=\(us(99)) max_us=\(us(100))"
    line += " cpu_us_per_stmt=\(format(Double(measured.cpuNanoseconds) / 1000 / Double(max(statements, 1)), 1)) errors=\(errors)"
    report(line)
    if let firstError = measured.results.compactMap(\.firstError).first {
        complain("\(label): \(errors) failed; first: \(firstError)")
        failures += 1
    }
    return Double(statements) / seconds
}

nonisolated(unsafe) var failures = 0

// MARK: - The runs

/// Single selects, each one its own `pool.withConnection`.
func singlePerQuery(_ setup: Setup, seconds: Double) async -> Measured {
    let pool = setup.pool, accounts = setup.accounts
    return await measure(setup, seconds: seconds) { deadline, random, result in
        while now() < deadline {
            let query = select(Int32(1 + random.next(upTo: accounts)))
            let begin = now()
            do {
                let rows = try await pool.withConnection { try await $0.query(query) }
                try check(rows)
                result.latencies.append(now() - begin)
                result.statements += 1
            } catch {
                result.failed(error)
            }
        }
    }
}

/// Single selects, each caller looping on a connection it holds throughout.
func singleHeld(_ setup: Setup, seconds: Double) async -> Measured {
    let pool = setup.pool, accounts = setup.accounts
    return await measure(setup, seconds: seconds) { deadline, random, result in
        let start = result
        var generator = random
        do {
            result = try await pool.withConnection { connection in
                var local = start
                while now() < deadline {
                    let query = select(Int32(1 + generator.next(upTo: accounts)))
                    let begin = now()
                    do {
                        try check(try await connection.query(query))
                        local.latencies.append(now() - begin)
                        local.statements += 1
                    } catch {
                        local.failed(error)
                        if !connection.isUsable { break }
                    }
                }
                return local
            }
        } catch {
            result.failed(error)
        }
    }
}

/// Batches of `--batch` selects, one `withConnection` each: sequential queries or one pipeline.
func batches(_ setup: Setup, seconds: Double, pipelined: Bool) async -> Measured {
    let pool = setup.pool, accounts = setup.accounts, size = setup.options.batch
    return await measure(setup, seconds: seconds) { deadline, random, result in
        var queries: [PostgresQuery] = []
        queries.reserveCapacity(size)
        while now() < deadline {
            queries.removeAll(keepingCapacity: true)
            for _ in 0..<size { queries.append(select(Int32(1 + random.next(upTo: accounts)))) }
            let batch = queries
            let begin = now()
            do {
                if pipelined {
                    let all = try await pool.withConnection { try await $0.pipeline(batch) }
                    guard all.count == size else { throw BenchError(description: "pipeline returned \(all.count) results for \(size) statements") }
                    for rows in all { try check(rows) }
                } else {
                    try await pool.withConnection { connection in
                        for query in batch { try check(try await connection.query(query)) }
                    }
                }
                result.latencies.append(now() - begin)
                result.statements += size
            } catch {
                result.failed(error)
            }
        }
    }
}

// MARK: - Main

let options = Options(CommandLine.arguments.dropFirst())
guard let conninfo = options.conninfo else { fail("no database: pass CONNINFO or set STB_BENCH_DATABASE_URL\n\(usage)") }

let group: EventLoopGroup
do { group = try EventLoopGroup(count: options.loops, name: "pg-bench") } catch { fail("event loops: \(error)") }
let pool = PostgresPool(configuration: PostgresConfiguration(conninfo: conninfo, poolSize: options.callers), group: group)

let scale: Int
do {
    let rows = try await pool.query("SELECT count(*) FROM pgbench_branches")
    scale = try rows[0].decode(0, as: Int.self)
    let top = try await pool.query("SELECT max(aid) FROM pgbench_accounts")
    let maxAid = try top[0].decode(0, as: Int.self)
    guard scale > 0, maxAid == 100_000 * scale else {
        fail("pgbench_accounts holds aids up to \(maxAid), expected 100000 × scale \(scale): run pgbench -i")
    }
} catch {
    fail("reading the pgbench scale: \(error) (run pgbench -i -s 10 on the database first)")
}
let setup = Setup(pool: pool, group: group, accounts: 100_000 * scale, options: options)
report("pg setup scale=\(scale) accounts=\(setup.accounts) callers=\(options.callers) pool=\(options.callers) loops=\(options.loops) executor=\(options.executor) seconds=\(format(options.seconds, 2)) batch=\(options.batch)")

// Warm-up: opens every connection and prepares the select on each.
_ = await singlePerQuery(setup, seconds: options.warmupSeconds)
if options.only.contains("sequential") || options.only.contains("pipelined") {
    _ = await batches(setup, seconds: min(options.warmupSeconds, 0.5), pipelined: true)
}

if options.only.contains("single") {
    summarize("single-select pool-per-query", setup, await singlePerQuery(setup, seconds: options.seconds), statementsPerSample: 1)
}
if options.only.contains("held") {
    summarize("single-select held-connection", setup, await singleHeld(setup, seconds: options.seconds), statementsPerSample: 1)
}
var sequentialRate: Double?
var pipelinedRate: Double?
if options.only.contains("sequential") {
    sequentialRate = summarize("batch\(options.batch) sequential", setup, await batches(setup, seconds: options.seconds, pipelined: false), statementsPerSample: options.batch)
}
if options.only.contains("pipelined") {
    pipelinedRate = summarize("batch\(options.batch) pipelined", setup, await batches(setup, seconds: options.seconds, pipelined: true), statementsPerSample: options.batch)
}
if let sequentialRate, let pipelinedRate, sequentialRate > 0 {
    report("pg batch\(options.batch) speedup=\(format(pipelinedRate / sequentialRate, 2))")
}

await pool.close()
exit(failures == 0 ? 0 : 1)
