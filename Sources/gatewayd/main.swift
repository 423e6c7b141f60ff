import Glibc
import STBGateway
import STBPostgres
import STBRPC
import STBService
import ServiceLifecycle

// The gateway: configuration from the environment (`GatewayConfiguration`,
// `RealtimeConfiguration`, documented in the README), run by the shared daemon;
// `gatewayd bootstrap-admin|rotate-key` are one-shot commands (`GatewayCommands`).
let daemon = ServiceDaemon(name: "gateway")
let configuration = daemon.configuration(GatewayConfiguration.init(environment:))
if let status = await GatewayCommands.run(Array(CommandLine.arguments.dropFirst()), daemon: daemon, configuration: configuration) {
    exit(status)
}
let realtimeConfiguration = daemon.configuration(RealtimeConfiguration.init(environment:))
// Alarms and the realtime topics share the gateway's own outbox (channel gateway_events).
await daemon.run(configuration.service, channels: [AlarmBook.outbox.channel]) { assembly in
    let keys = try await KeyRing.load(pool: assembly.pool, sealingKey: configuration.keyEncryptionKey, accessLifetime: configuration.accessLifetime)
    let service = GatewayService(pool: assembly.pool, keys: keys, configuration: configuration, logger: assembly.logger)
    try await service.prepare()
    let rotation = KeyRotation(keys: keys, rotationDays: configuration.keyRotationDays, logger: assembly.logger)
    let book = AlarmBook(pool: assembly.pool)
    var background: [any Service] = [rotation, AlarmRetention(book: book, days: configuration.alarmRetentionDays, logger: assembly.logger)]
    var visibility = ProjectVisibility.adminsOnly
    if let project = configuration.projectAddress {
        // The project feed and memberships are read as the gateway's own service account.
        var client = RPCClient.Configuration()
        client.credentials = GatewayCredentials(service: service)
        let projects = try RPCClient(host: project.host, port: project.port, configuration: client)
        visibility = .projectService(projects)
        background.append(AlarmFollower(book: book, projects: projects, logger: assembly.logger))
    }
    let alarms = AlarmsService(pool: assembly.pool, signal: assembly.listener.signal, visibility: visibility)
    let realtime = try await RealtimeAssembly.make(configuration: realtimeConfiguration, gateway: service, keys: keys, assembly: assembly)
    // The browser dashboard: its files, sign-in with cookies, and /events.
    let web = WebRoutes.make(gateway: service, realtime: realtime.service, webDirectory: WebRoutes.webDirectory(environment: daemon.environment))
    // Tokens are verified with the gateway's own keys: nothing to fetch.
    return ServiceParts(
        rpcServices: [service, alarms, DashboardsService(pool: assembly.pool), realtime.service], outbox: AlarmBook.outbox,
        background: background + realtime.background, keySource: CurrentKeys { keys.published }, httpRoutes: web)
}
