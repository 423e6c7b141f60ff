import ArgumentParser
import Glibc
import STBJSON
import STBLoad
import STBMessages
import STBRPC

/// An open-model load generator for any unary or server-streaming method of `Protos/`.
@main
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stb-load",
        abstract: "Send requests to a gRPC method on a fixed schedule and report latency from the intended and the actual send time.",
        discussion: """
            Exit status: 0 when every --threshold holds, 1 when one fails, 2 for bad input.
            STB_TOKEN, when set, is sent as `authorization: Bearer …`.
            """)

    @Option(help: "The server, HOST:PORT.")
    var target: String = "127.0.0.1:50051"

    @Option(help: "The method: /pkg.Service/Method, pkg.Service/Method or pkg.Service.Method.")
    var method: String

    @Option(help: "The request as proto3 JSON: one message, a list used round-robin, or a template with {{n}} (a counter).")
    var data: String?

    @Option(name: .customLong("data-file"), help: "Read the request JSON from a file.")
    var dataFile: String?

    @Option(help: "Constant rate (requests per second), with --duration.")
    var rate: String?

    @Option(help: "Duration of a constant rate (500ms, 10s, 2m).")
    var duration: String = "10s"

    @Option(help: "Steps RATE:DURATION,RATE:DURATION,… (each reported on its own).")
    var steps: String?

    @Option(help: "A linear ramp FROM:TO:DURATION.")
    var ramp: String?

    @Flag(help: "Poisson arrivals (exponential gaps at the rate) instead of evenly spaced ones.")
    var poisson = false

    @Option(help: "Seed of the Poisson gaps.")
    var seed: UInt64 = 1

    @Option(help: "HTTP/2 connections.")
    var connections = 4

    @Option(help: "Calls at once per connection.")
    var streams = 64

    @Option(name: .customLong("max-in-flight"), help: "Calls at once in all (default: connections × streams).")
    var maxInFlight: Int?

    @Option(name: .customLong("late-ms"), help: "A request sent more than this many milliseconds after its intended time is late.")
    var lateMs: Double = 1

    @Option(help: "Each call's deadline (10s).")
    var timeout: String = "10s"

    @Option(help: "Event-loop threads.")
    var threads = 1

    @Option(name: .customLong("metadata"), help: "KEY=VALUE sent with every call (repeatable).")
    var metadata: [String] = []

    @Option(name: .customLong("threshold"), help: "A criterion the run must meet: p99<20ms, actual.p99<5ms, errors<0.1%, late<1%, never_sent<1, rate>=99%; for server streams first.p99<50ms (time to the first message) and message_rate>=1000 (repeatable).")
    var thresholds: [String] = []

    @Flag(help: "Print the report as JSON instead of text.")
    var json = false

    @Option(name: .customLong("json-file"), help: "Also write the JSON report to this file.")
    var jsonFile: String?

    func run() async throws {
        let configuration: LoadConfiguration
        let criteria: [LoadThreshold]
        do {
            configuration = try makeConfiguration()
            criteria = try thresholds.map { (text) throws(LoadError) in try LoadThreshold(text) }
        } catch {
            printError(error.message)
            throw ExitCode(2)
        }
        let runner: LoadRunner
        do {
            runner = try LoadRunner(configuration: configuration)
        } catch {
            printError(error.message)
            throw ExitCode(2)
        }
        let report = await runner.run()
        if let setupError = report.setupError {
            printError(setupError)
            throw ExitCode(2)
        }
        var document = report.json()
        var failed = false
        var verdicts: [JSONValue] = []
        var verdictLines: [String] = []
        for criterion in criteria {
            let (measured, passed) = criterion.evaluate(report)
            failed = failed || !passed
            verdicts.append(["threshold": .string(criterion.description), "measured": .string(measured), "passed": .bool(passed)])
            verdictLines.append("threshold \(criterion.description): \(measured) \(passed ? "PASS" : "FAIL")")
        }
        if case .object(var members) = document {
            members["thresholds"] = .array(verdicts)
            members["passed"] = .bool(!failed)
            document = .object(members)
        }
        if let jsonFile {
            guard let file = fopen(jsonFile, "w") else {
                printError("could not write \(jsonFile)")
                throw ExitCode(2)
            }
            fputs(document.rendered(pretty: true) + "\n", file)
            fclose(file)
        }
        if json {
            print(document.rendered(pretty: true))
        } else {
            print(report.text(), terminator: "")
            for line in verdictLines { print(line) }
        }
        if failed { throw ExitCode(1) }
    }

    private func makeConfiguration() throws(LoadError) -> LoadConfiguration {
        guard let colon = target.lastIndex(of: ":"), let port = Int(target[target.index(after: colon)...]), (1...65535).contains(port) else {
            throw LoadError(.badOption, "--target \(target): expected HOST:PORT")
        }
        let host = String(target[..<colon])
        let descriptor = try LoadArguments.method(method)
        let text: String
        let origin: String
        switch (data, dataFile) {
        case (let inline?, nil):
            text = inline
            origin = "--data"
        case (nil, let path?):
            guard let contents = readFile(path) else { throw LoadError(.badRequest, "--data-file \(path): cannot be read") }
            text = contents
            origin = path
        case (nil, nil):
            text = "{}"
            origin = "the default request"
        default:
            throw LoadError(.badOption, "give --data or --data-file, not both")
        }
        let requests = try RequestSource(text: text, typeName: descriptor.requestType, origin: origin)
        let shapes = [rate != nil, steps != nil, ramp != nil].filter { $0 }.count
        guard shapes == 1 else { throw LoadError(.badSchedule, "give one of --rate (with --duration), --steps or --ramp") }
        var planned: [LoadSchedule.Step]
        if let rate {
            planned = [LoadSchedule.Step(rate: try LoadArguments.rate(rate, option: "--rate"), durationNanos: try LoadArguments.duration(duration, option: "--duration"))]
        } else if let steps {
            planned = try LoadArguments.steps(steps)
        } else {
            planned = [try LoadArguments.ramp(ramp ?? "")]
        }
        let schedule = try LoadSchedule(steps: planned, poisson: poisson, seed: seed)
        var configuration = LoadConfiguration(host: host, port: port, method: descriptor, requests: requests, schedule: schedule)
        configuration.connections = connections
        configuration.streamsPerConnection = streams
        configuration.maxInFlight = maxInFlight ?? Int.max
        guard lateMs.isFinite, lateMs >= 0 else { throw LoadError(.badOption, "--late-ms must be a number ≥ 0") }
        configuration.lateThresholdNanos = UInt64(lateMs * 1e6)
        configuration.timeout = .nanoseconds(Int64(try LoadArguments.duration(timeout, option: "--timeout")))
        configuration.threads = threads
        var headers = Metadata()
        if let token = getenv("STB_TOKEN").map({ String(cString: $0) }), !token.isEmpty {
            headers.addString("Bearer \(token)", forKey: "authorization")
        }
        for pair in metadata {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw LoadError(.badOption, "--metadata \(pair): expected KEY=VALUE")
            }
            headers.addString(String(pair[pair.index(after: equals)...]), forKey: String(pair[..<equals]).lowercased())
        }
        configuration.metadata = headers
        return configuration
    }
}

private func printError(_ message: String) {
    let line = Array("stb-load: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

private func readFile(_ path: String) -> String? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count <= 0 { break }
        bytes.append(contentsOf: buffer[0..<count])
        if bytes.count > 64 * 1024 * 1024 { return nil }
    }
    return String(decoding: bytes, as: UTF8.self)
}

