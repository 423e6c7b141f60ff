import Logging
import STBAPI
import STBAuth
import STBMessages
import STBPostgres
import STBRPC
import STBService
import Synchronization

/// The gateway's `stb.gateway.v1.Realtime`: `Subscribe` streams over the upstream
/// followers' rings (see `Subscription`), and the stream sessions.
public struct RealtimeService: Stb_Gateway_V1_RealtimeService {
    let hub: RealtimeHub
    let sessions: StreamSessions
    let authenticator: Authenticator
    let logger: Logger

    public init(hub: RealtimeHub, sessions: StreamSessions, authenticator: Authenticator, logger: Logger) {
        self.hub = hub
        self.sessions = sessions
        self.authenticator = authenticator
        self.logger = logger
    }

    public func subscribe(_ request: Stb_Gateway_V1_SubscribeRequest, writer: RPCWriter<Stb_Gateway_V1_SubscribeEvent>, context: ServerContext) async throws {
        let delivered = DeliveredToken()
        let opened = try await openInChildTask(request, writer: writer, delivered: delivered, context: context)
        var outcome: (any Error)?
        do {
            try await run(opened, writer: writer, delivered: delivered)
        } catch {
            outcome = error
        }
        try await finish(opened, outcome: outcome, delivered: delivered, context: context)
    }

    /// Records the stream's end and adds the resume token to its trailers; rethrows the
    /// stream's failure as its status. Apart from `subscribe` (and never inlined) so that
    /// its frame is there only at the end, not through the stream's life.
    @inline(never)
    private func finish(_ opened: OpenedStream, outcome: (any Error)?, delivered: DeliveredToken, context: ServerContext) async throws {
        let status = outcome.map { ($0 as? RPCError) ?? RPCError(code: .cancelled, message: "the stream ended") }
        // Recorded even when the call was cancelled (the client went away): in a task of
        // its own, which the call's cancellation does not reach.
        let reason = status.map { "\($0.code): \($0.message)" } ?? "ended"
        await Task { [sessions, sessionID = opened.sessionID] in await sessions.close(sessionID, reason: reason) }.value
        if let token = delivered.value, !token.isEmpty {
            var trailer = Metadata()
            trailer.addString(token, forKey: "stb-resume-token")
            context.addTrailingMetadata(trailer)
        }
        if let status { throw status }
    }

    /// A stream ready to run: what `open` settled before the first message.
    private struct OpenedStream: Sendable {
        let subscription: Subscription
        let upstreams: [Upstream]
        let starts: [Upstream: OutboxCursor]
        let resyncs: [Upstream: String]
        let claims: AccessClaims
        let sessionID: Int64
    }

    /// `open` in a child task. Everything before the first message (the claims, the
    /// token's checks, the memberships, the session row) runs there: its async frames go
    /// when it ends, where the stream's own task, which lives as long as the stream, keeps
    /// every slab its deepest call needed. A group's child, not an `async let`: an
    /// `async let` places its child (and the child's first frames) in this task's memory.
    @inline(never)
    private func openInChildTask(
        _ request: Stb_Gateway_V1_SubscribeRequest, writer: RPCWriter<Stb_Gateway_V1_SubscribeEvent>, delivered: DeliveredToken,
        context: ServerContext
    ) async throws -> OpenedStream {
        try await withThrowingTaskGroup(of: OpenedStream.self) { group in
            group.addTask { try await open(request, context: context, direct: DirectWrite(writer, delivered: delivered)) }
            guard let opened = try await group.next() else {
                throw RPCError(code: .internal, message: "the stream could not start")
            }
            return opened
        }
    }

    /// Checks the request and the caller, finds where each upstream starts and opens the
    /// stream's session.
    private func open(_ request: Stb_Gateway_V1_SubscribeRequest, context: ServerContext, direct: DirectWrite?) async throws -> OpenedStream {
        // The claims themselves (the interceptor verified the token): the role, and when
        // the token expires.
        let claims = try await authenticator.authenticate(context.metadata, allowingCookie: context.rpcProtocol == .connect)
        let topics = try Topic.parse(request.topics, maximum: hub.configuration.maximumTopics)

        // Where each upstream starts: the token's position, fresh (nil), or a resync.
        var starts: [Upstream: OutboxCursor] = [:]
        var resyncs: [Upstream: String] = [:]
        let upstreams = Upstream.allCases.filter { upstream in topics.contains { $0.upstream == upstream } }
        if !request.resumeToken.isEmpty {
            guard let token = ResumeToken(text: request.resumeToken) else {
                throw RPCError(code: .invalidArgument, message: "resume_token: not a token this service issued; subscribe without one")
            }
            for upstream in upstreams {
                if token.epoch != hub.epoch {
                    resyncs[upstream] = "the resume token is from another deployment"
                } else if let cursor = token.positions[upstream] {
                    if await reaches(upstream, cursor) {
                        starts[upstream] = cursor
                    } else {
                        resyncs[upstream] = "the resume token is ahead of the \(upstream.rawValue) feed"
                    }
                } else {
                    resyncs[upstream] = "the resume token does not cover these topics"
                }
            }
        }

        // Projects the caller cannot see are refused before anything is sent.
        let privileged = claims.role == .admin || claims.role == .service
        var member: Set<String>?
        if !privileged, topics.contains(where: { if case .project = $0 { true } else { false } }) {
            let projects = try await hub.memberships.projects(of: claims.subject, fresh: true)
            member = projects
            for topic in topics {
                if case .project(let key) = topic, !projects.contains(key) {
                    throw RPCError(code: .permissionDenied, message: "\(topic): no such project, or it is not visible to you")
                }
            }
        }

        let queue = OutboundQueue(epoch: hub.epoch, positions: starts, limit: hub.configuration.queueBytes, direct: direct)
        let sessionID = try await sessions.open(
            claims: claims, topics: topics, peer: context.peer,
            userAgent: String((context.metadata.firstString(forKey: "user-agent") ?? "").prefix(200)),
            end: { queue.fail($0) })
        var metadata = Metadata()
        if let authorization = context.metadata.firstString(forKey: Metadata.authorizationKey) {
            metadata.addString(authorization, forKey: Metadata.authorizationKey)
        }
        let subscription = Subscription(hub: hub, claims: claims, callerMetadata: metadata, topics: topics, queue: queue, logger: logger)
            .joining(upstreams)
        if let member { subscription.knowVisible(member) }
        return OpenedStream(subscription: subscription, upstreams: upstreams, starts: starts, resyncs: resyncs, claims: claims, sessionID: sessionID)
    }

    /// Whether `upstream`'s ring has reached `cursor` (waiting up to 2 s for a follower
    /// that is behind another gateway's).
    private func reaches(_ upstream: Upstream, _ cursor: OutboxCursor) async -> Bool {
        guard let ring = hub.rings[upstream] else { return false }
        let deadline = ContinuousClock.now + .seconds(2)
        while true {
            if let head = ring.head, head >= cursor { return true }
            if ring.head == nil || ContinuousClock.now >= deadline { return ring.head.map { $0 >= cursor } ?? true }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Runs the producers (a task each, until the ring's fan-out takes their upstream) and
    /// writes what is queued in this task; the gateway's `StreamClock` adds heartbeats and
    /// ends the stream when the token expires. The first failure ends it all.
    ///
    /// An idle stream waits here for as long as it lives, and a task keeps the memory of
    /// its deepest frames until it ends: so this frame stays small, and the work around
    /// the wait (starting producers, writing) runs in functions of its own, never inlined,
    /// whose frames go when they return.
    private func run(_ opened: OpenedStream, writer: RPCWriter<Stb_Gateway_V1_SubscribeEvent>, delivered: DeliveredToken) async throws {
        let subscription = opened.subscription
        let queue = subscription.queue
        let clock = hub.clock
        let timers = clock.register(queue, expiresAt: opened.claims.expiresAt)
        defer {
            clock.unregister(timers)
            subscription.leave()
        }
        // A discarding group: a producer that hands its upstream to the fan-out is gone at
        // once, so an idle stream keeps no task but its own.
        try await withThrowingDiscardingTaskGroup { group in
            for upstream in opened.upstreams {
                let start: Subscription.Start =
                    if let reason = opened.resyncs[upstream] {
                        .resync(reason)
                    } else if let cursor = opened.starts[upstream] {
                        .resume(cursor)
                    } else {
                        .fresh
                    }
                Self.startProducer(upstream, start, subscription: subscription, in: &group)
            }
            // The writer ends only by failing (the queue's failure, or the transport's).
            defer { group.cancelAll() }
            do {
                while true {
                    let messages = try await queue.next()
                    // An upstream the fan-out handed back: its producer catches up again.
                    for upstream in queue.takeDetached() {
                        Self.startProducer(upstream, .continuing, subscription: subscription, in: &group)
                    }
                    try await Self.write(messages, to: writer, queue: queue, delivered: delivered)
                }
            } catch {
                throw queue.failure ?? error
            }
        }
    }

    /// Adds `upstream`'s producer to the stream's group; its failure fails the queue.
    @inline(never)
    private static func startProducer(
        _ upstream: Upstream, _ start: Subscription.Start, subscription: Subscription, in group: inout ThrowingDiscardingTaskGroup<any Error>
    ) {
        group.addTask {
            do {
                try await subscription.produce(upstream, start: start)
            } catch let error as RPCError {
                subscription.queue.fail(error)
            } catch is StreamEnded {
            } catch {
                if !Task.isCancelled { subscription.queue.fail(RPCError(code: .internal, message: "the stream failed")) }
            }
        }
    }

    /// Hands `messages` to the transport in order, each marked written and its token
    /// kept as it goes.
    @inline(never)
    private static func write(
        _ messages: [Outbound], to writer: RPCWriter<Stb_Gateway_V1_SubscribeEvent>, queue: OutboundQueue, delivered: DeliveredToken
    ) async throws {
        let proto = writer.sendsProtobuf
        for message in messages {
            if proto {
                try await writer.write(encoded: message.encoded)
            } else {
                try await writer.write(message.message)
            }
            queue.written(message)
            delivered.set(message.token)
        }
    }

    public func listSessions(_ request: Stb_Gateway_V1_ListSessionsRequest, context: ServerContext) async throws -> Stb_Gateway_V1_ListSessionsResponse {
        try requireAdmin(context)
        let limit = request.limit <= 0 ? 100 : min(Int(request.limit), 1000)
        var reply = Stb_Gateway_V1_ListSessionsResponse()
        reply.sessions = try await sessions.list(openOnly: request.openOnly, limit: limit)
        return reply
    }

    public func endSession(_ request: Stb_Gateway_V1_EndSessionRequest, context: ServerContext) async throws -> Stb_Gateway_V1_StreamSession {
        try requireAdmin(context)
        guard let session = try await sessions.find(request.id) else {
            throw RPCError(code: .notFound, message: "stream session \(request.id) not found")
        }
        guard session.status == "open" else {
            throw RPCError(code: .failedPrecondition, message: "stream session \(request.id) has ended already")
        }
        if !sessions.end(request.id) {
            // Another instance runs it: marked, it ends there within about a second.
            guard try await sessions.requestEnd(request.id) else {
                throw RPCError(code: .failedPrecondition, message: "stream session \(request.id) has ended already")
            }
        }
        // The answer shows the session ended when that happens soon (the running stream
        // records its end as it stops).
        let deadline = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < deadline {
            if let current = try await sessions.find(request.id), current.status != "open" { return current }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try await sessions.find(request.id) ?? session
    }

    private func requireAdmin(_ context: ServerContext) throws(RPCError) {
        guard context.identity?.role == Role.admin.claim else {
            throw RPCError(code: .permissionDenied, message: "only an admin may manage stream sessions")
        }
    }
}
