import Dispatch
import Glibc
import Logging
import STBEcho
import STBRPC

// The echo server: the RPC layer's test and benchmark peer, with health.
// Configuration: STB_ECHO_HOST, STB_ECHO_PORT (50050), STB_ECHO_WORKERS, STB_RPC_*, LOG_LEVEL.

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = getenv("LOG_LEVEL").flatMap { Logger.Level(rawValue: String(cString: $0)) } ?? .info
    return handler
}
let logger = Logger(label: "stb.echo")

let server: RPCServer
do {
    let configuration = try RPCServer.Configuration.fromEnvironment(prefix: "STB_ECHO", defaultPort: 50050)
    server = try RPCServer(configuration: configuration, services: [EchoService()], logger: logger)
    let port = try await server.start()
    // Scripts wait for this line to learn the port.
    print("stb-echo-server listening on \(configuration.host):\(port)")
    fflush(nil)
} catch {
    logger.critical("could not start: \(error)")
    exit(1)
}

signal(SIGTERM, SIG_IGN)
signal(SIGINT, SIG_IGN)
let signals = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0, queue: .global()) }
for source in signals {
    source.setEventHandler {
        logger.info("shutting down")
        Task { await server.shutdown(gracePeriod: .seconds(10)) }
    }
    source.resume()
}
await server.waitUntilStopped()
