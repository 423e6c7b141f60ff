import Glibc
import STBAuth
import STBBench
import STBJSON
import STBMessages
import STBRPC
import STBRules
import Synchronization

// Measurements of the project service for scripts/bench-project, against the real catalogd,
// rulesd and projectd the script starts.
//
// Targets (issue 13), a 10,000-option catalog, 5,000 rules and 1,000 projects of 1,000
// overrides each: GetProjectConfig cached with known_hash >= 20,000/s, p99 <= 2 ms; a full
// uncached build <= 50 ms; SetOptions of one option at 16 concurrent editors on different
// projects >= 500/s, p99 <= 20 ms; CommitVersion <= 100 ms; DiffVersions of two
// 10,000-option versions <= 20 ms; after a rule change touching every project, all of them
// re-evaluated within 10 s.
//
//   stb-project-bench keys                 the JWKS the services verify bench tokens with
//   stb-project-bench token --role ROLE    a bench token (the services' own, for their calls)
//   stb-project-bench seed                 the seed document (catalog and rules) on stdout
//   stb-project-bench load --catalog ADDR --rules ADDR --project ADDR [--projects N]
//       [--overrides N] [--seconds N] [--callers C] [--connections K] [--editors E]
//       [--seeders S] [--builds B] [--server-pid PID]
//
// The data is STBBench.makeSynthetic() (the rules benchmark's catalog and rules), with two
// changes so that projects can be edited at all: every rule the catalog's defaults break is
// a warning (a project with an error is refused every change), and each project overrides
// only options no rule names (so its 1,000 overrides keep it valid; checked in process with
// the rules engine before anything is sent). Every project overrides the same "anchor"
// integer option, which the drift step's new rule bounds.
//
// load:
//   1. imports the seed into the catalog and its rules into the rules service, and waits
//      until projectd builds configurations at that catalog revision;
//   2. creates N projects (bench-p0000 ...) and sets their overrides with one SetOptions of
//      `overrides` changes each, S at once (through the API, as users would):
//        project seed projects=N overrides=O seconds=... per_project_ms=...
//   3. the uncached build: the first GetProjectConfig of B projects (their cache was emptied
//      by their SetOptions), one at a time:
//        project build calls=B p50_ms=... p99_ms=... max_ms=... response_bytes=...
//   4. GetProjectConfig with known_hash (cached, `unchanged`), C callers over K
//      connections round the B projects step 3 built, 1 s warm-up then `seconds`:
//        project cached projects=B callers=C connections=K calls=... errors=... per_s=... p50_us=... p99_us=...
//   5. SetOptions of one option, E editors each on a project of its own (its anchor,
//      alternating between two values):
//        project set_options editors=E calls=... errors=... per_s=... p50_ms=... p99_ms=...
//   6. CommitVersion and DiffVersions (or `unimplemented`):
//        project commit calls=... p50_ms=... p99_ms=... | project commit unimplemented
//        project diff options=... changed=... p50_ms=... p99_ms=... | project diff unimplemented
//   7. drift: a rule bounding the anchor below every project's value is created; polls
//      ListProjects until every project is invalid, for at most 10 s (then 20 s more to say
//      how long it took):
//        project drift projects=N invalid=... seconds=... within_target=true|false
// With --server-pid, the CPU seconds projectd spent in steps 4 and 5. Exit status 1 when a
// step fails to run (a missed target is not a failure).

let usage = """
    usage: stb-project-bench keys
           stb-project-bench token --role ROLE
           stb-project-bench seed
           stb-project-bench load --catalog ADDR --rules ADDR --project ADDR [--projects N] [--overrides N]
               [--seconds N] [--callers C] [--connections K] [--editors E] [--seeders S] [--builds B] [--server-pid PID]
    """

let arguments = Array(CommandLine.arguments.dropFirst())
guard let mode = arguments.first, ["keys", "token", "seed", "load"].contains(mode) else { fail(usage) }
let values: BenchOptions = {
    let allowed: [String: [String]] = [
        "keys": [], "seed": [], "token": ["role"],
        "load": ["catalog", "rules", "project", "projects", "overrides", "seconds", "callers", "connections", "editors",
                 "seeders", "builds", "server-pid"],
    ]
    return BenchOptions(arguments.dropFirst(), allowed: allowed[mode]!, usage: usage, scope: mode)
}()

func ms(_ ns: UInt64) -> String { format(Double(ns) / 1e6, 2) }
func us(_ ns: UInt64) -> String { format(Double(ns) / 1000, 1) }

// MARK: - data

/// The synthetic catalog and rules as the project benchmark uses them.
struct BenchData {
    let synthetic: Synthetic
    /// The rules, those the defaults break turned into warnings.
    let rules: [SyntheticRule]
    /// Indices of options no rule names, integers first: overrides of these keep a
    /// project valid.
    let free: [Int]
    /// The option every project overrides (an integer no rule names).
    let anchor: Int
    let engine: RuleEngine

    init() {
        let synthetic = makeSynthetic()
        let model = CatalogModel(synthetic.config)
        var rules = synthetic.rules
        func compiled(_ rules: [SyntheticRule]) -> [Rule] {
            do { return try rules.map(compile) } catch { fail("rule compilation: \(error)") }
        }
        let defaults = RuleEngine(rules: compiled(rules), catalog: model).evaluate(Selection(choices: [:]))
        let broken = Set(defaults.errors.map(\.ruleKey))
        for index in rules.indices where broken.contains(rules[index].key) { rules[index].severity = .warning }
        let engine = RuleEngine(rules: compiled(rules), catalog: model)
        guard engine.evaluate(Selection(choices: [:])).errors.isEmpty else { fail("the defaults still break a rule") }
        // Every option key a rule names: its subject and every quoted key in its payload.
        var named = Set<String>()
        for rule in rules {
            named.insert(rule.subject)
            for (index, piece) in rule.payload.split(separator: "\"", omittingEmptySubsequences: false).enumerated() where index % 2 == 1 {
                named.insert(String(piece))
            }
        }
        let unnamed = synthetic.options.indices.filter { !named.contains(synthetic.options[$0].key) && synthetic.options[$0].type != .boolean }
        let integers = unnamed.filter { synthetic.options[$0].type == .integer }
        guard let anchor = integers.first else { fail("no integer option is free of rules") }
        self.synthetic = synthetic
        self.rules = rules
        self.anchor = anchor
        self.free = unnamed.filter { $0 != anchor }
        self.engine = engine
    }

    func key(_ index: Int) -> String { synthetic.options[index].key }

    /// Project `number`'s overrides: the anchor, then `count - 1` free options from a
    /// deterministic start, each with a value its constraints allow.
    func overrides(project number: Int, count: Int) -> [Stb_Project_V1_OptionChange] {
        var rng = SplitMix(state: 7_000_003 &* UInt64(number + 1))
        var changes = [Stb_Project_V1_OptionChange(key: key(anchor), change: .valueJson("\(50_000 + number)"))]
        let start = rng.below(free.count)
        for step in 0..<min(count - 1, free.count) {
            let index = free[(start + step) % free.count]
            let option = synthetic.options[index]
            let text: String = switch option.type {
            case .integer: "\(rng.below(100_001))"
            case .enum: "\"v\(rng.below(5))\""
            default: "\"p\(number)-\(rng.below(1_000_000))\""
            }
            changes.append(Stb_Project_V1_OptionChange(key: option.key, change: .valueJson(text)))
        }
        return changes
    }

    /// Whether the rules engine accepts `changes` over the defaults (before sending them).
    func accepts(_ changes: [Stb_Project_V1_OptionChange]) -> Bool {
        var request = Stb_Rules_V1_EvaluateRequest()
        request.options = changes.map { change in
            guard case .valueJson(let text) = change.change else { return Stb_Rules_V1_OptionChoice(key: change.key) }
            return Stb_Rules_V1_OptionChoice(key: change.key, valueJson: text)
        }
        do { return engine.evaluate(try RulesService.selection(request, catalog: engine.catalog)).errors.isEmpty } catch {
            fail("selection: \(error)")
        }
    }

    /// The seed document: the catalog's modules, groups and options, and the rules.
    var seedDocument: String {
        var modules: [JSONValue] = []
        var index = 0
        for entry in synthetic.config.modules {
            var groups: [JSONValue] = []
            for group in entry.groups {
                var options: [JSONValue] = []
                for option in group.options {
                    let synthetic = self.synthetic.options[index]
                    index += 1
                    let defaultValue: JSONValue = switch synthetic.type {
                    case .boolean: .bool(option.defaultValue == "true")
                    case .integer: .integer(Int64(synthetic.intDefault))
                    default: .string(option.defaultValue)
                    }
                    var fields: [String: JSONValue] = [
                        "key": .string(option.key), "name": .string(option.name), "type": .string(typeName(option.type)),
                        "default": defaultValue, "included_by_default": .bool(option.includedByDefault),
                    ]
                    if !option.metaJson.isEmpty, let meta = try? JSONValue.parse(option.metaJson) { fields["meta"] = meta }
                    options.append(.object(fields))
                }
                let info = group.group ?? Stb_Catalog_V1_Group()
                groups.append(.object([
                    "key": .string(info.key), "name": .string(info.name), "position": .integer(Int64(info.position)),
                    "options": .array(options),
                ]))
            }
            let module = entry.module ?? Stb_Catalog_V1_Module()
            modules.append(.object(["key": .string(module.key), "name": .string(module.name), "groups": .array(groups)]))
        }
        let rules: [JSONValue] = self.rules.map { rule in
            .object([
                "key": .string(rule.key), "subject": .string(rule.subject), "type": .string(ruleTypeName(rule.type)),
                "payload": (try? JSONValue.parse(rule.payload)) ?? .null,
                "severity": .string(rule.severity == .warning ? "warning" : "error"), "message": .string("synthetic rule \(rule.key)"),
            ])
        }
        return JSONValue.object(["version": .integer(1), "modules": .array(modules), "rules": .array(rules)]).canonicalText
    }
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

func typeName(_ type: Stb_Catalog_V1_OptionType) -> String {
    switch type {
    case .boolean: "boolean"
    case .integer: "integer"
    case .enum: "enum"
    default: "string"
    }
}

func ruleTypeName(_ type: Stb_Rules_V1_RuleType) -> String {
    switch type {
    case .requires: "requires"
    case .forbidden: "forbidden"
    case .validation: "validation"
    default: "choice"
    }
}

// MARK: - keys, token, seed

if mode == "keys" {
    report(BenchIdentity.keys.jwksJSON)
    exit(0)
}
if mode == "token" {
    guard let name = values["role"], let role = Role(claim: name) else { fail("--role viewer|operator|engineer|admin|service") }
    report(BenchIdentity.token(role: role, seconds: 6 * 3600))
    exit(0)
}
if mode == "seed" {
    report(BenchData().seedDocument)
    exit(0)
}

// MARK: - load

/// CPU time of a process (user + system), in nanoseconds, from /proc; nil if unreadable.
func processCPU(_ pid: Int32) -> UInt64? {
    guard let file = fopen("/proc/\(pid)/stat", "r") else { return nil }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 4096)
    guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
    let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard let close = line.lastIndex(of: ")") else { return nil }
    let fields = line[line.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
    return (user + system) * 1_000_000_000 / UInt64(sysconf(Int32(_SC_CLK_TCK)))
}

func address(_ name: String) -> (String, Int) {
    guard let addr = values[name], let colon = addr.lastIndex(of: ":"), let port = Int(addr[addr.index(after: colon)...]) else {
        fail("--\(name) HOST:PORT is required\n\(usage)")
    }
    return (String(addr[..<colon]), port)
}

func client(_ name: String) -> RPCClient {
    let (host, port) = address(name)
    var configuration = RPCClient.Configuration()
    configuration.maxReceiveMessageSize = 64 * 1024 * 1024
    configuration.credentials = BearerCredentials(token: BenchIdentity.token(role: .admin, seconds: 6 * 3600))
    do { return try RPCClient(host: host, port: port, configuration: configuration) } catch { fail("client for \(name): \(error)") }
}

@Sendable func projectKey(_ number: Int) -> String {
    let digits = String(number)
    return "bench-p" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}

/// A counter shared by concurrent tasks.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)

    /// The value before this call added one.
    func next() -> Int { value.wrappingAdd(1, ordering: .relaxed).oldValue }
}

/// Runs `body` for 0..<count, `width` at once; stops the program on the first error.
func concurrently(_ count: Int, width: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async {
    let next = Counter()
    await withTaskGroup(of: Void.self) { group in
        for _ in 0..<min(width, count) {
            group.addTask {
                while true {
                    let index = next.next()
                    guard index < count else { return }
                    do { try await body(index) } catch { fail("item \(index): \(error)") }
                }
            }
        }
    }
}

func isUnimplemented(_ error: any Error) -> Bool {
    (error as? RPCError)?.code == .unimplemented
}

func runLoad() async {
    let projectCount = values.positiveInt("projects", 1_000)
    let overrideCount = values.positiveInt("overrides", 1_000)
    let seconds = values.positiveInt("seconds", 10)
    let callers = values.positiveInt("callers", 16)
    let connections = values.positiveInt("connections", 4)
    let editors = min(values.positiveInt("editors", 16), projectCount)
    let seeders = values.positiveInt("seeders", 4)
    let builds = min(values.positiveInt("builds", 100), projectCount)
    let serverPid = values["server-pid"].flatMap { Int32($0) }
    let data = BenchData()
    guard data.free.count + 1 >= overrideCount else {
        fail("only \(data.free.count + 1) options are free of rules; ask for at most that many overrides")
    }
    report("project data options=\(data.synthetic.options.count) rules=\(data.rules.count) demoted_to_warning=\(zip(data.rules, data.synthetic.rules).filter { $0.severity != $1.severity }.count) free_options=\(data.free.count + 1) anchor=\(data.key(data.anchor))")

    let catalog = client("catalog")
    let rules = client("rules")
    let projects = (0..<connections).map { _ in client("project") }
    let project = projects[0]

    // 1. The catalog and the rules.
    let document = data.seedDocument
    let revision: UInt64
    do {
        let t0 = now()
        let imported = try await catalog.unary(
            Stb_Catalog_V1_Catalog.importSeed, request: Stb_Catalog_V1_ImportSeedRequest(documentJson: document, fileName: "bench.json"),
            timeout: .seconds(600))
        let t1 = now()
        // rulesd follows the catalog: its rules can name the new options once it has them.
        while try await rules.unary(Stb_Rules_V1_Rules.checkRules, request: Stb_Rules_V1_CheckRulesRequest(), timeout: .seconds(600))
            .catalogRevision < imported.revision {
            if now() - t1 > 120_000_000_000 { fail("rulesd has not caught up with catalog revision \(imported.revision) after 120 s") }
            try await Task.sleep(for: .milliseconds(200))
        }
        let t2 = now()
        _ = try await rules.unary(
            Stb_Rules_V1_Rules.importRules, request: Stb_Rules_V1_ImportRulesRequest(documentJson: document, fileName: "bench.json"),
            timeout: .seconds(600))
        let t3 = now()
        revision = imported.revision
        report("project import seed_bytes=\(document.utf8.count) catalog_ms=\(ms(t1 - t0)) rules_wait_ms=\(ms(t2 - t1)) rules_ms=\(ms(t3 - t2)) catalog_revision=\(revision)")
    } catch {
        fail("import: \(error)")
    }

    // projectd builds configurations at the new catalog revision (its copy follows Watch).
    let probe = "bench-probe"
    do {
        _ = try await project.unary(Stb_Project_V1_Projects.createProject, request: Stb_Project_V1_CreateProjectRequest(key: probe, name: "probe"))
    } catch let error as RPCError where error.code == .alreadyExists {
    } catch {
        fail("CreateProject \(probe): \(error)")
    }
    let waitStart = now()
    while true {
        let config = try? await project.unary(
            Stb_Project_V1_Projects.getProjectConfig, request: Stb_Project_V1_GetProjectConfigRequest(projectKey: probe), timeout: .seconds(60))
        if let config, config.catalogRevision >= revision || config.modules.count == data.synthetic.config.modules.count { break }
        if now() - waitStart > 120_000_000_000 { fail("projectd has not caught up with catalog revision \(revision) after 120 s") }
        try? await Task.sleep(for: .milliseconds(200))
    }

    // 2. Projects and their overrides, through the API.
    let seedStart = now()
    let hashes = Mutex<[Int: [UInt8]]>([:])
    await concurrently(projectCount, width: seeders) { number in
        let key = projectKey(number)
        let client = projects[number % projects.count]
        do {
            _ = try await client.unary(
                Stb_Project_V1_Projects.createProject,
                request: Stb_Project_V1_CreateProjectRequest(key: key, name: "Bench project \(number)"), timeout: .seconds(60))
        } catch let error as RPCError where error.code == .alreadyExists {}
        let changes = data.overrides(project: number, count: overrideCount)
        if number < 4 && !data.accepts(changes) { fail("project \(number)'s overrides break a rule in process") }
        let reply = try await client.unary(
            Stb_Project_V1_Projects.setOptions,
            request: Stb_Project_V1_SetOptionsRequest(projectKey: key, changes: changes), timeout: .seconds(120))
        hashes.withLock { $0[number] = reply.hash_p }
    }
    let seedElapsed = now() - seedStart
    report("project seed projects=\(projectCount) overrides=\(overrideCount) seeders=\(seeders) seconds=\(format(Double(seedElapsed) / 1e9, 1)) per_project_ms=\(ms(seedElapsed * UInt64(seeders) / UInt64(projectCount)))")

    // 3. The uncached build: each project's first GetProjectConfig since its SetOptions.
    var buildSamples: [UInt64] = []
    var responseBytes = 0
    for number in 0..<builds {
        let t0 = now()
        do {
            let reply = try await project.unary(
                Stb_Project_V1_Projects.getProjectConfig.counted,
                request: Stb_Project_V1_GetProjectConfigRequest(projectKey: projectKey(number)), timeout: .seconds(60))
            responseBytes = reply.count
        } catch {
            fail("GetProjectConfig: \(error)")
        }
        buildSamples.append(now() - t0)
    }
    buildSamples.sort()
    report("project build calls=\(builds) p50_ms=\(ms(percentile(buildSamples, 50))) p99_ms=\(ms(percentile(buildSamples, 99))) max_ms=\(ms(percentile(buildSamples, 100))) response_bytes=\(responseBytes)")

    // 4. Cached, by known hash.
    let known = hashes.withLock { $0 }
    // Round the projects step 3 built (so their configurations are in the service's cache).
    let requests = (0..<builds).map { Stb_Project_V1_GetProjectConfigRequest(projectKey: projectKey($0), knownHash: known[$0] ?? []) }
    let turn = Counter()
    let cached = Stb_Project_V1_Projects.getProjectConfig.counted
    let unchanged = try? await project.unary(Stb_Project_V1_Projects.getProjectConfig, request: requests[0])
    guard unchanged?.unchanged == true else { fail("GetProjectConfig with the known hash did not answer unchanged") }
    _ = await closedLoad(clients: projects, callers: callers, seconds: 1) { client in
        try await client.unary(cached, request: requests[turn.next() % requests.count]).count
    }
    var cpuBefore = serverPid.flatMap(processCPU)
    let (cachedResult, cachedElapsed) = await closedLoad(clients: projects, callers: callers, seconds: seconds) { client in
        try await client.unary(cached, request: requests[turn.next() % requests.count]).count
    }
    var cpu = ""
    if let pid = serverPid, let before = cpuBefore, let after = processCPU(pid) { cpu = " server_cpu_s=\(format(Double(after - before) / 1e9, 2))" }
    let cachedSorted = cachedResult.latencies.sorted()
    report("project cached projects=\(builds) callers=\(callers) connections=\(connections) seconds=\(format(cachedElapsed, 2)) calls=\(cachedResult.calls) errors=\(cachedResult.errors) per_s=\(format(Double(cachedResult.calls) / cachedElapsed, 0)) p50_us=\(us(percentile(cachedSorted, 50))) p99_us=\(us(percentile(cachedSorted, 99))) max_us=\(us(percentile(cachedSorted, 100))) response_bytes=\(cachedResult.bytes)\(cpu)")
    if let error = cachedResult.firstError { complain("cached: first error: \(error)") }

    // 5. SetOptions of one option, each editor on a project of its own.
    let editorClients = (0..<editors).map { (index: $0, client: projects[$0 % projects.count]) }
    // Each call a value not set before, so every call changes the draft.
    let edits = Counter()
    let anchorKey = data.key(data.anchor)
    let edit: @Sendable ((index: Int, client: RPCClient)) async throws -> Int = { editor in
        let value = 60_000 + edits.next() % 40_000
        let request = Stb_Project_V1_SetOptionsRequest(
            projectKey: projectKey(editor.index), changes: [Stb_Project_V1_OptionChange(key: anchorKey, change: .valueJson("\(value)"))])
        return try await editor.client.unary(Stb_Project_V1_Projects.setOptions.counted, request: request, timeout: .seconds(30)).count
    }
    _ = await closedLoad(clients: editorClients, callers: editors, seconds: 1, edit)
    cpuBefore = serverPid.flatMap(processCPU)
    let (setResult, setElapsed) = await closedLoad(clients: editorClients, callers: editors, seconds: seconds, edit)
    cpu = ""
    if let pid = serverPid, let before = cpuBefore, let after = processCPU(pid) { cpu = " server_cpu_s=\(format(Double(after - before) / 1e9, 2))" }
    let setSorted = setResult.latencies.sorted()
    report("project set_options editors=\(editors) seconds=\(format(setElapsed, 2)) calls=\(setResult.calls) errors=\(setResult.errors) per_s=\(format(Double(setResult.calls) / setElapsed, 0)) p50_ms=\(ms(percentile(setSorted, 50))) p99_ms=\(ms(percentile(setSorted, 99))) max_ms=\(ms(percentile(setSorted, 100)))\(cpu)")
    if let error = setResult.firstError { complain("set_options: first error: \(error)") }

    // 6. Versions: CommitVersion on projects of their own, then DiffVersions of two commits
    //    of one project that differ in every override.
    var commitSamples: [UInt64] = []
    var commitsWork = true
    for number in 0..<min(20, projectCount) {
        let t0 = now()
        do {
            _ = try await project.unary(
                Stb_Project_V1_Projects.commitVersion,
                request: Stb_Project_V1_CommitVersionRequest(projectKey: projectKey(number), message: "bench"), timeout: .seconds(60))
        } catch let error where isUnimplemented(error) {
            commitsWork = false
            break
        } catch {
            fail("CommitVersion: \(error)")
        }
        commitSamples.append(now() - t0)
    }
    if commitsWork {
        commitSamples.sort()
        report("project commit calls=\(commitSamples.count) p50_ms=\(ms(percentile(commitSamples, 50))) p99_ms=\(ms(percentile(commitSamples, 99))) max_ms=\(ms(percentile(commitSamples, 100)))")
        await diffVersions(data: data, project: project, overrideCount: overrideCount, projectCount: projectCount)
    } else {
        report("project commit unimplemented")
        report("project diff unimplemented")
    }

    // 7. Drift: a rule that every project's anchor now breaks.
    await drift(data: data, rules: rules, project: project, projectCount: projectCount)

    await catalog.close()
    await rules.close()
    for client in projects { await client.close() }
}

/// DiffVersions of two versions of one project: the second changes every override.
func diffVersions(data: BenchData, project: RPCClient, overrideCount: Int, projectCount: Int) async {
    let number = projectCount - 1
    let key = projectKey(number)
    do {
        let first = try await project.unary(
            Stb_Project_V1_Projects.commitVersion, request: Stb_Project_V1_CommitVersionRequest(projectKey: key, message: "diff a"),
            timeout: .seconds(60))
        let changes = data.overrides(project: number + 7_919, count: overrideCount)
        _ = try await project.unary(
            Stb_Project_V1_Projects.setOptions, request: Stb_Project_V1_SetOptionsRequest(projectKey: key, changes: changes),
            timeout: .seconds(120))
        let second = try await project.unary(
            Stb_Project_V1_Projects.commitVersion, request: Stb_Project_V1_CommitVersionRequest(projectKey: key, message: "diff b"),
            timeout: .seconds(60))
        let request = Stb_Project_V1_DiffVersionsRequest(projectKey: key, from: first.number, to: second.number)
        var samples: [UInt64] = []
        var last = Stb_Project_V1_DiffVersionsResponse()
        for _ in 0..<20 {
            let t0 = now()
            last = try await project.unary(Stb_Project_V1_Projects.diffVersions, request: request, timeout: .seconds(60))
            samples.append(now() - t0)
        }
        samples.sort()
        let options = (try? JSONValue.parse(second.canonicalJson))?.objectValue?.count ?? 0
        report("project diff options=\(options) added=\(last.added.count) removed=\(last.removed.count) changed=\(last.changed.count) p50_ms=\(ms(percentile(samples, 50))) p99_ms=\(ms(percentile(samples, 99)))")
    } catch let error where isUnimplemented(error) {
        report("project diff unimplemented")
    } catch {
        fail("DiffVersions: \(error)")
    }
}

/// Creates a rule the anchor value of every project breaks, and polls until every
/// project is invalid (or 30 s pass).
func drift(data: BenchData, rules: RPCClient, project: RPCClient, projectCount: Int) async {
    let anchor = data.key(data.anchor)
    var rule = Stb_Rules_V1_Rule()
    rule.key = "bench-drift-\(now() % 1_000_000_000)"
    rule.subject = anchor
    rule.type = .validation
    rule.severity = .error
    rule.payloadJson = #"{"logic":{"<=":[{"var":"\#(anchor)"},1000]}}"#
    rule.message = "the anchor must stay at or below 1000"
    rule.active = true
    let start = now()
    do {
        _ = try await rules.unary(Stb_Rules_V1_Rules.createRule, request: Stb_Rules_V1_CreateRuleRequest(rule: rule), timeout: .seconds(60))
    } catch {
        fail("CreateRule: \(error)")
    }
    var invalid = 0
    var reachedAt: UInt64?
    while now() - start < 30_000_000_000 {
        invalid = 0
        var token = ""
        repeat {
            do {
                let page = try await project.unary(
                    Stb_Project_V1_Projects.listProjects,
                    request: Stb_Project_V1_ListProjectsRequest(page: Stb_Common_V1_PageRequest(pageSize: 1_000, pageToken: token)),
                    timeout: .seconds(60))
                invalid += page.projects.filter { $0.key.hasPrefix("bench-p") && !$0.valid }.count
                token = page.page?.nextPageToken ?? ""
            } catch {
                fail("ListProjects: \(error)")
            }
        } while !token.isEmpty
        if invalid >= projectCount {
            reachedAt = now()
            break
        }
        try? await Task.sleep(for: .milliseconds(250))
    }
    let seconds = reachedAt.map { format(Double($0 - start) / 1e9, 2) } ?? "none"
    report("project drift projects=\(projectCount) invalid=\(invalid) seconds=\(seconds) within_target=\(reachedAt.map { $0 - start <= 10_000_000_000 } ?? false)")
}

await runLoad()
