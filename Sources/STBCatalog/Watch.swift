import STBPostgres

extension CatalogService {
    /// Deletes change events older than `retentionSeconds` that every reader could have
    /// seen; a watcher behind them must resync. Returns how many were deleted.
    public func pruneEvents(retentionSeconds: Int64) async throws -> Int {
        try await outbox.prune(retentionSeconds: retentionSeconds, pool: pool)
    }
}
