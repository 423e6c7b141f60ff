import Glibc
import STBAuth
import STBBench
import Logging
import STBJSON
import STBMessages
import STBPostgres
import STBRPC
import STBRules
import STBService
import Synchronization

// Measurements of the rules engine and of rulesd's Evaluate for scripts/bench-rules.
//
// Targets (issue 17), 10,000 options and 5,000 rules: a sparse selection in-process p99
// <= 100 us and >= 5,000 evaluations/s over RPC on one core (as 100 choices, and by the
// hash of a selection evaluated before plus one difference); a full selection >= 1,000/s
// over RPC; one rule changed -> engine ready <= 1 ms.
//
//   stb-rules-bench inproc [--iterations N] [--warmup W]
//   stb-rules-bench serve  [--database-url URL] [--migrations DIR]
//   stb-rules-bench load   --addr HOST:PORT [--seconds N] [--callers C] [--connections K]
//   stb-rules-bench loop   [--selection full|sparse] [--stage read|evaluate|request|change|fully|build] [--change severity|retarget|add|remove] [--seconds N]
//
// Every mode builds the same synthetic, deterministic data (fixed seed; STBBench.makeSynthetic):
//   catalog  20 modules × 10 groups × 50 options = 10,000 options, as a
//            Stb_Catalog_V1_GetConfigResponse: 40% boolean, 30% integer, 20% enum, 10% string;
//            about half included by default.
//   rules    5,000: 40% requires (1-3 targets, always to a higher option index: acyclic),
//            20% forbidden (1-2 targets), 30% validation (numeric bounds, comparisons between
//            two integer options, ranges, enum membership; 2% of them global "*"),
//            10% choice (2-4 members, 70% optional); 80% error / 20% warning severity.
//            Chosen so that the defaults satisfy about 90% of them (a mostly valid selection).
//   full     an EvaluateRequest listing all 10,000 options explicitly (included flag on each,
//            0.5% flipped from the default; value overrides on ~10% of integers and ~5% of the rest).
//   sparse   an EvaluateRequest with 100 explicit choices (flips and 30 overrides), rest defaults.
//
// inproc: the catalog conversion (a copy of rulesd's internal CatalogModel(configuration),
//   which is not public), rule compilation, RuleEngine(rules:catalog:) build; then
//   `evaluate` (incremental) of the full and sparse selections, W warm-up + N timed
//   iterations each: p50/p99/max and evaluations/s; the same with `evaluateFully` (every rule
//   checked: the anchor), checked equal; one rule changed (`applying`: a severity flipped, a requires rule's
//   targets moved, a rule added, one removed; a different rule each time) until the engine
//   is ready, and the next evaluation, against a rebuild;
//   then the per-request CPU stages of the RPC path for the same two requests: the read of
//   the request's wire bytes into the engine's slot arrays (RulesService.slotSelection(wire:)),
//   evaluate with the differences, the selection hash, the reply's encoding; and as an
//   anchor the generated decoder plus the conversion of its message to slots. Lines:
//     rules setup catalog_ms=... compile_ms=... engine_build_ms=... (build_first_ms ... build_p50_ms)
//     rules inproc selection=full|sparse iterations=N p50_us=... p99_us=... max_us=... evals_per_s=... violations=... closure=... conflicts=...
//     rules inproc selection=full_every_rule|sparse_every_rule iterations=N p50_us=... p99_us=... same_as_incremental=true
//     rules change kind=severity changes=N ready_p50_us=... ready_p99_us=... ready_cpu_p50_us=... ready_cpu_p99_us=... next_evaluate_p50_us=... full_rebuild_p50_us=... same_as_rebuilt=true
//     rules change_retarget|change_add|change_remove kind=... (the same figures)
//     rules stage selection=full|sparse read_p50_us=... evaluate_p50_us=... hash_p50_us=... respond_p50_us=... total_p50_us=... ceiling_per_s=... anchor_generated_decode_convert_p50_us=... request_bytes=... response_bytes=...
// loop: one stage of the served path (read, evaluate, or the whole request with its reply),
//   or one rule change (--stage change --change KIND, applied to the same engine each time),
//   or an anchor (--stage fully: every rule checked, evaluateFully of the keyed selection;
//   --stage build: the engine rebuilt from the rules), repeated for --seconds, for a profiler to attach to (perf record -p PID):
//     rules loop selection=... stage=... iterations=... per_s=... cpu_us_per_iteration=...
// serve: a fresh schema in the database (default: STB_BENCH_DATABASE_URL, else
//   STB_TEST_DATABASE_URL), rulesd's migrations, the 5,000 rules inserted with SQL (pipelined,
//   500 per pipeline), RulesService.catalogChanged(synthetic GetConfig) (the real
//   conversion), reloadRules(); an RPCServer with ONE worker; prints
//     rules serve port=P schema=S insert_ms=... catalog_changed_ms=... reload_ms=...
//   and serves until SIGTERM/SIGINT, then drops the schema.
// load: C concurrent callers over K connections (caller i uses connection i % K); one decoded
//   call per request kind (checked against the in-process answer), 1 s warm-up, N seconds;
//   sparse_by_hash names the sparse selection by the hash the server answered for it, with
//   one choice changed:
//     rules rpc selection=full|sparse|sparse_by_hash callers=C connections=K calls=... errors=... evals_per_s=... p50_us=... p99_us=... max_us=... request_bytes=... response_bytes=...
//   The load loops do not decode the reply (they count its bytes): the figure is the server's.
// Exit status 1 when a step fails to run (a missed target is not a failure).

let usage = """
    usage: stb-rules-bench inproc [--iterations N] [--warmup W]
           stb-rules-bench serve  [--database-url URL] [--migrations DIR]
           stb-rules-bench load   --addr HOST:PORT [--seconds N] [--callers C] [--connections K] [--server-pid PID]
           stb-rules-bench loop   [--selection full|sparse] [--stage read|evaluate|request|change|fully|build] [--change severity|retarget|add|remove] [--seconds N]
    """

func us(_ ns: UInt64) -> String { format(Double(ns) / 1000, 1) }
func ms(_ ns: UInt64) -> String { format(Double(ns) / 1e6, 2) }

// MARK: - arguments

let arguments = Array(CommandLine.arguments.dropFirst())
guard let mode = arguments.first, ["inproc", "serve", "load", "loop"].contains(mode) else { fail(usage) }
let values: BenchOptions = {
    let allowed: [String: [String]] = [
        "inproc": ["iterations", "warmup"],
        "serve": ["database-url", "migrations"],
        "load": ["addr", "seconds", "callers", "connections", "server-pid"],
        "loop": ["selection", "stage", "change", "seconds"],
    ]
    return BenchOptions(arguments.dropFirst(), allowed: allowed[mode]!, usage: usage, scope: mode)
}()

// MARK: - the service's own conversions

// The synthetic data: STBBench's makeSynthetic().

func catalogModel(_ configuration: Stb_Catalog_V1_GetConfigResponse) -> CatalogModel {
    CatalogModel(configuration)
}

func compile(_ rule: SyntheticRule) throws -> Rule {
    var message = Stb_Rules_V1_Rule()
    message.key = rule.key
    message.subject = rule.subject
    message.type = rule.type
    message.payloadJson = rule.payload
    message.severity = rule.severity
    message.active = true
    return try RulesService.compile(message)
}

func selection(_ request: Stb_Rules_V1_EvaluateRequest, _ catalog: CatalogModel) throws -> Selection {
    try RulesService.selection(request, catalog: catalog)
}

func response(_ evaluation: Evaluation) -> Stb_Rules_V1_EvaluateResponse {
    RulesService.response(evaluation, RulesService.Revisions(catalog: 1, rules: 1))
}

func summary(_ evaluation: Evaluation) -> String {
    "valid=\(evaluation.valid) violations=\(evaluation.violations.count) errors=\(evaluation.errors.count) closure=\(evaluation.closure.count) conflicts=\(evaluation.conflicts.count)"
}

// MARK: - inproc

/// CPU time of the calling thread, in nanoseconds: unlike the wall clock, it does not count
/// the time other work on the shared machine takes the core away.
func threadCPU() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}

/// CPU time of a process (user + system), in nanoseconds, from /proc; nil if unreadable.
func processCPU(_ pid: Int32) -> UInt64? {
    guard let file = fopen("/proc/\(pid)/stat", "r") else { return nil }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 4096)
    guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
    let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    // Fields after the command name (which ends at the last ')'): state is field 3, utime 14, stime 15.
    guard let close = line.lastIndex(of: ")") else { return nil }
    let fields = line[line.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
    return (user + system) * 1_000_000_000 / UInt64(sysconf(Int32(_SC_CLK_TCK)))
}

/// The thread CPU time of each timed iteration of the last `timed` call, sorted.
nonisolated(unsafe) var lastCPUSamples: [UInt64] = []

func timed(_ iterations: Int, warmup: Int, _ body: () -> Void) -> [UInt64] {
    for _ in 0..<warmup { body() }
    var samples: [UInt64] = []
    var cpu: [UInt64] = []
    samples.reserveCapacity(iterations)
    cpu.reserveCapacity(iterations)
    for _ in 0..<iterations {
        let c0 = threadCPU()
        let t0 = now()
        body()
        samples.append(now() - t0)
        cpu.append(threadCPU() - c0)
    }
    lastCPUSamples = cpu.sorted()
    return samples.sorted()
}

/// ` cpu_p50_us=... cpu_p99_us=...` for the last `timed` call.
func cpuFigures() -> String {
    " cpu_p50_us=\(us(percentile(lastCPUSamples, 50))) cpu_p99_us=\(us(percentile(lastCPUSamples, 99)))"
}

func runInProcess() {
    let iterations = values.positiveInt("iterations", 2_000)
    let warmup = values.positiveInt("warmup", 200)
    let t0 = now()
    let data = makeSynthetic()
    let t1 = now()
    let model = catalogModel(data.config)
    let t2 = now()
    let rules: [Rule]
    do { rules = try data.rules.map(compile) } catch { fail("rule compilation: \(error)") }
    let t3 = now()
    var engine = RuleEngine(rules: rules, catalog: model)
    let t4 = now()
    var builds: [UInt64] = []
    for _ in 0..<5 {
        let start = now()
        engine = RuleEngine(rules: rules, catalog: model)
        builds.append(now() - start)
    }
    builds.sort()
    report("rules setup options=\(model.optionKeys.count) rules=\(rules.count) generate_ms=\(ms(t1 - t0)) catalog_ms=\(ms(t2 - t1)) compile_ms=\(ms(t3 - t2)) engine_build_first_ms=\(ms(t4 - t3)) engine_build_p50_ms=\(ms(builds[2])) engine_build_max_ms=\(ms(builds[4]))")

    let selections: [(String, Stb_Rules_V1_EvaluateRequest)] = [("full", data.full), ("sparse", data.sparse)]
    for (name, request) in selections {
        let selected: Selection
        do { selected = try selection(request, model) } catch { fail("\(name) selection: \(error)") }
        var last: Evaluation?
        let samples = timed(iterations, warmup: warmup) { last = engine.evaluate(selected) }
        let total = samples.reduce(0, +)
        report("rules inproc selection=\(name) iterations=\(iterations) p50_us=\(us(percentile(samples, 50))) p99_us=\(us(percentile(samples, 99))) max_us=\(us(percentile(samples, 100))) evals_per_s=\(format(Double(iterations) / (Double(total) / 1e9), 0))\(cpuFigures()) choices=\(request.options.count) \(summary(last!))")
    }

    // The anchor: every rule checked for every selection (what a full recompute costs).
    for (name, request) in selections {
        let selected: Selection
        do { selected = try selection(request, model) } catch { fail("\(name) selection: \(error)") }
        var last: Evaluation?
        let samples = timed(iterations, warmup: warmup) { last = engine.evaluateFully(selected) }
        let total = samples.reduce(0, +)
        let same = last.map { $0.violations == engine.evaluate(selected).violations && $0.closure == engine.evaluate(selected).closure } ?? false
        report("rules inproc selection=\(name)_every_rule iterations=\(iterations) p50_us=\(us(percentile(samples, 50))) p99_us=\(us(percentile(samples, 99))) max_us=\(us(percentile(samples, 100))) evals_per_s=\(format(Double(iterations) / (Double(total) / 1e9), 0))\(cpuFigures()) same_as_incremental=\(same)")
        if !same { complain("\(name): incremental and full evaluation differ") }
    }

    // One rule changed, until the engine is ready for the next evaluation; then that
    // evaluation. Each change is applied to the engine built above (a different rule each
    // time), of each kind: a rule's severity flipped (the closure stays), a requires rule's
    // targets moved to other options (the closure and its first level change), a requires
    // rule added, a rule removed. The first line (severity) is the one printed before the
    // kinds were split; the summary judges the slowest kind.
    let sparseSelection: Selection
    do { sparseSelection = try selection(data.sparse, model) } catch { fail("sparse selection: \(error)") }
    let changeCount = max(50, iterations / 10)
    let maker = ChangeMaker(rules: rules, optionKeys: model.optionKeys)
    for kind in ["severity", "retarget", "add", "remove"] {
        var changes: [UInt64] = []
        var firstEvaluations: [UInt64] = []
        var changeCPU: [UInt64] = []
        var changed = engine
        var sameAfterChange = true
        for round in 0..<(changeCount + 10) {
            let ruleChange = maker.change(kind, round)
            let cpuStart = threadCPU()
            let start = now()
            changed = engine.applying(ruleChange)
            let ready = now()
            let cpuReady = threadCPU()
            let evaluation = changed.evaluate(sparseSelection)
            let evaluated = now()
            if round >= 10 {
                changes.append(ready - start)
                changeCPU.append(cpuReady - cpuStart)
                firstEvaluations.append(evaluated - ready)
            }
            // Now and then (untimed), the changed engine against one built from its rules.
            if round % 20 == 0 {
                let scratch = RuleEngine(rules: ruleChange.apply(to: rules), catalog: model)
                let full = scratch.evaluateFully(sparseSelection)
                sameAfterChange = sameAfterChange && full.violations == evaluation.violations && full.closure == evaluation.closure
                    && full.conflicts == evaluation.conflicts && scratch.defaultEvaluation.violations == changed.defaultEvaluation.violations
                    && scratch.defaultEvaluation.closure == changed.defaultEvaluation.closure
            }
        }
        changes.sort()
        firstEvaluations.sort()
        changeCPU.sort()
        let label = kind == "severity" ? "rules change " : "rules change_\(kind) "
        report("\(label)kind=\(kind) changes=\(changes.count) ready_p50_us=\(us(percentile(changes, 50))) ready_p99_us=\(us(percentile(changes, 99))) ready_max_us=\(us(percentile(changes, 100))) ready_cpu_p50_us=\(us(percentile(changeCPU, 50))) ready_cpu_p99_us=\(us(percentile(changeCPU, 99))) next_evaluate_p50_us=\(us(percentile(firstEvaluations, 50))) full_rebuild_p50_us=\(us(builds[2])) same_as_rebuilt=\(sameAfterChange)")
        if !sameAfterChange { complain("\(kind): the engine changed by one rule differs from one rebuilt") }
    }

    // The RPC path's CPU stages, one at a time, for the same requests.
    let stageIterations = max(200, iterations / 2)
    let encodedDefaults = EncodedDefaults(engine)
    let revisions = RulesService.Revisions(catalog: 1, rules: 1)
    for (name, request) in selections {
        let bytes = request.serializedBytes()
        // The anchor: the generated decoder (protobuf-c, then Swift values) and the
        // conversion of its message to option slots, as Evaluate did before reading bytes.
        var decoded = Stb_Rules_V1_EvaluateRequest()
        let generated = timed(stageIterations, warmup: warmup / 2) {
            do {
                decoded = try Stb_Rules_V1_EvaluateRequest(serializedBytes: bytes)
                _ = try RulesService.slotChoices(decoded, engine: engine)
            } catch { fail("decode: \(error)") }
        }
        guard decoded == request else { fail("decode round trip differs") }
        // As the service reads a request: its bytes straight into the engine's slot arrays.
        var selected = engine.slotSelection()
        let read = timed(stageIterations, warmup: warmup / 2) {
            do { selected = try RulesService.slotSelection(wire: bytes, engine: engine).selection } catch { fail("read: \(error)") }
        }
        var evaluated = engine.evaluateListed(selected)
        let evaluate = timed(stageIterations, warmup: warmup / 2) { evaluated = engine.evaluateListed(selected) }
        do {
            let reference = engine.evaluateFully(try selection(decoded, model))
            guard evaluated.evaluation.violations == reference.violations, evaluated.evaluation.closure == reference.closure,
                evaluated.evaluation.conflicts == reference.conflicts
            else { fail("\(name): the slot path's evaluation differs from evaluateFully") }
        } catch { fail("selection: \(error)") }
        var hash: [UInt8] = []
        let hashing = timed(stageIterations, warmup: warmup / 2) { hash = evaluated.selectionHash }
        // The reply as the service builds it: the defaults' violations copied from their
        // encoding (made once per engine), the rest encoded.
        var reply: [UInt8] = []
        let respond = timed(stageIterations, warmup: warmup / 2) {
            reply = RulesService.encodedReply(evaluated.evaluation, defaults: encodedDefaults, revisions: revisions, selectionHash: hash)
        }
        var expected = response(evaluated.evaluation)
        expected.selectionHash = hash
        guard reply == expected.serializedBytes() else { fail("\(name): the encoded reply differs from the message's encoding") }
        let combined = timed(stageIterations, warmup: warmup / 2) {
            do {
                let result = engine.evaluateListed(try RulesService.slotSelection(wire: bytes, engine: engine).selection)
                reply = RulesService.encodedReply(result.evaluation, defaults: encodedDefaults, revisions: revisions, selectionHash: result.selectionHash)
            } catch { fail("combined: \(error)") }
        }
        let p50 = { (s: [UInt64]) in us(percentile(s, 50)) }
        let mean = Double(combined.reduce(0, +)) / Double(combined.count)
        report("rules stage selection=\(name) iterations=\(stageIterations) read_p50_us=\(p50(read)) evaluate_p50_us=\(p50(evaluate)) hash_p50_us=\(p50(hashing)) respond_p50_us=\(p50(respond)) total_p50_us=\(p50(combined)) total_cpu_p50_us=\(us(percentile(lastCPUSamples, 50))) cpu_ceiling_per_s=\(format(1e9 / (Double(lastCPUSamples.reduce(0, +)) / Double(max(1, lastCPUSamples.count))), 0)) total_p99_us=\(us(percentile(combined, 99))) ceiling_per_s=\(format(1e9 / mean, 0)) anchor_generated_decode_convert_p50_us=\(p50(generated)) request_bytes=\(bytes.count) response_bytes=\(reply.count)")
    }
}

// MARK: - loop

/// One stage of the served path in a loop for a profiler (perf record -p): the request
/// read, the evaluation, or both with the reply.
/// The rule changes the benchmark times, a different rule each round: `severity` (flipped),
/// `retarget` (a requires rule's targets moved to other options after its subject),
/// `add` (a requires rule), `remove`.
struct ChangeMaker {
    let rules: [Rule]
    let optionKeys: [String]
    /// Requires rules with their subject's position in `optionKeys`.
    let requiresRules: [(rule: Rule, subject: Int)]

    init(rules: [Rule], optionKeys: [String]) {
        self.rules = rules
        self.optionKeys = optionKeys
        var position: [String: Int] = [:]
        for (index, key) in optionKeys.enumerated() { position[key] = index }
        requiresRules = rules.compactMap { rule in
            guard case .requires = rule.kind, let subject = position[rule.subject] else { return nil }
            return (rule, subject)
        }
    }

    func change(_ kind: String, _ round: Int) -> RuleChange {
        let count = optionKeys.count
        switch kind {
        case "retarget":
            let picked = requiresRules[(round * 37) % requiresRules.count]
            var rule = picked.rule
            let subject = picked.subject
            guard case .requires(let targets) = rule.kind, subject + 1 < count else { return .replace(rule) }
            // Other options after the subject (the synthetic rules point forward: acyclic).
            let room = count - subject - 1
            rule.kind = .requires(targets.indices.map { optionKeys[subject + 1 + (round * 7 + $0 * 13) % room] })
            return .replace(rule)
        case "add":
            let subject = (round * 97) % (count - 1)
            let target = subject + 1 + (round * 13) % (count - subject - 1)
            return .add(Rule(key: "bench_added_\(round)", subject: optionKeys[subject], kind: .requires([optionKeys[target]])))
        case "remove":
            return .remove(rules[(round * 37) % rules.count].key)
        default:
            var rule = rules[(round * 37) % rules.count]
            rule.severity = rule.severity == .error ? .warning : .error
            return .replace(rule)
        }
    }
}

/// The synthetic rules compiled, the synthetic catalog's model and their engine.
func compiledEngine(_ data: Synthetic) -> (rules: [Rule], model: CatalogModel, engine: RuleEngine) {
    let rules: [Rule]
    do { rules = try data.rules.map(compile) } catch { fail("compile: \(error)") }
    let model = catalogModel(data.config)
    return (rules, model, RuleEngine(rules: rules, catalog: model))
}

func runLoop() {
    let seconds = values.positiveInt("seconds", 10)
    let name = values["selection"] ?? "sparse"
    let stage = values["stage"] ?? "request"
    let data = makeSynthetic()
    let (rules, model, engine) = compiledEngine(data)
    let maker = ChangeMaker(rules: rules, optionKeys: model.optionKeys)
    let changeKind = values["change"] ?? "severity"
    guard let request = ["full": data.full, "sparse": data.sparse][name] else { fail("--selection full|sparse") }
    let bytes = request.serializedBytes()
    let defaults = EncodedDefaults(engine)
    let revisions = RulesService.Revisions(catalog: 1, rules: 1)
    let selected: RuleEngine.SlotSelection
    do { selected = try RulesService.slotSelection(wire: bytes, engine: engine).selection } catch { fail("read: \(error)") }
    let keyed: Selection
    do { keyed = try selection(request, model) } catch { fail("selection: \(error)") }
    let end = now() + UInt64(seconds) * 1_000_000_000
    let cpuStart = threadCPU()
    var count = 0
    var sink = 0
    while now() < end {
        for _ in 0..<20 {
            switch stage {
            case "read":
                do { sink &+= try RulesService.slotSelection(wire: bytes, engine: engine).selection.chosenCount } catch { fail("read: \(error)") }
            case "evaluate":
                // What a reply reads without building the violation list (`violations` makes one).
                let evaluation = engine.evaluateListed(selected).evaluation
                sink &+= evaluation.closure.count &+ evaluation.conflicts.count &+ (evaluation.valid ? 1 : 0)
            case "change":
                sink &+= engine.applying(maker.change(changeKind, count)).defaultEvaluation.violations.count
            case "fully":
                // The every-rule anchor: the selection's keys looked up, every rule checked.
                sink &+= engine.evaluateFully(keyed).violations.count
            case "build":
                // The full rebuild a rule change is measured against.
                sink &+= RuleEngine(rules: rules, catalog: model).defaultEvaluation.violations.count
            default:
                do {
                    let result = engine.evaluateListed(try RulesService.slotSelection(wire: bytes, engine: engine).selection)
                    sink &+= RulesService.encodedReply(result.evaluation, defaults: defaults, revisions: revisions, selectionHash: result.selectionHash).count
                } catch { fail("request: \(error)") }
            }
            count += 1
        }
    }
    let cpuPerIteration = Double(threadCPU() - cpuStart) / 1000 / Double(max(count, 1))
    report("rules loop selection=\(name) stage=\(stage) iterations=\(count) per_s=\(count / seconds) cpu_us_per_iteration=\(format(cpuPerIteration, 1)) sink=\(sink)")
}

// MARK: - serve

let stopRequested = Atomic<Bool>(false)

func runServe() async {
    let environment = PostgresConfiguration.currentEnvironment()
    guard let base = values["database-url"] ?? environment["STB_BENCH_DATABASE_URL"] ?? environment["STB_TEST_DATABASE_URL"] else {
        fail("no database: pass --database-url or set STB_BENCH_DATABASE_URL (scripts/bench-rules does)")
    }
    let migrations = values["migrations"] ?? "services/rules/migrations"
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = .warning
        return handler
    }
    let logger = Logger(label: "stb.rules.bench")
    let data = makeSynthetic()
    let group: EventLoopGroup
    do { group = try EventLoopGroup(count: 1, name: "rules-bench") } catch { fail("event loop: \(error)") }
    let schema = "rules_bench_\(getpid())_\(now() % 1_000_000)"
    let admin = PostgresPool(configuration: PostgresConfiguration(conninfo: base, poolSize: 1), group: group)
    do {
        _ = try await admin.query("CREATE SCHEMA \(unescaped: schema)")
    } catch {
        fail("CREATE SCHEMA on \(base): \(error)")
    }
    let conninfo = base + (base.contains("?") ? "&" : "?") + "options=-csearch_path%3D\(schema)"
    let pool = PostgresPool(configuration: PostgresConfiguration(conninfo: conninfo, poolSize: 2), group: group)
    let service = RulesService(pool: pool, signal: ChangeSignal(), logger: logger)
    let server: RPCServer
    let port: Int
    do {
        _ = try await Migrator(directory: migrations).migrate(pool)
        let t0 = now()
        var start = 0
        while start < data.rules.count {
            let batch = data.rules[start..<min(start + 500, data.rules.count)].map { rule -> PostgresQuery in
                let type: String
                switch rule.type {
                case .requires: type = "requires"
                case .forbidden: type = "forbidden"
                case .validation: type = "validation"
                default: type = "choice"
                }
                let severity = rule.severity == .warning ? "warning" : "error"
                return "INSERT INTO rules (key, subject, type, payload, severity) VALUES (\(rule.key), \(rule.subject), \(type), \(PostgresJSON(rule.payload)), \(severity))"
            }
            _ = try await pool.withConnection { try await $0.pipeline(batch) }
            start += 500
        }
        _ = try await pool.query("UPDATE rules_revision SET revision = revision + 1")
        let t1 = now()
        service.catalogChanged(data.config)
        let t2 = now()
        try await service.reloadRules()
        let t3 = now()
        guard service.isReady else { fail("the service is not ready after catalogChanged + reloadRules") }
        var configuration = RPCServer.Configuration()
        configuration.port = 0
        configuration.workers = 1
        configuration.maxReceiveMessageSize = 16 * 1024 * 1024
        server = try RPCServer(
            configuration: configuration, services: [service],
            interceptors: ServiceDaemon.interceptors(
                for: "rules", logger: logger, authenticator: Authenticator(keys: CurrentKeys(BenchIdentity.keys))),
            group: group)
        port = try await server.start()
        report("rules serve port=\(port) schema=\(schema) insert_ms=\(ms(t1 - t0)) catalog_changed_ms=\(ms(t2 - t1)) reload_ms=\(ms(t3 - t2)) workers=1")
    } catch {
        _ = try? await admin.query("DROP SCHEMA IF EXISTS \(unescaped: schema) CASCADE")
        fail("serve setup: \(error)")
    }
    signal(SIGTERM) { _ in stopRequested.store(true, ordering: .relaxed) }
    signal(SIGINT) { _ in stopRequested.store(true, ordering: .relaxed) }
    while !stopRequested.load(ordering: .relaxed) {
        try? await Task.sleep(for: .milliseconds(100))
    }
    await server.shutdown(gracePeriod: .seconds(1))
    await pool.close()
    do {
        _ = try await admin.query("DROP SCHEMA IF EXISTS \(unescaped: schema) CASCADE")
    } catch {
        complain("DROP SCHEMA \(schema): \(error)")
    }
    await admin.close()
    report("rules serve stopped")
}

// MARK: - load

let evaluateCounted = Stb_Rules_V1_Rules.evaluate.counted

func runLoad() async {
    guard let addr = values["addr"], let colon = addr.lastIndex(of: ":"), let port = Int(addr[addr.index(after: colon)...]) else {
        fail("--addr HOST:PORT is required\n\(usage)")
    }
    let host = String(addr[..<colon])
    let seconds = values.positiveInt("seconds", 10)
    let callers = values.positiveInt("callers", 16)
    let connections = values.positiveInt("connections", 4)
    // With the server's pid: its CPU time per request kind, which other work on the
    // machine does not inflate (evaluations per CPU-second of the server).
    let serverPid = values["server-pid"].flatMap { Int32($0) }
    let data = makeSynthetic()
    // The in-process answer, to check the server's.
    let engine = compiledEngine(data).engine

    var configuration = RPCClient.Configuration()
    configuration.maxReceiveMessageSize = 64 * 1024 * 1024
    configuration.credentials = BearerCredentials(token: BenchIdentity.token(role: .viewer))
    let clients: [RPCClient]
    do { clients = try (0..<connections).map { _ in try RPCClient(host: host, port: port, configuration: configuration) } } catch { fail("client: \(error)") }
    // The sparse selection by its hash, with one more choice: the base is what the server
    // answered for the sparse selection.
    var byHash = Stb_Rules_V1_EvaluateRequest()
    var byHashExpected = Selection(choices: [:])
    do {
        let first = try await clients[0].unary(Stb_Rules_V1_Rules.evaluate, request: data.sparse, timeout: .seconds(30))
        byHash.baseSelectionHash = first.selectionHash
        var choice = data.sparse.options[0]
        choice.included = !(choice.included ?? false)
        byHash.options = [choice]
        var whole = try selection(data.sparse, engine.catalog)
        whole.choices[choice.key] = Selection.Choice(included: choice.included, value: whole.choices[choice.key]?.value)
        byHashExpected = whole
    } catch {
        fail("Evaluate sparse for its hash: \(error)")
    }
    for (name, request) in [("full", data.full), ("sparse", data.sparse), ("sparse_by_hash", byHash)] {
        let expected: Evaluation
        do {
            expected = name == "sparse_by_hash" ? engine.evaluate(byHashExpected) : engine.evaluate(try selection(request, engine.catalog))
        } catch { fail("selection: \(error)") }
        do {
            let t0 = now()
            let reply = try await clients[0].unary(Stb_Rules_V1_Rules.evaluate, request: request, timeout: .seconds(30))
            let elapsed = now() - t0
            let same = reply.valid == expected.valid && reply.violations.map(\.ruleKey).sorted() == expected.violations.map(\.ruleKey).sorted()
                && reply.closure.sorted() == expected.closure.map(\.optionKey).sorted()
            // The server compiles rules ORDER BY key (r0, r1, r10, ...): compare as sets.
            report("rules rpc_check selection=\(name) first_call_ms=\(ms(elapsed)) valid=\(reply.valid) violations=\(reply.violations.count) closure=\(reply.closure.count) conflicts=\(reply.conflicts.count) matches_inproc=\(same)")
            if !same { complain("\(name): the server's answer differs from the in-process one") }
        } catch {
            fail("Evaluate \(name): \(error)")
        }
        _ = await closedLoad(clients: clients, callers: callers, seconds: 1) { try await $0.unary(evaluateCounted, request: request, timeout: .seconds(30)).count }
        let serverBefore = serverPid.flatMap(processCPU)
        let (result, elapsed) = await closedLoad(clients: clients, callers: callers, seconds: seconds) { try await $0.unary(evaluateCounted, request: request, timeout: .seconds(30)).count }
        var serverCPU = ""
        if let pid = serverPid, let before = serverBefore, let after = processCPU(pid), after > before {
            let seconds = Double(after - before) / 1e9
            serverCPU = " server_cpu_s=\(format(seconds, 2)) evals_per_server_cpu_s=\(format(Double(result.calls) / seconds, 0))"
        }
        let sorted = result.latencies.sorted()
        report("rules rpc selection=\(name) callers=\(callers) connections=\(connections) seconds=\(format(elapsed, 2)) calls=\(result.calls) errors=\(result.errors) evals_per_s=\(format(Double(result.calls) / elapsed, 0)) p50_us=\(us(percentile(sorted, 50))) p90_us=\(us(percentile(sorted, 90))) p99_us=\(us(percentile(sorted, 99))) max_us=\(us(percentile(sorted, 100))) request_bytes=\(request.serializedBytes().count) response_bytes=\(result.bytes)\(serverCPU)")
        if let error = result.firstError { complain("\(name): first error: \(error)") }
    }
    for client in clients { await client.close() }
}

switch mode {
case "inproc": runInProcess()
case "loop": runLoop()
case "serve": await runServe()
default: await runLoad()
}
