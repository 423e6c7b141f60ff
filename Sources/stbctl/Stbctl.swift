import ArgumentParser
import Foundation

/// `stbctl`: the command-line client of the STB configuration services.
@main
struct Stbctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stbctl",
        abstract: "Inspect and change the STB catalog (modules, groups, options, states, transitions) and its rules.",
        discussion: """
            The catalog commands talk gRPC to catalogd (--addr); `rules`, `evaluate`, \
            `fire` and `events` talk to rulesd (--rules-addr); `project` to projectd \
            (--project-addr). Entities are named by key:

              module      video
              group       video/output            (module/group)
              option      hdr                     (option keys are global)
              state       video/idle              (module/state)
              transition  video/idle/ENABLE_4K    (module/from-state/EVENT)

            A REF made only of digits is an id instead.

            Environment:
              STB_CATALOG_ADDR   default for --addr (else 127.0.0.1:50051)
              STB_RULES_ADDR     default for --rules-addr (else 127.0.0.1:50052)
              STB_PROJECT_ADDR   default for --project-addr (else 127.0.0.1:50053)
              STB_TOKEN          access token sent as `authorization: Bearer` on every call
                                 (else the session `stbctl login` stored, refreshed as needed)
              STB_GATEWAY_ADDR   the gateway, for login, logout, whoami, users, alarms and
                                 dashboards
                                 (else 127.0.0.1:50050)

            Exit status: 0 on success, 1 when a service refuses a call or cannot be
            reached (the message reads "stbctl: STATUS: message") and when `evaluate`
            finds the selection invalid, 2 for a usage error, 3 for `rules check --strict`
            with findings.

            Examples:
              stbctl seed import services/catalog/seeds/demo.json --dry-run
              stbctl config --module video
              stbctl get option hdr_enabled
              stbctl update option hdr_enabled --default false
              stbctl watch
              stbctl rules import services/catalog/seeds/demo.json
              stbctl rules check
              stbctl evaluate services/catalog/seeds/demo-selection.json
              stbctl fire video idle ENABLE_4K --context '{"hdmi_version": "2.1", "hdcp_version": "2.2"}'
              stbctl project show demo --overrides
            """,
        subcommands: [
            ConfigCommand.self,
            GetCommand.self,
            ListCommand.self,
            CreateCommand.self,
            UpdateCommand.self,
            DeleteCommand.self,
            SeedCommand.self,
            WatchCommand.self,
            SubscribeCommand.self,
            SessionsCommand.self,
            RulesCommand.self,
            EvaluateCommand.self,
            FireCommand.self,
            EventsCommand.self,
            LoginCommand.self,
            LogoutCommand.self,
            WhoAmICommand.self,
            PasswordCommand.self,
            UsersCommand.self,
            ProjectCommand.self,
            StubsCommand.self,
            ScenarioCommand.self,
            AlarmsCommand.self,
            DashboardsCommand.self,
        ]
    )

    // Declared here too so that the connection options may also come before the
    // subcommand (`stbctl --addr h:p get …`); the subcommands read the same values.
    @OptionGroup var global: GlobalOptions

    /// Runs the command line. Unlike the default `main`, failures of the catalog are
    /// printed as `stbctl: STATUS: message` (exit 1) and usage errors exit 2.
    static func main() async {
        do {
            var command = try await asyncParseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as CommandFailure {
            Terminal.fail(failure.message)
        } catch {
            let code = exitCode(for: error)
            if code.rawValue == ExitCode.validationFailure.rawValue {
                // ArgumentParser exits 64 (EX_USAGE); stbctl promises 2, like most Unix tools.
                Terminal.writeError(fullMessage(for: error))
                Terminal.exit(2)
            }
            exit(withError: error)
        }
    }
}
