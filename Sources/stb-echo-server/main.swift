import Dispatch
import Glibc
import Logging
import Metrics
import Prometheus
import STBEcho
import STBRPC

// The echo server: the RPC layer's test and benchmark peer, with health.
// Configuration: STB_ECHO_HOST, STB_ECHO_PORT (50050), STB_ECHO_WORKERS, STB_RPC_*, LOG_LEVEL,
// STB_ECHO_METRICS (1: record metrics, served at GET /metrics, as the services do).

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = getenv("LOG_LEVEL").flatMap { Logger.Level(rawValue: String(cString: $0)) } ?? .info
    return handler
}
let logger = Logger(label: "stb.echo")

let server: RPCServer
do {
    var configuration = try RPCServer.Configuration.fromEnvironment(prefix: "STB_ECHO", defaultPort: 50050)
    var interceptors: [any ServerInterceptor] = []
    if getenv("STB_ECHO_METRICS").map({ String(cString: $0) }) == "1" {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        configuration.metricsExposition = { PrometheusText.addingHelp(to: registry.emitToBuffer(), help: RPCMetricName.help) }
        configuration.metricsServiceName = "echo"
        interceptors.append(MetricsInterceptor())
    }
    server = try RPCServer(configuration: configuration, services: [EchoService()], interceptors: interceptors, logger: logger)
} catch {
    logger.critical("could not start: \(error)")
    exit(1)
}

// Signals are handled before the port opens, so a SIGTERM right after start is graceful too.
// The handlers run on the main queue: this top-level code is main-actor isolated.
signal(SIGTERM, SIG_IGN)
signal(SIGINT, SIG_IGN)
let signals = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0, queue: .main) }
for source in signals {
    source.setEventHandler {
        logger.info("shutting down")
        Task { await server.shutdown(gracePeriod: .seconds(10)) }
    }
    source.resume()
}

do {
    let port = try await server.start()
    // Scripts wait for this line to learn the port.
    print("stb-echo-server listening on \(server.configuration.host):\(port)")
    fflush(nil)
} catch {
    logger.critical("could not start: \(error)")
    exit(1)
}
await server.waitUntilStopped()
