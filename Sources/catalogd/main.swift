import STBCatalog
import STBPostgres
import STBService

// The catalog service: configuration from the environment (`CatalogConfiguration`,
// documented in the README), run by the shared daemon.
let daemon = ServiceDaemon(name: "catalog")
let configuration = daemon.configuration(CatalogConfiguration.init(environment:))
await daemon.run(configuration.service, channels: [CatalogService.channel]) { assembly in
    let service = CatalogService(pool: assembly.pool, signal: assembly.listener.signal, logger: assembly.logger)
    return ServiceParts(rpcServices: [service], outbox: service.outbox)
}
