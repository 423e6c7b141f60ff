@testable import STBGateway
import STBMessages
import STBPostgres
import STBRPC
import Testing

@Suite(.timeLimit(.minutes(1))) struct StreamClockTests {
    func queue() -> OutboundQueue {
        OutboundQueue(epoch: "e", positions: [.catalog: .start], limit: 1 << 20)
    }

    func delta(_ key: String) -> Stb_Gateway_V1_Delta {
        var delta = Stb_Gateway_V1_Delta()
        delta.topic = "catalog"
        delta.key = key
        return delta
    }

    @Test func aQuietStreamGetsAHeartbeatAndABusyOneDoesNot() async throws {
        // The busy stream's push must stay within a heartbeat of the check, however slow the machine.
        let clock = StreamClock(heartbeat: .seconds(2))
        let quiet = queue(), busy = queue()
        let ids = [clock.register(quiet, expiresAt: Int64.max), clock.register(busy, expiresAt: Int64.max)]
        try await Task.sleep(for: .milliseconds(2100))
        busy.push(EncodedKind(.delta(delta("a"))))
        clock.check()
        let beats = try await quiet.next()
        #expect(beats.count == 1)
        guard case .heartbeat = beats.first?.message.kind else { Issue.record("not a heartbeat: \(beats)"); return }
        // The busy stream has only what it was sent.
        #expect(try await busy.next().map(\.message.kind) == [.delta(delta("a"))])
        for id in ids { clock.unregister(id) }
        #expect(clock.count == 0)
    }

    @Test func anExpiredTokenEndsTheStreamAndOnlyThatOne() async throws {
        let clock = StreamClock(heartbeat: .seconds(60))
        let expired = queue(), valid = queue()
        _ = clock.register(expired, expiresAt: GatewayService.nowSeconds() - 1)
        _ = clock.register(valid, expiresAt: GatewayService.nowSeconds() + 3600)
        clock.check()
        #expect(expired.failure?.code == .unauthenticated)
        #expect(valid.failure == nil)
    }

    @Test func aStreamLeftOverItsLimitForThePatienceIsEndedAsASlowConsumer() async throws {
        let clock = StreamClock(heartbeat: .seconds(60))
        let slow = OutboundQueue(epoch: "e", positions: [.catalog: .start], limit: 1024), reading = queue()
        _ = clock.register(slow, expiresAt: Int64.max)
        _ = clock.register(reading, expiresAt: Int64.max)
        for key in 0..<200 {
            slow.push(EncodedKind(.delta(delta("k\(key)"))))
            reading.push(EncodedKind(.delta(delta("k\(key)"))))
        }
        clock.check()
        #expect(slow.failure == nil)
        try await Task.sleep(for: OutboundQueue.patience + .milliseconds(100))
        clock.check()
        #expect(slow.failure?.code == .resourceExhausted)
        #expect(reading.failure == nil)
    }

    @Test func eachTickLooksAtAShareOfTheStreamsAndARoundAtEveryOne() {
        // Four ticks a round: 10 streams are looked at 3, 3, 3, then 1 at a time.
        let clock = StreamClock(heartbeat: .seconds(60), tick: .milliseconds(250), round: .seconds(1))
        let queues = (0..<10).map { _ in queue() }
        for queue in queues { _ = clock.register(queue, expiresAt: GatewayService.nowSeconds() - 1) }
        var ended: [Int] = []
        for _ in 0..<4 {
            clock.checkPart()
            ended.append(queues.filter { $0.failure != nil }.count)
        }
        #expect(ended == [3, 6, 9, 10])
    }

    @Test func streamsUnregisteredInAnyOrderLeaveTheOthersLookedAfter() {
        let clock = StreamClock(heartbeat: .seconds(60))
        let queues = (0..<5).map { _ in queue() }
        let ids = queues.map { clock.register($0, expiresAt: GatewayService.nowSeconds() - 1) }
        // The last stream takes the first one's place, then leaves from there.
        clock.unregister(ids[1])
        clock.unregister(ids[4])
        clock.unregister(ids[4])
        #expect(clock.count == 3)
        clock.check()
        #expect(queues.map { $0.failure != nil } == [true, false, true, true, false])
    }

    @Test func anUnregisteredStreamIsLeftAlone() async throws {
        let clock = StreamClock(heartbeat: .milliseconds(1))
        let queue = queue()
        clock.unregister(clock.register(queue, expiresAt: GatewayService.nowSeconds() - 1))
        try await Task.sleep(for: .milliseconds(5))
        clock.check()
        #expect(queue.failure == nil)
    }
}

@Suite struct EncodedKindTests {
    @Test(arguments: [0, 1, 127, 128, 300, 20_000])
    func theSharedBytesAndTheTokenDecodeAsTheWholeMessage(tokenLength: Int) throws {
        var delta = Stb_Gateway_V1_Delta()
        delta.topic = "catalog"
        delta.cursor = "3:4"
        delta.event = Array(repeating: 7, count: 200)
        let body = EncodedKind(.delta(delta))
        let token = String(repeating: "t", count: tokenLength)
        let bytes = body.encoded(token: token)
        #expect(bytes.count <= body.size(token: token))
        let decoded = try bytes.withUnsafeBytes { try Stb_Gateway_V1_SubscribeEvent(serializedBytes: $0) }
        #expect(decoded == body.message(token: token))
        #expect(decoded.resumeToken == token)
    }

    @Test func anEventsDeltaIsMadeOncePerTopic() {
        let event = UpstreamEvent(cursor: OutboxCursor(revision: 1, sequence: 1), entity: "module", key: "m", action: "created", payload: [1])
        var made = 0
        let first = event.encodings.delta(.catalog) { made += 1; return Stb_Gateway_V1_Delta() }
        let copy = event
        let again = copy.encodings.delta(.catalog) { made += 1; return Stb_Gateway_V1_Delta() }
        _ = event.encodings.delta(.project("p")) { made += 1; return Stb_Gateway_V1_Delta() }
        #expect(first === again)
        #expect(made == 2)
    }
}
