import STBMessages
import STBPostgres
import STBRPC
import STBRules
import STBService

// The rules service: configuration from the environment (`RulesConfiguration`,
// documented in the README), run by the shared daemon, with the catalog copy it follows.
let daemon = ServiceDaemon(name: "rules")
let configuration = daemon.configuration(RulesConfiguration.init(environment:))
await daemon.run(configuration.service, channels: [RulesService.channel]) { assembly in
    let service = RulesService(pool: assembly.pool, signal: assembly.listener.signal, logger: assembly.logger)
    try await service.reloadRules()
    // Health is NOT_SERVING until a copy of the catalog exists, and while the copy is
    // behind a revision the catalog announced but that cannot be fetched; it stays SERVING
    // from the last copy while the catalog is unreachable and nothing newer is known.
    let publishHealth: @Sendable () -> Void = { [health = assembly.health] in
        let status: HealthService.Status = service.isServing ? .serving : .notServing
        health.setStatus(status, forService: "")
        health.setStatus(status, forService: "stb.rules.v1.Rules")
    }
    publishHealth()
    // The copy follows the catalog as the rules service account.
    let credentials = try configuration.service.auth.serviceCredentials(logger: assembly.logger)
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
    return ServiceParts(rpcServices: [service], outbox: service.outbox, background: [replica, service.ruleChangesFollower])
}
