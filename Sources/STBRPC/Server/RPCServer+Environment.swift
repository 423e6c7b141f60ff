import Glibc
import STBEventLoop

extension RPCServer.Configuration {
    /// Reads overrides from the environment. `prefix` names the service (`STB_ECHO` reads
    /// `STB_ECHO_HOST`, `STB_ECHO_PORT`, `STB_ECHO_WORKERS`); the shared `STB_RPC_*`
    /// variables tune limits and timers (documented in the README).
    public static func fromEnvironment(prefix: String, defaultPort: Int, environment variables: [String: String]? = nil) throws -> Self {
        let environment = { (name: String) in variables.map { $0[name] } ?? processEnvironment(name) }
        func readInt(_ name: String, in range: ClosedRange<Int> = 0...Int(Int32.max), _ apply: (Int) -> Void) throws {
            guard let text = environment(name) else { return }
            guard let value = Int(text), range.contains(value) else {
                throw ConfigurationError(variable: name, value: text, expected: "an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            apply(value)
        }
        var configuration = Self()
        configuration.port = defaultPort
        configuration.workers = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        if let host = environment("\(prefix)_HOST") { configuration.host = host }
        try readInt("\(prefix)_PORT", in: 0...65535) { configuration.port = $0 }
        try readInt("\(prefix)_WORKERS", in: 1...1024) { configuration.workers = $0 }
        try readInt("STB_RPC_MAX_CONCURRENT_STREAMS") { configuration.maxConcurrentStreams = $0 }
        try readInt("STB_RPC_MAX_RUNNING_HANDLERS") { configuration.maxRunningHandlersPerConnection = $0 }
        try readInt("STB_RPC_MAX_RECEIVE_MESSAGE_BYTES") { configuration.maxReceiveMessageSize = $0 }
        try readInt("STB_RPC_HANDSHAKE_TIMEOUT_MS") { configuration.handshakeTimeout = .milliseconds($0) }
        try readInt("STB_RPC_HEADER_TIMEOUT_MS") { configuration.headerTimeout = .milliseconds($0) }
        try readInt("STB_RPC_IDLE_TIMEOUT_MS") { configuration.idleTimeout = .milliseconds($0) }
        try readInt("STB_RPC_WRITE_STALL_TIMEOUT_MS") { configuration.writeStallTimeout = .milliseconds($0) }
        try readInt("STB_RPC_MIN_PING_INTERVAL_MS") { configuration.minPingInterval = .milliseconds($0) }
        try readInt("STB_RPC_SHUTDOWN_GRACE_MS") { configuration.shutdownGracePeriod = .milliseconds($0) }
        return configuration
    }
}

/// A configuration value that could not be used.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let variable: String
    public let value: String
    /// What a valid value looks like, e.g. "an integer from 0 to 65535".
    public let expected: String

    public init(variable: String, value: String, expected: String = "a non-negative integer") {
        self.variable = variable
        self.value = value
        self.expected = expected
    }

    public var description: String { "\(variable)=\"\(value)\" is not \(expected)" }
}

private func processEnvironment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}
