/// The connection-wide rules of a server connection, as a value: the keepalive policy
/// (PING strikes), the misbehaviour budget (glitches), the handshake, header, idle and
/// write-stall timers, the running-handler cap, and GOAWAY, both the graceful kind and the
/// kind that ends the connection.
///
/// The connection feeds it events with the loop's clock (frames, streams opening and
/// closing, handlers, ticks, flushes) and executes the returned action. It does no I/O, so
/// each rule can be tested without a socket.
struct ServerConnectionPolicy {
    /// The limits and timers, in loop-clock nanoseconds.
    struct Limits {
        var handshakeTimeout: UInt64
        var headerTimeout: UInt64
        var idleTimeout: UInt64
        var writeStallTimeout: UInt64
        var minPingInterval: UInt64
        var minPingIntervalWithoutCalls: UInt64
        var maxPingStrikes: Int
        var glitchBurst: Int
        var glitchRefillPerSecond: Int
        var maxRunningHandlers: Int
        /// Frames queued inside nghttp2 above which the peer is taken to be flooding us
        /// with frames that each need an answer (PING, SETTINGS) while not reading.
        var maxQueuedFrames = 5000

        init(_ configuration: RPCServer.Configuration) {
            handshakeTimeout = configuration.handshakeTimeout.nanoseconds
            headerTimeout = configuration.headerTimeout.nanoseconds
            idleTimeout = configuration.idleTimeout.nanoseconds
            writeStallTimeout = configuration.writeStallTimeout.nanoseconds
            minPingInterval = configuration.minPingInterval.nanoseconds
            minPingIntervalWithoutCalls = configuration.minPingIntervalWithoutCalls.nanoseconds
            maxPingStrikes = configuration.maxPingStrikes
            glitchBurst = configuration.glitchBurst
            glitchRefillPerSecond = configuration.glitchRefillPerSecond
            maxRunningHandlers = configuration.maxRunningHandlersPerConnection
        }
    }

    enum Phase: Equatable {
        /// Serving.
        case active
        /// Graceful shutdown announced: no new handlers; close once every stream and
        /// handler is done.
        case draining
        /// GOAWAY sent (or drained): close once the output is flushed. `afterDraining`
        /// remembers a graceful shutdown begun before.
        case closing(afterDraining: Bool)
    }

    enum Action: Equatable {
        case none
        /// Send GOAWAY with `code` and `debug` data naming the last stream processed,
        /// abandon every unfinished call, and close once the output is flushed.
        case goAwayAndClose(code: UInt32, debug: String)
        /// Close the socket now.
        case close(reason: String)
        /// Everything is drained: close once the output is flushed.
        case closeAfterFlush
        /// Announce a graceful shutdown (GOAWAY with the maximum stream id, and a PING);
        /// call `shutdownNoticeElapsed` about one round trip later.
        case sendShutdownNotice
        /// Send GOAWAY(NO_ERROR) naming the last stream processed; when `thenClose`,
        /// also close once the output is flushed.
        case sendFinalGoAway(thenClose: Bool)
    }

    let limits: Limits
    private(set) var phase: Phase = .active
    private(set) var openStreams = 0
    private(set) var runningHandlers = 0
    private var prefaceReceived = false
    private let createdAt: UInt64
    private var lastActivity: UInt64
    private var stallClockStart: UInt64
    private var lastPingReceived: UInt64 = 0
    private(set) var pingStrikes = 0
    private(set) var glitchTokens: Double
    private var glitchRefilledAt: UInt64

    init(limits: Limits, now: UInt64) {
        self.limits = limits
        self.createdAt = now
        self.lastActivity = now
        self.stallClockStart = now
        self.glitchTokens = Double(limits.glitchBurst)
        self.glitchRefilledAt = now
    }

    /// Whether a graceful shutdown has begun.
    var isDraining: Bool {
        switch phase {
        case .draining, .closing(afterDraining: true): true
        case .active, .closing(afterDraining: false): false
        }
    }

    /// Whether the connection closes once its output is flushed.
    var isClosing: Bool {
        if case .closing = phase { return true }
        return false
    }

    /// Whether one more handler may start: under the cap, and not draining.
    var hasHandlerRoom: Bool { runningHandlers < limits.maxRunningHandlers && !isDraining }

    // MARK: - Frames and streams

    /// Any frame arrived: the client got through the preface.
    mutating func frameReceived() {
        prefaceReceived = true
    }

    /// A request stream began (its first HEADERS).
    mutating func streamOpened(now: UInt64) {
        openStreams += 1
        lastActivity = now
    }

    /// A request stream closed.
    mutating func streamClosed(now: UInt64) -> Action {
        openStreams -= 1
        lastActivity = now
        return closeIfDrained()
    }

    /// A handler slot was taken (see `hasHandlerRoom`).
    mutating func handlerReserved() {
        runningHandlers += 1
    }

    /// A handler slot was given back: `finishedAt` is the loop time when a handler
    /// reported back, nil when the slot of a handler that never started is released.
    mutating func handlerReleased(finishedAt: UInt64?) -> Action {
        runningHandlers -= 1
        if let finishedAt { lastActivity = finishedAt }
        return closeIfDrained()
    }

    /// A PING (not an ACK) arrived. PINGs closer together than the allowed interval are
    /// strikes; past the allowed strikes the connection ends (gRPC keepalive policy).
    mutating func pingReceived(now: UInt64) -> Action {
        let interval = openStreams == 0 ? limits.minPingIntervalWithoutCalls : limits.minPingInterval
        var action = Action.none
        if lastPingReceived != 0, now &- lastPingReceived < interval {
            pingStrikes += 1
            if pingStrikes > limits.maxPingStrikes {
                action = goAwayAndClose(code: H2Error.enhanceYourCalm, debug: "too_many_pings")
            }
        }
        lastPingReceived = now
        return action
    }

    /// We sent HEADERS or DATA: that forgives earlier PINGs (gRPC keepalive policy).
    mutating func headersOrDataSent() {
        pingStrikes = 0
        lastPingReceived = 0
    }

    /// The peer misbehaved (an invalid frame, a refused or library-reset stream, a header
    /// budget breach). The budget refills over time; once empty the connection ends.
    mutating func glitch(now: UInt64) -> Action {
        let elapsed = Double(now &- glitchRefilledAt) / 1e9
        glitchTokens = min(Double(limits.glitchBurst), glitchTokens + elapsed * Double(limits.glitchRefillPerSecond))
        glitchRefilledAt = now
        glitchTokens -= 1
        guard glitchTokens < 0 else { return .none }
        return goAwayAndClose(code: H2Error.enhanceYourCalm, debug: "too_many_glitches")
    }

    // MARK: - Timers and output

    /// The periodic check (about every 250 ms). `oldestHeaderBlockStart`: when the oldest
    /// incomplete header block began; `pendingOutput`: whether output waits for the
    /// socket; `lastWriteProgress`: when the socket last took bytes.
    mutating func tick(now: UInt64, oldestHeaderBlockStart: UInt64?, pendingOutput: Bool, lastWriteProgress: UInt64) -> Action {
        if !prefaceReceived, now &- createdAt > limits.handshakeTimeout {
            return .close(reason: "no HTTP/2 preface within the handshake timeout")
        }
        if let started = oldestHeaderBlockStart, now &- started > limits.headerTimeout {
            return goAwayAndClose(code: H2Error.protocolError, debug: "header_timeout")
        }
        if openStreams == 0, runningHandlers == 0, now &- lastActivity > limits.idleTimeout {
            return goAwayAndClose(code: H2Error.noError, debug: "max_idle")
        }
        if !pendingOutput || lastWriteProgress > stallClockStart {
            stallClockStart = pendingOutput ? lastWriteProgress : now
        } else if now &- stallClockStart > limits.writeStallTimeout {
            return .close(reason: "peer stopped reading")
        }
        return .none
    }

    /// Before frames are pulled from the library for the socket.
    func willFlush(queuedFrames: Int) -> Action {
        queuedFrames > limits.maxQueuedFrames ? .close(reason: "outbound frame queue overflow") : .none
    }

    /// After a flush: a closing connection closes once the socket took everything.
    func didFlush(bufferedOutput: Int) -> Action {
        isClosing && bufferedOutput == 0 ? .close(reason: "GOAWAY sent") : .none
    }

    // MARK: - Graceful shutdown

    /// Graceful shutdown, step one: announce it.
    mutating func beginGracefulShutdown() -> Action {
        switch phase {
        case .active:
            phase = .draining
        case .closing(afterDraining: false):
            phase = .closing(afterDraining: true)
        case .draining, .closing(afterDraining: true):
            return .none
        }
        return .sendShutdownNotice
    }

    /// Graceful shutdown, step two, about one round trip after the notice: name the last
    /// stream that will be processed, and close if nothing runs.
    mutating func shutdownNoticeElapsed() -> Action {
        .sendFinalGoAway(thenClose: closeIfDrained() == .closeAfterFlush)
    }

    private mutating func closeIfDrained() -> Action {
        guard isDraining, openStreams == 0, runningHandlers == 0 else { return .none }
        phase = .closing(afterDraining: true)
        return .closeAfterFlush
    }

    mutating func goAwayAndClose(code: UInt32, debug: String) -> Action {
        guard !isClosing else { return .none }
        phase = .closing(afterDraining: isDraining)
        return .goAwayAndClose(code: code, debug: debug)
    }
}
