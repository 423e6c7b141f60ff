import Logging
import STBAuth
import STBPostgres
import STBRPC
import STBService
import ServiceLifecycle

/// Puts the realtime half of the gateway together: the clients to the upstreams (as the
/// gateway's own service account), a ring, a follower and a fan-out per upstream, the stream
/// sessions, the streams' clock and the `Realtime` service.
///
/// Each upstream client reads on a loop of its own, and its follower runs on that loop: a
/// change read from the upstream is in the ring in the same thread's turn, without waking
/// another thread or waiting in the shared task queue.
public enum RealtimeAssembly {
    /// The gateway's own outbox (alarms), and the channel its commits wake.
    public static let outbox = Outbox(channel: "gateway_events", revisionTable: "gateway_revision")

    public static func make(
        configuration: RealtimeConfiguration, gateway: GatewayService, keys: KeyRing, assembly: ServiceAssembly
    ) async throws -> (service: RealtimeService, background: [any Service]) {
        let pool = assembly.pool
        let epoch = try await pool.query("SELECT epoch FROM realtime_epoch")[0].decode(0, as: String.self)
        let credentials = GatewayServiceCredentials {
            gateway.accessToken(subject: "service:gateway", name: "gateway", role: .service)
        }
        func client(_ address: (host: String, port: Int), credentials: (any CallCredentials)?, group: EventLoopGroup? = nil) throws -> RPCClient {
            var options = RPCClient.Configuration()
            options.maxReceiveMessageSize = Int(UInt32.max)
            options.credentials = credentials
            return try RPCClient(host: address.host, port: address.port, configuration: options, group: group)
        }
        // One loop per followed upstream: its client reads there and its follower runs there.
        var loops: [Upstream: EventLoopGroup] = [:]
        for upstream in [Upstream.catalog, .rules, .project] {
            loops[upstream] = try EventLoopGroup(count: 1, name: "gateway-\(upstream.rawValue)")
        }
        let catalog = try client(configuration.catalog, credentials: credentials, group: loops[.catalog])
        let rules = try client(configuration.rules, credentials: credentials, group: loops[.rules])
        let project = try client(configuration.project, credentials: credentials, group: loops[.project])
        let projectForCallers = try client(configuration.project, credentials: nil)

        let sources: [Upstream: UpstreamSource] = [
            .catalog: .catalog(catalog),
            .rules: .rules(rules),
            .project: .project(project),
            .alarms: .local(OutboxFeed(outbox: outbox, pool: pool, signal: assembly.listener.signal)),
        ]
        var rings: [Upstream: EventRing] = [:]
        var background: [any Service] = []
        for upstream in Upstream.allCases {
            let ring = EventRing(maximumCount: configuration.ringEvents, maximumBytes: configuration.ringBytes)
            rings[upstream] = ring
            if let source = sources[upstream] {
                background.append(UpstreamFollower(
                    source: source, ring: ring, pool: pool, logger: assembly.logger, executor: loops[upstream]?.loops[0]))
            }
        }
        let sessions = StreamSessions(pool: pool, quotas: configuration.quotas, logger: assembly.logger)
        try await sessions.prepare()
        background.append(sessions)
        let clock = StreamClock(heartbeat: configuration.heartbeat)
        background.append(clock)
        let hub = RealtimeHub(
            epoch: epoch, rings: rings, sources: sources,
            snapshots: Snapshots(catalog: catalog, rules: rules, project: projectForCallers),
            memberships: MembershipDirectory(client: project), clock: clock, configuration: configuration)
        background.append(contentsOf: Upstream.allCases.compactMap { hub.fanouts[$0] })
        let authenticator = Authenticator(keys: CurrentKeys { keys.published })
        return (RealtimeService(hub: hub, sessions: sessions, authenticator: authenticator, logger: assembly.logger), background)
    }
}
