import Logging
import Metrics
import STBMessages
import STBPostgres
import STBRPC
import ServiceLifecycle
import Synchronization

/// A local copy of the catalog's assembled configuration, kept current by following the
/// catalog's `Watch` stream, so evaluation never calls the catalog on its hot path.
///
/// Start-up fetches `GetConfig`; every change event then triggers a `GetConfig` with the
/// known revision (coalesced: a burst of events costs one fetch). When the catalog is
/// unreachable the last copy keeps serving (nothing newer is known); the loop reconnects
/// with backoff. When the catalog has announced a newer revision that cannot be fetched,
/// the copy is `behind` and says so, instead of answering as if current.
///
/// A `Service`: a service group runs it (`run()`) until shutdown; `start()` and `stop()`
/// run it on its own, for tests and tools.
public final class CatalogReplica: Service, Sendable {
    /// Whether the copy is as new as the newest revision the catalog has announced.
    public enum Freshness: Sendable, Equatable {
        case current
        /// The catalog is at `announced` (or later), the copy holds `have`, and fetching failed.
        case behind(have: UInt64, announced: UInt64, reason: String)
    }

    /// The largest `GetConfig` reply the copy accepts by default: whatever the wire can
    /// carry, since the catalog accepts catalogs of any size.
    public static let defaultMaxMessageSize = Int(UInt32.max)

    private let client: RPCClient
    private let logger: Logger
    private let current = Mutex<Stb_Catalog_V1_GetConfigResponse?>(nil)
    private let progress = Mutex<(announced: UInt64, freshness: Freshness)>((0, .current))
    private let changed = ChangeSignal()
    private let standalone = Mutex<Task<Void, Never>?>(nil)
    private let onUpdate: @Sendable (Stb_Catalog_V1_GetConfigResponse) -> Void
    private let onFreshnessChange: @Sendable (Freshness) -> Void
    private let revisionGauge = Meter(label: ServiceMetricName.replicaRevision, dimensions: [("source", "catalog")])
    private let announcedGauge = Meter(label: ServiceMetricName.replicaAnnouncedRevision, dimensions: [("source", "catalog")])

    /// `onUpdate` runs with each new configuration (a new revision); `onFreshnessChange`
    /// when the copy falls behind or catches up. `credentials` is how the copy presents
    /// itself to the catalog (the rules service account's token).
    public init(
        host: String, port: Int, maxMessageSize: Int = CatalogReplica.defaultMaxMessageSize,
        credentials: (any CallCredentials)?, logger: Logger,
        onFreshnessChange: @escaping @Sendable (Freshness) -> Void = { _ in },
        onUpdate: @escaping @Sendable (Stb_Catalog_V1_GetConfigResponse) -> Void
    ) throws {
        var configuration = RPCClient.Configuration()
        configuration.maxReceiveMessageSize = maxMessageSize
        configuration.credentials = credentials
        self.client = try RPCClient(host: host, port: port, configuration: configuration)
        self.logger = logger
        self.onUpdate = onUpdate
        self.onFreshnessChange = onFreshnessChange
    }

    /// Whether the copy is current or known to be behind.
    public var freshness: Freshness { progress.withLock { $0.freshness } }

    /// The newest copy, if any was ever fetched.
    public var configuration: Stb_Catalog_V1_GetConfigResponse? { current.withLock { $0 } }

    /// Follows the catalog until cancelled or the service group shuts down, then closes
    /// the connection to it.
    public func run() async {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.followForever() }
                group.addTask { await self.refreshOnChange() }
            }
        }
        await client.close()
    }

    /// Runs the copy outside a service group, until `stop()`.
    public func start() {
        let task = Task { await self.run() }
        standalone.withLock { $0 = task }
    }

    /// Stops a copy started with `start()`.
    public func stop() async {
        guard let task = standalone.withLock({ $0.take() }) else {
            await client.close()
            return
        }
        task.cancel()
        await task.value
    }

    /// Fetches the configuration now (start-up, tests); returns it when it changed.
    @discardableResult
    public func refresh() async throws -> Stb_Catalog_V1_GetConfigResponse? {
        var request = Stb_Catalog_V1_GetConfigRequest()
        request.knownRevision = current.withLock { $0?.revision ?? 0 }
        let reply: Stb_Catalog_V1_GetConfigResponse
        do {
            reply = try await client.unary(Stb_Catalog_V1_Catalog.getConfig, request: request, timeout: .seconds(30))
        } catch {
            fetchFailed(error)
            throw error
        }
        fetched(revision: reply.unchanged ? request.knownRevision : reply.revision)
        if reply.unchanged { return nil }
        let stored = current.withLock { stored -> Bool in
            if let existing = stored, existing.revision > reply.revision { return false }
            stored = reply
            return true
        }
        guard stored else { return nil }
        revisionGauge.set(reply.revision)
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
                    for try await event in stream {
                        announced(revision: event.revision)
                        changed.bump()
                    }
                }
            } catch {
                if Task.isCancelled { return }
                if (error as? RPCError)?.code == .resourceExhausted { fetchFailed(error) }
                logger.warning("following the catalog failed; retrying", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }

    private func announced(revision: UInt64) {
        let announced = progress.withLock { progress in
            progress.announced = max(progress.announced, revision)
            return progress.announced
        }
        announcedGauge.set(announced)
    }

    private func fetched(revision: UInt64) {
        let caughtUp = progress.withLock { progress -> Bool in
            progress.announced = max(progress.announced, revision)
            guard case .behind = progress.freshness, revision >= progress.announced else { return false }
            progress.freshness = .current
            return true
        }
        if caughtUp {
            logger.notice("catalog copy is current again", metadata: ["revision": "\(revision)"])
            onFreshnessChange(.current)
        }
    }

    private func fetchFailed(_ error: any Error) {
        let have = current.withLock { $0?.revision ?? 0 }
        let reason = (error as? RPCError).map { "\($0.code): \($0.message)" } ?? "\(error)"
        // A reply too large to accept means the catalog has something newer for us, even
        // when its announcement (a change event) was itself too large to read.
        let tooLarge = (error as? RPCError)?.code == .resourceExhausted
        let freshness = progress.withLock { progress -> Freshness? in
            if tooLarge { progress.announced = max(progress.announced, have + 1) }
            guard progress.announced > have else { return nil }
            let behind = Freshness.behind(have: have, announced: progress.announced, reason: reason)
            guard progress.freshness != behind else { return nil }
            progress.freshness = behind
            return behind
        }
        if let freshness {
            logger.error("catalog copy is behind and cannot be refreshed", metadata: [
                "have": "\(have)", "announced": "\(progress.withLock { $0.announced })", "error": "\(reason)",
            ])
            onFreshnessChange(freshness)
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
