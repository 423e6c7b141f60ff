import Testing

@testable import STBRPC

@Suite("Server connection policy")
struct ServerConnectionPolicyTests {
    typealias Policy = ServerConnectionPolicy

    private static let second: UInt64 = 1_000_000_000
    private static let start: UInt64 = 1_000 * second

    private static func policy(_ configure: (inout RPCServer.Configuration) -> Void = { _ in }) -> Policy {
        var configuration = RPCServer.Configuration()
        configure(&configuration)
        var policy = Policy(limits: Policy.Limits(configuration), now: start)
        policy.frameReceived()
        return policy
    }

    private static func at(_ seconds: UInt64) -> UInt64 { start + seconds * second }

    // MARK: - Pings

    @Test("a PING flood with a call open ends the connection after the allowed strikes")
    func pingFloodWithCall() {
        var policy = Self.policy { $0.minPingInterval = .seconds(10); $0.maxPingStrikes = 2 }
        policy.streamOpened(now: Self.at(0))
        #expect(policy.pingReceived(now: Self.at(1)) == .none)
        #expect(policy.pingReceived(now: Self.at(2)) == .none)  // strike 1
        #expect(policy.pingReceived(now: Self.at(3)) == .none)  // strike 2
        #expect(policy.pingReceived(now: Self.at(4)) == .goAwayAndClose(code: H2Error.enhanceYourCalm, debug: "too_many_pings"))
        #expect(policy.isClosing)
        #expect(policy.pingReceived(now: Self.at(5)) == .none)
    }

    @Test("PINGs at the allowed interval are fine with a call open, strikes without one")
    func pingIntervalDependsOnCalls() {
        var withCall = Self.policy { $0.minPingInterval = .seconds(10); $0.minPingIntervalWithoutCalls = .seconds(100) }
        withCall.streamOpened(now: Self.at(0))
        var withoutCall = Self.policy { $0.minPingInterval = .seconds(10); $0.minPingIntervalWithoutCalls = .seconds(100) }
        var seconds: UInt64 = 0
        var endedWithout: Policy.Action = .none
        for _ in 0..<5 {
            seconds += 20
            #expect(withCall.pingReceived(now: Self.at(seconds)) == .none)
            let action = withoutCall.pingReceived(now: Self.at(seconds))
            if action != .none { endedWithout = action }
        }
        #expect(withCall.pingStrikes == 0)
        #expect(endedWithout == .goAwayAndClose(code: H2Error.enhanceYourCalm, debug: "too_many_pings"))
    }

    @Test("sending HEADERS or DATA forgives earlier PINGs")
    func pingsForgiven() {
        var policy = Self.policy { $0.minPingInterval = .seconds(10); $0.maxPingStrikes = 1 }
        policy.streamOpened(now: Self.at(0))
        for seconds in 1...20 as ClosedRange<UInt64> {
            #expect(policy.pingReceived(now: Self.at(seconds)) == .none)
            policy.headersOrDataSent()
        }
        #expect(policy.pingStrikes == 0)
    }

    // MARK: - Glitches

    @Test("the glitch budget runs out after the burst and refills over time")
    func glitchBudget() {
        var policy = Self.policy { $0.glitchBurst = 5; $0.glitchRefillPerSecond = 2 }
        for _ in 0..<5 { #expect(policy.glitch(now: Self.at(1)) == .none) }
        // Two seconds refill four tokens.
        for _ in 0..<4 { #expect(policy.glitch(now: Self.at(3)) == .none) }
        #expect(policy.glitch(now: Self.at(3)) == .goAwayAndClose(code: H2Error.enhanceYourCalm, debug: "too_many_glitches"))
        #expect(policy.isClosing)
        // One GOAWAY only.
        #expect(policy.glitch(now: Self.at(3)) == .none)
    }

    // MARK: - Timers

    @Test("the idle timer sends GOAWAY only with no stream and no handler")
    func idleTimer() {
        var withStream = Self.policy { $0.idleTimeout = .seconds(60) }
        withStream.streamOpened(now: Self.at(0))
        #expect(withStream.tick(now: Self.at(120), oldestHeaderBlockStart: nil, pendingOutput: false, lastWriteProgress: Self.at(0)) == .none)

        var withHandler = Self.policy { $0.idleTimeout = .seconds(60) }
        withHandler.streamOpened(now: Self.at(0))
        withHandler.handlerReserved()
        #expect(withHandler.streamClosed(now: Self.at(1)) == .none)
        #expect(withHandler.tick(now: Self.at(120), oldestHeaderBlockStart: nil, pendingOutput: false, lastWriteProgress: Self.at(0)) == .none)

        var idle = Self.policy { $0.idleTimeout = .seconds(60) }
        idle.streamOpened(now: Self.at(0))
        #expect(idle.streamClosed(now: Self.at(10)) == .none)
        #expect(idle.tick(now: Self.at(69), oldestHeaderBlockStart: nil, pendingOutput: false, lastWriteProgress: Self.at(0)) == .none)
        #expect(idle.tick(now: Self.at(71), oldestHeaderBlockStart: nil, pendingOutput: false, lastWriteProgress: Self.at(0))
            == .goAwayAndClose(code: H2Error.noError, debug: "max_idle"))
    }

    @Test("no preface within the handshake timeout closes the connection")
    func handshakeTimeout() {
        var configuration = RPCServer.Configuration()
        configuration.handshakeTimeout = .seconds(5)
        var silent = Policy(limits: Policy.Limits(configuration), now: Self.start)
        #expect(silent.tick(now: Self.at(4), oldestHeaderBlockStart: nil, pendingOutput: false, lastWriteProgress: Self.start) == .none)
        #expect(silent.tick(now: Self.at(6), oldestHeaderBlockStart: nil, pendingOutput: false, lastWriteProgress: Self.start)
            == .close(reason: "no HTTP/2 preface within the handshake timeout"))
        var greeted = Policy(limits: Policy.Limits(configuration), now: Self.start)
        greeted.frameReceived()
        #expect(greeted.tick(now: Self.at(6), oldestHeaderBlockStart: nil, pendingOutput: false, lastWriteProgress: Self.start) == .none)
    }

    @Test("a header block left incomplete past the header timeout ends the connection")
    func headerTimeout() {
        var policy = Self.policy { $0.headerTimeout = .seconds(10) }
        policy.streamOpened(now: Self.at(0))
        #expect(policy.tick(now: Self.at(9), oldestHeaderBlockStart: Self.at(0), pendingOutput: false, lastWriteProgress: Self.at(0)) == .none)
        #expect(policy.tick(now: Self.at(11), oldestHeaderBlockStart: Self.at(0), pendingOutput: false, lastWriteProgress: Self.at(0))
            == .goAwayAndClose(code: H2Error.protocolError, debug: "header_timeout"))
    }

    @Test("output that makes no progress past the write-stall timeout closes the connection")
    func writeStall() {
        var policy = Self.policy { $0.writeStallTimeout = .seconds(30) }
        policy.streamOpened(now: Self.at(0))
        // The socket keeps taking bytes: no stall, however long output stays pending.
        for seconds in stride(from: 10, through: 100, by: 10) as StrideThrough<UInt64> {
            #expect(policy.tick(now: Self.at(seconds), oldestHeaderBlockStart: nil, pendingOutput: true, lastWriteProgress: Self.at(seconds - 1)) == .none)
        }
        // Then it stops.
        #expect(policy.tick(now: Self.at(120), oldestHeaderBlockStart: nil, pendingOutput: true, lastWriteProgress: Self.at(99)) == .none)
        #expect(policy.tick(now: Self.at(140), oldestHeaderBlockStart: nil, pendingOutput: true, lastWriteProgress: Self.at(99))
            == .close(reason: "peer stopped reading"))
    }

    @Test("nothing pending is never a stall")
    func nothingPending() {
        var policy = Self.policy { $0.writeStallTimeout = .seconds(30) }
        policy.streamOpened(now: Self.at(0))
        #expect(policy.tick(now: Self.at(100), oldestHeaderBlockStart: nil, pendingOutput: false, lastWriteProgress: Self.at(0)) == .none)
        #expect(policy.tick(now: Self.at(120), oldestHeaderBlockStart: nil, pendingOutput: true, lastWriteProgress: Self.at(0)) == .none)
    }

    // MARK: - Handlers, flushes, shutdown

    @Test("the running-handler cap")
    func handlerCap() {
        var policy = Self.policy { $0.maxRunningHandlersPerConnection = 2 }
        policy.handlerReserved()
        #expect(policy.hasHandlerRoom)
        policy.handlerReserved()
        #expect(!policy.hasHandlerRoom)
        #expect(policy.handlerReleased(finishedAt: nil) == .none)
        #expect(policy.hasHandlerRoom)
    }

    @Test("a flood of queued frames closes the connection before a flush")
    func frameQueueOverflow() {
        let policy = Self.policy()
        #expect(policy.willFlush(queuedFrames: 5000) == .none)
        #expect(policy.willFlush(queuedFrames: 5001) == .close(reason: "outbound frame queue overflow"))
    }

    @Test("graceful shutdown: notice, final GOAWAY, then close once calls drain and output is flushed")
    func gracefulShutdownThenDrain() {
        var policy = Self.policy()
        policy.streamOpened(now: Self.at(0))
        policy.handlerReserved()
        #expect(policy.didFlush(bufferedOutput: 0) == .none)
        #expect(policy.beginGracefulShutdown() == .sendShutdownNotice)
        #expect(policy.beginGracefulShutdown() == .none)
        #expect(policy.isDraining)
        #expect(!policy.hasHandlerRoom)
        #expect(policy.shutdownNoticeElapsed() == .sendFinalGoAway(thenClose: false))
        #expect(policy.streamClosed(now: Self.at(1)) == .none)  // its handler still runs
        #expect(!policy.isClosing)
        #expect(policy.handlerReleased(finishedAt: Self.at(2)) == .closeAfterFlush)
        #expect(policy.isClosing)
        #expect(policy.didFlush(bufferedOutput: 100) == .none)
        #expect(policy.didFlush(bufferedOutput: 0) == .close(reason: "GOAWAY sent"))
    }

    @Test("graceful shutdown of an idle connection closes after the final GOAWAY")
    func gracefulShutdownIdle() {
        var policy = Self.policy()
        #expect(policy.beginGracefulShutdown() == .sendShutdownNotice)
        #expect(!policy.isClosing)  // the client may have a stream on the way
        #expect(policy.shutdownNoticeElapsed() == .sendFinalGoAway(thenClose: true))
        #expect(policy.isClosing)
    }

    @Test("after a GOAWAY that ends the connection, no other GOAWAY follows")
    func oneTerminalGoAway() {
        var policy = Self.policy { $0.glitchBurst = 0; $0.idleTimeout = .seconds(1) }
        #expect(policy.glitch(now: Self.at(0)) == .goAwayAndClose(code: H2Error.enhanceYourCalm, debug: "too_many_glitches"))
        #expect(policy.tick(now: Self.at(10), oldestHeaderBlockStart: nil, pendingOutput: false, lastWriteProgress: Self.at(10)) == .none)
        #expect(policy.didFlush(bufferedOutput: 0) == .close(reason: "GOAWAY sent"))
    }
}
