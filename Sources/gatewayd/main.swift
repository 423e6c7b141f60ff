import Glibc
import STBGateway
import STBPostgres
import STBService

// The gateway: configuration from the environment (`GatewayConfiguration`,
// `RealtimeConfiguration`, documented in the README), run by the shared daemon;
// `gatewayd bootstrap-admin|rotate-key` are one-shot commands (`GatewayCommands`).
let daemon = ServiceDaemon(name: "gateway")
let configuration = daemon.configuration(GatewayConfiguration.init(environment:))
if let status = await GatewayCommands.run(Array(CommandLine.arguments.dropFirst()), daemon: daemon, configuration: configuration) {
    exit(status)
}
let realtimeConfiguration = daemon.configuration(RealtimeConfiguration.init(environment:))
await daemon.run(configuration.service, channels: [RealtimeAssembly.outbox.channel]) { assembly in
    let keys = try await KeyRing.load(pool: assembly.pool, sealingKey: configuration.keyEncryptionKey, accessLifetime: configuration.accessLifetime)
    let service = GatewayService(pool: assembly.pool, keys: keys, configuration: configuration, logger: assembly.logger)
    try await service.prepare()
    let rotation = KeyRotation(keys: keys, rotationDays: configuration.keyRotationDays, logger: assembly.logger)
    let realtime = try await RealtimeAssembly.make(configuration: realtimeConfiguration, gateway: service, keys: keys, assembly: assembly)
    // Tokens are verified with the gateway's own keys: nothing to fetch.
    return ServiceParts(
        rpcServices: [service, realtime.service], outbox: RealtimeAssembly.outbox,
        background: [rotation] + realtime.background, keySource: CurrentKeys { keys.published })
}
