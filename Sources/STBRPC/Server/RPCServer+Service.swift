import ServiceLifecycle

extension RPCServer: Service {
    /// Serves until a graceful shutdown: listens (unless `start()` already did), then, when
    /// the service group shuts down gracefully (SIGTERM, SIGINT), sets health to
    /// NOT_SERVING, sends GOAWAY and lets running calls finish within
    /// `configuration.shutdownGracePeriod` before closing. Cancellation closes at once.
    public func run() async throws {
        try await start()
        do {
            try await gracefulShutdown()
            await shutdown(gracePeriod: configuration.shutdownGracePeriod)
        } catch {
            await shutdown(gracePeriod: .zero)
        }
    }
}
