import ArgumentParser
import Foundation
import STBMessages
import STBRPC

/// `stbctl login`: signs in at the gateway and keeps the session for later commands.
struct LoginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Sign in at the gateway; later commands send the access token and refresh it themselves.",
        discussion: """
            The session is kept in $XDG_CONFIG_HOME/stbctl/token.json (else \
            ~/.config/stbctl/token.json), mode 0600. STB_TOKEN, when set, is sent instead.

            Examples:
              stbctl login --username alice
              echo "$PASSWORD" | stbctl login --username alice --password-stdin
            """
    )

    @Option(help: ArgumentHelp("The username. (default: $STB_USERNAME, else $USER)", valueName: "name"))
    var username: String?

    @Flag(help: "Read the password from the first line of standard input instead of prompting.")
    var passwordStdin = false

    @OptionGroup var gateway: GatewayOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let name = username ?? environment["STB_USERNAME"] ?? environment["USER"] ?? ""
        guard !name.isEmpty else { throw ValidationError("give --username") }
        let password = try readPassword(prompt: "Password for \(name): ", fromStandardInput: passwordStdin)
        let address = gateway.resolvedAddress
        let reply = try await gateway.withGateway(authenticated: false) { client, metadata in
            var request = Stb_Gateway_V1_LoginRequest()
            request.username = name
            request.password = password
            return try await client.unary(Stb_Gateway_V1_Auth.login, request: request, metadata: metadata, timeout: gateway.callTimeout)
        }
        try TokenCache(gateway: address, reply: reply).save()
        Terminal.write("logged in as \(reply.user?.username ?? name) (\(roleName(reply.user?.role ?? .unspecified))) at \(address)")
    }
}

/// `stbctl logout`: ends the session at the gateway and forgets it.
struct LogoutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logout", abstract: "End the stored session (its refresh tokens are revoked).")

    @OptionGroup var gateway: GatewayOptions

    func run() async throws {
        guard let cache = TokenCache.load() else {
            Terminal.write("not logged in")
            return
        }
        _ = try await gateway.withGateway(authenticated: false) { client, metadata in
            var request = Stb_Gateway_V1_LogoutRequest()
            request.refreshToken = cache.refreshToken
            return try await client.unary(Stb_Gateway_V1_Auth.logout, request: request, metadata: metadata, timeout: gateway.callTimeout)
        }
        TokenCache.remove()
        Terminal.write("logged out")
    }
}

/// `stbctl whoami`: the caller as the gateway sees them.
struct WhoAmICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "whoami", abstract: "Show who the access token names.")

    @OptionGroup var gateway: GatewayOptions

    func run() async throws {
        let user = try await gateway.withGateway { client, metadata in
            try await client.unary(Stb_Gateway_V1_Auth.whoAmI, request: Stb_Gateway_V1_WhoAmIRequest(), metadata: metadata, timeout: gateway.callTimeout)
        }
        var table = Table(header: ["USERNAME", "ROLE", "STATE", "NAME", "EMAIL", "ID"])
        table.append(userRow(user))
        Terminal.write(table.text)
    }
}

/// `stbctl passwd`: the caller changes their own password; other sessions end, this one
/// goes on.
struct PasswordCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passwd", abstract: "Change your own password (your other sessions end).")

    @Flag(help: "Read the current and the new password from the first two lines of standard input.")
    var passwordStdin = false

    @OptionGroup var gateway: GatewayOptions

    func run() async throws {
        let current = try readPassword(prompt: "Current password: ", fromStandardInput: passwordStdin)
        let new = try readPassword(prompt: "New password: ", fromStandardInput: passwordStdin)
        if !passwordStdin {
            guard try readPassword(prompt: "New password again: ", fromStandardInput: false) == new else {
                throw CommandFailure("the new passwords differ")
            }
        }
        _ = try await gateway.withGateway { client, metadata in
            var request = Stb_Gateway_V1_ChangePasswordRequest()
            request.currentPassword = current
            request.newPassword = new
            request.refreshToken = TokenCache.load()?.refreshToken ?? ""
            return try await client.unary(Stb_Gateway_V1_Auth.changePassword, request: request, metadata: metadata, timeout: gateway.callTimeout)
        }
        Terminal.write("password changed")
    }
}
