import ArgumentParser
import Foundation

/// The options every command takes: where the catalog, the rules service and the project
/// service are, how long to wait.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .customLong("addr"),
        help: ArgumentHelp(
            "The catalog's address. (default: $STB_CATALOG_ADDR, else \(GlobalOptions.fallbackAddress))",
            valueName: "host:port"))
    var address: String?

    @Option(
        name: .customLong("rules-addr"),
        help: ArgumentHelp(
            "The rules service's address. (default: $STB_RULES_ADDR, else \(GlobalOptions.fallbackRulesAddress))",
            valueName: "host:port"))
    var rulesAddress: String?

    @Option(
        name: .customLong("project-addr"),
        help: ArgumentHelp(
            "The project service's address. (default: $STB_PROJECT_ADDR, else \(GlobalOptions.fallbackProjectAddress))",
            valueName: "host:port"))
    var projectAddress: String?

    @Option(
        help: ArgumentHelp("Seconds to wait for each call; watch waits forever. (default: 10)", valueName: "seconds"),
        transform: Seconds.parse)
    var timeout: Seconds = Seconds(10)

    static let fallbackAddress = "127.0.0.1:50051"
    static let fallbackRulesAddress = "127.0.0.1:50052"
    static let fallbackProjectAddress = "127.0.0.1:50053"

    func validate() throws {
        _ = try endpoint()
        _ = try rulesEndpoint()
        _ = try projectEndpoint()
    }

    /// The address text as given or defaulted.
    var resolvedAddress: String {
        if let address { return address }
        if let env = ProcessInfo.processInfo.environment["STB_CATALOG_ADDR"], !env.isEmpty { return env }
        return Self.fallbackAddress
    }

    /// The rules service's address text as given or defaulted.
    var resolvedRulesAddress: String {
        if let rulesAddress { return rulesAddress }
        if let env = ProcessInfo.processInfo.environment["STB_RULES_ADDR"], !env.isEmpty { return env }
        return Self.fallbackRulesAddress
    }

    /// The project service's address text as given or defaulted.
    var resolvedProjectAddress: String {
        if let projectAddress { return projectAddress }
        if let env = ProcessInfo.processInfo.environment["STB_PROJECT_ADDR"], !env.isEmpty { return env }
        return Self.fallbackProjectAddress
    }

    /// The deadline for one unary call.
    var callTimeout: Duration {
        .milliseconds(Int64((timeout.value * 1000).rounded(.up)))
    }

    /// Host and port from `resolvedAddress`: `host:port` or `[v6addr]:port`.
    func endpoint() throws(ValidationError) -> (host: String, port: Int) {
        let origin = address == nil ? " (from STB_CATALOG_ADDR)" : ""
        return try Self.endpoint(resolvedAddress, of: "catalog", origin: origin)
    }

    /// Host and port from `resolvedRulesAddress`.
    func rulesEndpoint() throws(ValidationError) -> (host: String, port: Int) {
        let origin = rulesAddress == nil ? " (from STB_RULES_ADDR)" : ""
        return try Self.endpoint(resolvedRulesAddress, of: "rules service", origin: origin)
    }

    /// Host and port from `resolvedProjectAddress`.
    func projectEndpoint() throws(ValidationError) -> (host: String, port: Int) {
        let origin = projectAddress == nil ? " (from STB_PROJECT_ADDR)" : ""
        return try Self.endpoint(resolvedProjectAddress, of: "project service", origin: origin)
    }

    private static func endpoint(_ text: String, of service: String, origin: String) throws(ValidationError) -> (
        host: String, port: Int
    ) {
        let invalid = ValidationError("the \(service) address '\(text)'\(origin) is not host:port.")
        guard let colon = text.lastIndex(of: ":") else { throw invalid }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            throw invalid
        }
        return (host, port)
    }
}

/// A number of seconds above 0, up to a day; fractions allowed.
struct Seconds: CustomStringConvertible {
    let value: Double

    init(_ value: Double) {
        self.value = value
    }

    static func parse(_ argument: String) throws -> Seconds {
        guard let value = Double(argument), value > 0, value <= 86_400 else {
            throw ValidationError("expected a number of seconds above 0, up to 86400")
        }
        return Seconds(value)
    }

    /// `10` rather than `10.0`.
    var description: String {
        value.rounded() == value ? String(Int64(value)) : String(value)
    }
}
