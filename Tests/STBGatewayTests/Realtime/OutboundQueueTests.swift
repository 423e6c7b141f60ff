@testable import STBGateway
import STBMessages
import STBPostgres
import STBRPC
import Testing

@Suite(.timeLimit(.minutes(1))) struct OutboundQueueTests {
    func queue(limit: Int = 1 << 20) -> OutboundQueue {
        OutboundQueue(epoch: "e", positions: [.catalog: .start], limit: limit)
    }

    func heartbeat(_ at: Int64) -> Stb_Gateway_V1_SubscribeEvent {
        var beat = Stb_Gateway_V1_Heartbeat()
        beat.atMs = at
        var message = Stb_Gateway_V1_SubscribeEvent()
        message.kind = .heartbeat(beat)
        return message
    }

    func atMs(_ messages: [Outbound]) -> [Int64] {
        messages.map { message in
            if case .heartbeat(let beat) = message.message.kind { return beat.atMs }
            return -1
        }
    }

    @Test func nextHandsOverWhatIsQueuedInOrderAndThenWaitsForMore() async throws {
        let queue = queue()
        queue.push(heartbeat(1))
        queue.push(heartbeat(2))
        #expect(atMs(try await queue.next()) == [1, 2])
        // Nothing queued: next() waits until a push, which hands its message over.
        async let waiting = queue.next()
        try await Task.sleep(for: .milliseconds(50))
        #expect(queue.push(heartbeat(3), advancing: .catalog, to: OutboxCursor(revision: 4, sequence: 5)))
        let taken = try await waiting
        #expect(atMs(taken) == [3])
        // The message's token names the position reached when it was queued.
        #expect(taken.first?.token == queue.token)
        #expect(taken.first?.message.resumeToken == queue.token)
        #expect(queue.position(.catalog) == OutboxCursor(revision: 4, sequence: 5))
    }

    @Test func aFailureWakesTheWaiterAndEndsTheQueue() async throws {
        let queue = queue()
        let waiting = Task { try await queue.next() }
        try await Task.sleep(for: .milliseconds(50))
        queue.fail(RPCError(code: .resourceExhausted, message: "slow consumer"))
        queue.fail(RPCError(code: .internal, message: "later"))
        await #expect(throws: RPCError(code: .resourceExhausted, message: "slow consumer")) { try await waiting.value }
        // Pushes are refused from now on and next() throws the first failure at once.
        #expect(!queue.push(heartbeat(1)))
        await #expect(throws: RPCError(code: .resourceExhausted, message: "slow consumer")) { try await queue.next() }
    }

    @Test func aFailureWinsOverQueuedMessages() async throws {
        let queue = queue()
        queue.push(heartbeat(1))
        queue.fail(RPCError(code: .unauthenticated, message: "expired"))
        await #expect(throws: RPCError(code: .unauthenticated, message: "expired")) { try await queue.next() }
    }

    @Test func cancellingTheWaiterFailsTheStream() async throws {
        let queue = queue()
        let waiter = Task { try await queue.next() }
        try await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        let result = await waiter.result
        #expect(throws: RPCError.self) { try result.get() }
        #expect(queue.failure?.code == .cancelled)
    }

    @Test func waitForRoomReturnsOnceTheClientTakesAndEndsAClientThatDoesNot() async throws {
        let queue = queue(limit: 1024)
        for at in 0..<200 { queue.push(heartbeat(Int64(at))) }
        async let room: Void = queue.waitForRoom(patience: .seconds(30))
        try await Task.sleep(for: .milliseconds(50))
        let taken = try await queue.next()
        #expect(taken.count == 200)
        for message in taken { queue.written(message) }
        try await room
        for at in 0..<200 { queue.push(heartbeat(Int64(at))) }
        await #expect(throws: StreamEnded.self) { try await queue.waitForRoom(patience: .milliseconds(100)) }
        #expect(queue.failure?.code == .resourceExhausted)
    }

    @Test func aQueueLeftOverItsLimitEndsThoughNothingMoreIsPushed() async throws {
        let queue = queue(limit: 1024)
        for at in 0..<200 { queue.push(heartbeat(Int64(at))) }
        let start = ContinuousClock.now
        queue.endIfFull(for: .seconds(3), now: start + .seconds(1))
        #expect(queue.failure == nil)
        // Written: under the limit again, it is not ended however late the clock looks.
        for message in try await queue.next() { queue.written(message) }
        queue.endIfFull(for: .seconds(3), now: start + .seconds(60))
        #expect(queue.failure == nil)
        // Over it again and left there: ended as a slow consumer.
        for at in 0..<200 { queue.push(heartbeat(Int64(at))) }
        queue.endIfFull(for: .seconds(3), now: ContinuousClock.now + .seconds(3))
        #expect(queue.failure?.code == .resourceExhausted)
    }

    @Test func anEventKeepsTheTokensOfTheLastFewPositionsItWasSentAt() {
        let encodings = DeltaEncodings()
        let sets: [[Upstream: OutboxCursor]] = (0..<7).map { n in
            [.project: OutboxCursor(revision: 5, sequence: 9), .rules: OutboxCursor(revision: UInt64(n), sequence: Int64(n))]
        }
        // Asked in turns, more kinds than it keeps: each answer is the token of its positions.
        for round in 0..<3 {
            for (index, positions) in sets.enumerated() {
                let epoch = round == 2 && index == 3 ? "fedc0123" : "0123abcd"
                #expect(encodings.token(epoch: epoch, positions: positions) == ResumeToken(epoch: epoch, positions: positions).text)
            }
        }
    }
}
