import STBMessages
import STBOptionValues
import STBPostgres
import STBRPC
import STBService

extension CatalogService {
    /// The assembled catalog. Served over RPC from the cache's pre-encoded bytes (see
    /// `register(in:)`); this decoded form is for callers in the same process.
    public func getConfig(_ request: Stb_Catalog_V1_GetConfigRequest, context: ServerContext) async throws -> Stb_Catalog_V1_GetConfigResponse {
        try Stb_Catalog_V1_GetConfigResponse(serializedBytes: try await cache.reply(to: request).bytes)
    }

    public func importSeed(_ request: Stb_Catalog_V1_ImportSeedRequest, context: ServerContext) async throws -> Stb_Catalog_V1_ImportSeedResponse {
        try await SeedImporter(service: self).importSeed(request, caller: context.caller)
    }

    public func watch(_ request: Stb_Catalog_V1_WatchRequest, writer: RPCWriter<Stb_Catalog_V1_ChangeEvent>, context: ServerContext) async throws {
        try await STBService.watch(after: request.after, feed: feed, reload: "reload with GetConfig and watch from its cursor", to: writer) { stored in
            var event = try stored.payload.withUnsafeBytes { try Stb_Catalog_V1_ChangeEvent(serializedBytes: $0) }
            event.cursor = stored.cursor.description
            return event
        }
    }

    /// Deletes change events older than `retentionSeconds`; a watcher behind them must
    /// resync. Returns how many were deleted.
    public func pruneEvents(retentionSeconds: Int64) async throws -> Int {
        try await outbox.prune(retentionSeconds: retentionSeconds, pool: pool)
    }
}
