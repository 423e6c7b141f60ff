import ArgumentParser
import STBMessages
import STBRPC

/// `stbctl users …`: user administration at the gateway (role admin).
struct UsersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users",
        abstract: "Manage user accounts at the gateway (admins only).",
        discussion: """
            Examples:
              stbctl users list
              echo "$PASSWORD" | stbctl users create bob --role engineer --name "Bob B" --password-stdin
              stbctl users update bob --role operator
              stbctl users set-password bob --password-stdin < password.txt
              stbctl users disable bob
            """,
        subcommands: [List.self, Create.self, Update.self, SetPassword.self, Disable.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the accounts.")
        @OptionGroup var gateway: GatewayOptions

        func run() async throws {
            let users = try await gateway.withGateway { client, metadata in
                var users: [Stb_Gateway_V1_User] = []
                var token = ""
                repeat {
                    var request = Stb_Gateway_V1_ListUsersRequest()
                    request.page = Stb_Common_V1_PageRequest(pageSize: 500, pageToken: token)
                    let reply = try await client.unary(Stb_Gateway_V1_Auth.listUsers, request: request, metadata: metadata, timeout: gateway.callTimeout)
                    users += reply.users
                    guard reply.page?.nextPageToken != token else { break }
                    token = reply.page?.nextPageToken ?? ""
                } while !token.isEmpty
                return users
            }
            var table = Table(header: ["USERNAME", "ROLE", "STATE", "NAME", "EMAIL", "ID"])
            for user in users { table.append(userRow(user)) }
            Terminal.write(table.text)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Create an account.")
        @Argument(help: "The username.") var username: String
        @Option(help: "viewer, operator, engineer or admin.", transform: parseRole) var role: Stb_Gateway_V1_Role
        @Option(help: "The display name.") var name = ""
        @Option(help: "The email address.") var email = ""
        @Flag(help: "Read the password from standard input instead of prompting.") var passwordStdin = false
        @OptionGroup var gateway: GatewayOptions

        func run() async throws {
            let password = try readPassword(prompt: "Password for \(username): ", fromStandardInput: passwordStdin)
            let user = try await gateway.withGateway { client, metadata in
                var request = Stb_Gateway_V1_CreateUserRequest()
                request.username = username
                request.role = role
                request.displayName = name
                request.email = email
                request.password = password
                return try await client.unary(Stb_Gateway_V1_Auth.createUser, request: request, metadata: metadata, timeout: gateway.callTimeout)
            }
            Terminal.write("created \(user.username) (\(roleName(user.role)))")
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "update", abstract: "Change an account's role, name, email or state.")
        @Argument(help: "The username or id.") var user: String
        @Option(help: "viewer, operator, engineer or admin.", transform: parseRole) var role: Stb_Gateway_V1_Role?
        @Option(help: "The display name.") var name: String?
        @Option(help: "The email address.") var email: String?
        @Option(help: "true to enable, false to disable.") var enabled: Bool?
        @OptionGroup var gateway: GatewayOptions

        func run() async throws {
            let updated = try await gateway.withGateway { client, metadata in
                var request = Stb_Gateway_V1_UpdateUserRequest()
                request.user = user
                request.role = role
                request.displayName = name
                request.email = email
                request.enabled = enabled
                return try await client.unary(Stb_Gateway_V1_Auth.updateUser, request: request, metadata: metadata, timeout: gateway.callTimeout)
            }
            var table = Table(header: ["USERNAME", "ROLE", "STATE", "NAME", "EMAIL", "ID"])
            table.append(userRow(updated))
            Terminal.write(table.text)
        }
    }

    struct SetPassword: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set-password", abstract: "Set an account's password (its sessions end).")
        @Argument(help: "The username or id.") var user: String
        @Flag(help: "Read the password from standard input instead of prompting.") var passwordStdin = false
        @OptionGroup var gateway: GatewayOptions

        func run() async throws {
            let password = try readPassword(prompt: "New password for \(user): ", fromStandardInput: passwordStdin)
            _ = try await gateway.withGateway { client, metadata in
                var request = Stb_Gateway_V1_SetPasswordRequest()
                request.user = user
                request.newPassword = password
                return try await client.unary(Stb_Gateway_V1_Auth.setPassword, request: request, metadata: metadata, timeout: gateway.callTimeout)
            }
            Terminal.write("password of \(user) set")
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "disable", abstract: "Disable an account (its sessions end).")
        @Argument(help: "The username or id.") var user: String
        @OptionGroup var gateway: GatewayOptions

        func run() async throws {
            let disabled = try await gateway.withGateway { client, metadata in
                var request = Stb_Gateway_V1_DisableUserRequest()
                request.user = user
                return try await client.unary(Stb_Gateway_V1_Auth.disableUser, request: request, metadata: metadata, timeout: gateway.callTimeout)
            }
            Terminal.write("disabled \(disabled.username)")
        }
    }
}
