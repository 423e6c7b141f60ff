import ArgumentParser
import Foundation
import STBMessages
import STBRPC

/// Where the gateway is, for the commands that talk to it (login, logout, whoami, users).
struct GatewayOptions: ParsableArguments {
    @Option(
        name: .customLong("gateway-addr"),
        help: ArgumentHelp(
            "The gateway's address. (default: the logged-in session's, else $STB_GATEWAY_ADDR, else \(GatewayClient.fallbackAddress))",
            valueName: "host:port"))
    var address: String?

    @Option(help: ArgumentHelp("Seconds to wait for each call. (default: 10)", valueName: "seconds"), transform: Seconds.parse)
    var timeout: Seconds = Seconds(10)

    /// The address as given, else the stored session's, else the environment's or the default.
    var resolvedAddress: String {
        if let address { return address }
        if let cache = TokenCache.load() { return cache.gateway }
        if let env = ProcessInfo.processInfo.environment["STB_GATEWAY_ADDR"], !env.isEmpty { return env }
        return GatewayClient.fallbackAddress
    }

    var callTimeout: Duration { .milliseconds(Int64((timeout.value * 1000).rounded(.up))) }

    /// Runs `body` against the gateway with the caller's access token; errors read as the
    /// other commands' do.
    func withGateway<Value: Sendable>(authenticated: Bool = true, _ body: (RPCClient, Metadata) async throws -> Value) async throws -> Value {
        let address = resolvedAddress
        do {
            var token = Metadata()
            if authenticated {
                token = try await sessionMetadata(timeout: callTimeout)
                if token.isEmpty { throw CommandFailure("not logged in: run `stbctl login` (or set STB_TOKEN)") }
            }
            return try await GatewayClient.call(address: address, timeout: callTimeout) { client, metadata in
                var metadata = metadata
                metadata.add(contentsOf: token)
                return try await body(client, metadata)
            }
        } catch let error as RPCError {
            let status = error.message.isEmpty ? "\(error.code)" : "\(error.code): \(error.message)"
            if error.code == .unavailable { throw CommandFailure("cannot reach the gateway at \(address) (\(status))") }
            throw CommandFailure(([status] + GlobalOptions.detailLines(error)).joined(separator: "\n"))
        }
    }
}

/// Reads a password: the first line of standard input with `--password-stdin`, else from
/// the terminal without echo.
func readPassword(prompt: String, fromStandardInput: Bool) throws -> String {
    if fromStandardInput {
        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
            throw CommandFailure("no password on standard input")
        }
        return line
    }
    guard isatty(STDIN_FILENO) == 1 else {
        throw CommandFailure("standard input is not a terminal: pass the password with --password-stdin")
    }
    var saved = termios()
    tcgetattr(STDIN_FILENO, &saved)
    var silent = saved
    silent.c_lflag &= ~tcflag_t(ECHO)
    FileHandle.standardError.write(Data(prompt.utf8))
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent)
    let line = readLine(strippingNewline: true)
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
    FileHandle.standardError.write(Data("\n".utf8))
    guard let line, !line.isEmpty else { throw CommandFailure("no password given") }
    return line
}

/// A user as one line of a table.
func userRow(_ user: Stb_Gateway_V1_User) -> [String] {
    [user.username, roleName(user.role), user.enabled ? "enabled" : "disabled", user.displayName, user.email, user.id]
}

func roleName(_ role: Stb_Gateway_V1_Role) -> String {
    switch role {
    case .viewer: "viewer"
    case .operator: "operator"
    case .engineer: "engineer"
    case .admin: "admin"
    case .service: "service"
    default: "unspecified"
    }
}

/// The role `text` names (a user role).
func parseRole(_ text: String) throws -> Stb_Gateway_V1_Role {
    switch text.lowercased() {
    case "viewer": .viewer
    case "operator": .operator
    case "engineer": .engineer
    case "admin": .admin
    default: throw ValidationError("role must be viewer, operator, engineer or admin")
    }
}
