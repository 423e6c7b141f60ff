import Logging
import STBMessages
import STBPostgres
import STBRPC
import Synchronization

/// A local copy of the catalog's assembled configuration, kept current by following the
/// catalog's `Watch` stream, so evaluation never calls the catalog on its hot path.
///
/// Start-up fetches `GetConfig`; every change event then triggers a `GetConfig` with the
/// known revision (coalesced: a burst of events costs one fetch). When the catalog is
/// unreachable the last copy keeps serving; the loop reconnects with backoff.
public final class CatalogReplica: Sendable {
    private let client: RPCClient
    private let logger: Logger
    private let current = Mutex<Stb_Catalog_V1_GetConfigResponse?>(nil)
    private let changed = ChangeSignal()
    private let tasks = Mutex<[Task<Void, Never>]>([])
    private let onUpdate: @Sendable (Stb_Catalog_V1_GetConfigResponse) -> Void

    /// `onUpdate` runs with each new configuration (a new revision).
    public init(host: String, port: Int, logger: Logger, onUpdate: @escaping @Sendable (Stb_Catalog_V1_GetConfigResponse) -> Void) throws {
        self.client = try RPCClient(host: host, port: port)
        self.logger = logger
        self.onUpdate = onUpdate
    }

    /// The newest copy, if any was ever fetched.
    public var configuration: Stb_Catalog_V1_GetConfigResponse? { current.withLock { $0 } }

    public func start() {
        let follow = Task { await self.followForever() }
        let refresh = Task { await self.refreshOnChange() }
        tasks.withLock { $0 += [follow, refresh] }
    }

    public func stop() async {
        let running = tasks.withLock { tasks in
            defer { tasks.removeAll() }
            return tasks
        }
        for task in running { task.cancel() }
        for task in running { await task.value }
        await client.close()
    }

    /// Fetches the configuration now (start-up, tests); returns it when it changed.
    @discardableResult
    public func refresh() async throws -> Stb_Catalog_V1_GetConfigResponse? {
        var request = Stb_Catalog_V1_GetConfigRequest()
        request.knownRevision = current.withLock { $0?.revision ?? 0 }
        let reply = try await client.unary(Stb_Catalog_V1_Catalog.getConfig, request: request, timeout: .seconds(30))
        if reply.unchanged { return nil }
        let stored = current.withLock { stored -> Bool in
            if let existing = stored, existing.revision > reply.revision { return false }
            stored = reply
            return true
        }
        guard stored else { return nil }
        onUpdate(reply)
        return reply
    }

    private func followForever() async {
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                try await refresh()
                guard let cursor = configuration?.cursor else { throw RPCError(code: .unavailable, message: "no catalog copy") }
                delay = .milliseconds(100)
                var request = Stb_Catalog_V1_WatchRequest()
                request.after = cursor
                try await client.serverStreaming(Stb_Catalog_V1_Catalog.watch, request: request) { stream in
                    for try await _ in stream { changed.bump() }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("following the catalog failed; retrying", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }

    /// Turns change events into fetches, at most one in flight and one per 20 ms.
    private func refreshOnChange() async {
        var seen = changed.generation
        while !Task.isCancelled {
            seen = await changed.wait(after: seen)
            if Task.isCancelled { return }
            try? await Task.sleep(for: .milliseconds(20))
            seen = changed.generation
            do {
                try await refresh()
            } catch {
                logger.warning("refreshing the catalog copy failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
