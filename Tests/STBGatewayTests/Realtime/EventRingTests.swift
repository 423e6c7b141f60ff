@testable import STBGateway
import STBPostgres
import Testing

@Suite struct EventRingTests {
    func event(_ revision: UInt64, _ sequence: Int64, bytes: Int = 10) -> UpstreamEvent {
        UpstreamEvent(cursor: OutboxCursor(revision: revision, sequence: sequence), entity: "option", key: "k\(sequence)", action: "updated",
                      payload: Array(repeating: 1, count: bytes))
    }

    @Test func readsExactlyTheEventsAfterACursor() {
        let ring = EventRing(maximumCount: 100, maximumBytes: 1 << 20)
        ring.reset(base: .start)
        let events = (1...20).map { event(UInt64($0), Int64($0 * 3)) }
        ring.append(events)
        #expect(ring.read(after: .start, limit: 1000) == .events(events))
        #expect(ring.read(after: OutboxCursor(revision: 7, sequence: 21), limit: 1000) == .events(Array(events[7...])))
        // A cursor between two events (another gateway's replay may stop anywhere).
        #expect(ring.read(after: OutboxCursor(revision: 7, sequence: 22), limit: 2) == .events(Array(events[7...8])))
        #expect(ring.read(after: OutboxCursor(revision: 20, sequence: 60), limit: 10) == .events([]))
        // Appending what the ring holds already changes nothing (no duplicate).
        ring.append(Array(events[15...]))
        #expect(ring.count == 20)
    }

    @Test func evictionMovesTheBaseAndOlderReadersAreBehind() {
        let ring = EventRing(maximumCount: 5, maximumBytes: 1 << 20)
        ring.reset(base: .start)
        let events = (1...12).map { event(UInt64($0), Int64($0)) }
        ring.append(events)
        #expect(ring.count == 5)
        // Events 1–7 left: a reader at 6 misses 7 and must replay from the upstream.
        #expect(ring.read(after: OutboxCursor(revision: 6, sequence: 6), limit: 100) == .behind)
        #expect(ring.read(after: OutboxCursor(revision: 7, sequence: 7), limit: 100) == .events(Array(events[7...])))
    }

    @Test func boundedByBytes() {
        let ring = EventRing(maximumCount: 1000, maximumBytes: 1000)
        ring.reset(base: .start)
        ring.append((1...50).map { event(UInt64($0), Int64($0), bytes: 100) })
        #expect(ring.count < 10 && ring.count >= 1)
        #expect(ring.head == OutboxCursor(revision: 50, sequence: 50))
    }

    @Test func anUnknownBaseCoversOnlyFromTheFirstEventOn() {
        let ring = EventRing(maximumCount: 100, maximumBytes: 1 << 20)
        ring.reset(base: nil)
        #expect(ring.read(after: .start, limit: 10) == .behind)
        ring.append([event(5, 5), event(6, 6)])
        #expect(ring.read(after: OutboxCursor(revision: 4, sequence: 4), limit: 10) == .behind)
        #expect(ring.read(after: OutboxCursor(revision: 5, sequence: 5), limit: 10) == .events([event(6, 6)]))
    }

    /// What the held events keep: their own cost, and the bytes of the encodings the
    /// streams made of them (each delta, whole message and token).
    /// (The ring's events are at 1, 2, …: it covers what follows the first cursor it is not
    /// behind at.)
    func kept(_ ring: EventRing) -> Int {
        for sequence in Int64(0)...1000 {
            guard case .events(let held) = ring.read(after: OutboxCursor(revision: UInt64(sequence), sequence: sequence), limit: 1_000_000)
            else { continue }
            return held.reduce(0) { $0 + $1.cost + $1.encodings.keptBytes }
        }
        Issue.record("the ring covers none of its events")
        return 0
    }

    @Test("the byte bound counts the encodings the streams made of the held events")
    func boundedWithTheEncodings() {
        // Room for 10 events alone; each event's delta and whole message add about twice
        // its payload.
        let ring = EventRing(maximumCount: 1000, maximumBytes: 10 * event(1, 1, bytes: 1000).cost)
        ring.reset(base: .start)
        for sequence in Int64(1)...40 {
            ring.append([event(UInt64(sequence), sequence, bytes: 1000)])
            // A stream sends each event as it comes in, as the fan-out does.
            guard case .events(let new) = ring.read(after: OutboxCursor(revision: UInt64(sequence - 1), sequence: sequence - 1), limit: 1),
                let held = new.first
            else {
                Issue.record("event \(sequence) is not in the ring")
                return
            }
            let made = held.encodings.delta(.catalog, token: "e1", at: .catalog, held.cursor) {
                Subscription.delta(of: held, on: .catalog, from: .catalog)
            }
            #expect(made.wire.count > 1000)
            #expect(held.encodings.keptBytes > 2000)
            #expect(kept(ring) <= ring.maximumBytes + held.encodings.keptBytes)
            #expect(kept(ring) > held.cost + held.encodings.keptBytes || sequence == 1)
        }
        // Each append makes room for what the events before it keep.
        ring.append([event(41, 41, bytes: 1000)])
        #expect(kept(ring) <= ring.maximumBytes)
        #expect(ring.bytes == kept(ring))
        #expect(ring.count < 10 && ring.count >= 2)
        #expect(ring.head == OutboxCursor(revision: 41, sequence: 41))
    }
}
