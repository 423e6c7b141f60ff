import ServiceLifecycle
import STBService
import STBStubs

// The stub server: configuration from the environment (`StubsConfiguration`, documented
// in the README), run by the shared daemon; mocks of the platform's services answer from
// the stubs of the file (`STUBS_FILE`, re-read on change) and of the admin API.
let daemon = ServiceDaemon(name: "stubs", executable: "stubd")
let configuration = daemon.configuration(StubsConfiguration.init(environment:))
await daemon.run(configuration.service, channels: []) { assembly in
    let registry = StubRegistry()
    let journal = StubJournal(capacity: configuration.journalSize)
    let mocks = MockHost(registry: registry, journal: journal, host: configuration.mockHost, logger: assembly.logger)
    let service = StubsService(pool: assembly.pool, registry: registry, journal: journal, mocks: mocks, logger: assembly.logger)
    var background: [any Service] = [MockShutdown(mocks: mocks)]
    if let path = configuration.stubFile {
        let watcher = StubFileWatcher(path: path, registry: registry, mocks: mocks, logger: assembly.logger)
        try await watcher.load()
        background.append(watcher)
    }
    try await service.restore()
    return ServiceParts(rpcServices: [service], background: background)
}
