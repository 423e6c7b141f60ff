import STBMessages
import STBPostgres
import STBProject
import STBRPC
import STBService

// The project service: configuration from the environment (`ProjectConfiguration`,
// documented in the README), run by the shared daemon, with the catalog copy it builds
// configurations from and the rules service that checks every selection.
let daemon = ServiceDaemon(name: "project")
let configuration = daemon.configuration(ProjectConfiguration.init(environment:))
await daemon.run(configuration.service, channels: [ProjectService.channel]) { assembly in
    // Outgoing calls present the project service account's token, unless a user's token
    // is forwarded (SetOptions checks a selection as the user who asked).
    let credentials = try configuration.service.auth.serviceCredentials(logger: assembly.logger)
    var rulesClient = RPCClient.Configuration()
    rulesClient.credentials = credentials
    let rules = try RPCClient(host: configuration.rulesHost, port: configuration.rulesPort, configuration: rulesClient)
    var gatewayClient = RPCClient.Configuration()
    gatewayClient.credentials = credentials
    let gateway = try RPCClient(
        host: configuration.service.auth.gateway.host, port: configuration.service.auth.gateway.port, configuration: gatewayClient)
    let service = ProjectService(
        pool: assembly.pool, signal: assembly.listener.signal, rules: rules, gateway: gateway,
        driftConcurrency: configuration.driftConcurrency, logger: assembly.logger)
    // Health is NOT_SERVING until a current copy of the catalog exists.
    let publishHealth: @Sendable () -> Void = { [health = assembly.health] in
        let status: HealthService.Status = service.isServing ? .serving : .notServing
        health.setStatus(status, forService: "")
        health.setStatus(status, forService: "stb.project.v1.Projects")
    }
    publishHealth()
    let replica = try CatalogReplica(
        host: configuration.catalogHost, port: configuration.catalogPort, credentials: credentials, logger: assembly.logger,
        onFreshnessChange: { freshness in
            service.catalogFreshnessChanged(freshness)
            publishHealth()
        },
        onUpdate: { catalog in
            service.catalogChanged(catalog)
            publishHealth()
        }
    )
    return ServiceParts(rpcServices: [service], outbox: service.outbox, background: [replica, service.driftFollower, service.rulesFollower(), service.cacheFollower()])
}
