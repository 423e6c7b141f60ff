import Glibc
import STBEventLoop

extension RPCServer.Configuration {
    /// Reads overrides from the environment. `prefix` names the service (`STB_ECHO` reads
    /// `STB_ECHO_HOST`, `STB_ECHO_PORT`, `STB_ECHO_WORKERS`); the shared `STB_RPC_*`
    /// variables tune limits and timers (documented in the README).
    public static func fromEnvironment(prefix: String, defaultPort: Int) throws -> Self {
        var configuration = Self()
        configuration.port = defaultPort
        configuration.workers = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        if let host = environment("\(prefix)_HOST") { configuration.host = host }
        try readInt("\(prefix)_PORT") { configuration.port = $0 }
        try readInt("\(prefix)_WORKERS") { configuration.workers = $0 }
        try readInt("STB_RPC_MAX_CONCURRENT_STREAMS") { configuration.maxConcurrentStreams = $0 }
        try readInt("STB_RPC_MAX_RUNNING_HANDLERS") { configuration.maxRunningHandlersPerConnection = $0 }
        try readInt("STB_RPC_MAX_RECEIVE_MESSAGE_BYTES") { configuration.maxReceiveMessageSize = $0 }
        try readInt("STB_RPC_HANDSHAKE_TIMEOUT_MS") { configuration.handshakeTimeout = .milliseconds($0) }
        try readInt("STB_RPC_HEADER_TIMEOUT_MS") { configuration.headerTimeout = .milliseconds($0) }
        try readInt("STB_RPC_IDLE_TIMEOUT_MS") { configuration.idleTimeout = .milliseconds($0) }
        try readInt("STB_RPC_WRITE_STALL_TIMEOUT_MS") { configuration.writeStallTimeout = .milliseconds($0) }
        try readInt("STB_RPC_MIN_PING_INTERVAL_MS") { configuration.minPingInterval = .milliseconds($0) }
        return configuration
    }
}

/// A configuration value that could not be used.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let variable: String
    public let value: String
    public var description: String { "\(variable)=\"\(value)\" is not a valid non-negative integer" }
}

private func environment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}

private func readInt(_ name: String, _ apply: (Int) -> Void) throws {
    guard let text = environment(name) else { return }
    guard let value = Int(text), value >= 0 else { throw ConfigurationError(variable: name, value: text) }
    apply(value)
}
