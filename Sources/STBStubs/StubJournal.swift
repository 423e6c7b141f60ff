import Glibc
import STBMessages
import STBRPC
import Synchronization

/// What the mocks saw: a counter per stub (always), and a bounded ring of the most recent
/// calls, kept cheap enough to leave on under load: a call stores its request in wire
/// form and its metadata as received (both shared, not copied), converted to JSON and
/// redacted only when the journal is read.
public final class StubJournal: Sendable {
    /// One call, as the journal keeps it.
    struct Entry: Sendable {
        var sequence: Int64
        var method: ProtoMethodDescriptor
        var request: [UInt8]
        /// As received: secrets are redacted when the journal is read.
        var metadata: Metadata
        var stubID: String?
        var nearMisses: [String]
        var status: Int32
        var unixMicros: Int64
    }

    private struct State {
        var matched: [String: Int] = [:]
        var ring: [Entry?]
        var next = 0
        var calls: Int64 = 0
        var unmatched: Int64 = 0
    }

    /// How many recent calls the ring keeps.
    public let capacity: Int
    private let state: Mutex<State>

    public init(capacity: Int = 1024) {
        self.capacity = max(1, capacity)
        state = Mutex(State(ring: Array(repeating: nil, count: max(1, capacity))))
    }

    /// Counts a match of `stubID` if it has matched fewer than `times` calls; returns the
    /// match's number (0 for the first), or nil when its `times` are used up.
    func claim(_ stubID: String, times: Int?) -> Int? {
        state.withLock { state in
            let used = state.matched[stubID, default: 0]
            if let times, used >= times { return nil }
            state.matched[stubID] = used + 1
            return used
        }
    }

    /// Adds a call to the ring (overwriting the oldest) and counts it.
    func record(method: ProtoMethodDescriptor, request: [UInt8], metadata: Metadata, stubID: String?, nearMisses: [String], status: Int) {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        let micros = Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec / 1000)
        state.withLock { state in
            state.calls += 1
            if stubID == nil { state.unmatched += 1 }
            state.ring[state.next] = Entry(
                sequence: state.calls, method: method, request: request, metadata: metadata, stubID: stubID,
                nearMisses: nearMisses, status: Int32(status), unixMicros: micros)
            state.next = (state.next + 1) % state.ring.count
        }
    }

    /// How many calls `stubID` matched since the last reset.
    public func matchedCount(_ stubID: String) -> Int {
        state.withLock { $0.matched[stubID, default: 0] }
    }

    /// Clears counters, the ring and the `times` used.
    public func reset() {
        state.withLock { state in
            state = State(ring: Array(repeating: nil, count: state.ring.count))
        }
    }

    /// The journal as the admin API returns it: the most recent `limit` calls, newest
    /// first, and every counter.
    public func snapshot(limit: Int) -> Stb_Stubs_V1_Journal {
        let (entries, matched, calls, unmatched) = state.withLock { state -> ([Entry], [String: Int], Int64, Int64) in
            var recent: [Entry] = []
            var position = state.next
            for _ in 0..<min(limit, state.ring.count) {
                position = (position - 1 + state.ring.count) % state.ring.count
                guard let entry = state.ring[position] else { break }
                recent.append(entry)
            }
            return (recent, state.matched, state.calls, state.unmatched)
        }
        var journal = Stb_Stubs_V1_Journal()
        journal.calls = calls
        journal.unmatched = unmatched
        journal.counters = matched.keys.sorted().map { Stb_Stubs_V1_StubCounter(stubID: $0, matched: Int64(matched[$0] ?? 0)) }
        journal.entries = entries.map { entry in
            var out = Stb_Stubs_V1_JournalEntry()
            out.sequence = entry.sequence
            out.method = entry.method.path
            out.requestJson = ProtoDynamicMessage.json(ofWireEncoding: entry.request, type: entry.method.requestType)
                .map { String(decoding: $0, as: UTF8.self) } ?? ""
            out.metadata = Dictionary(Self.redacted(entry.metadata), uniquingKeysWith: { first, second in first + ", " + second })
            out.stubID = entry.stubID ?? ""
            out.nearMisses = entry.nearMisses
            out.statusCode = entry.status
            out.unixMicros = entry.unixMicros
            return out
        }
        return journal
    }

    /// Keys whose values are credentials: never kept.
    static func isSecret(_ key: String) -> Bool {
        key == "authorization" || key == "proxy-authorization" || key == "cookie" || key == "set-cookie"
            || key.contains("token") || key.contains("secret") || key.contains("password") || key.contains("api-key")
    }

    static func redacted(_ metadata: Metadata) -> [(String, String)] {
        metadata.map { entry in
            if isSecret(entry.key) { return (entry.key, "[redacted]") }
            switch entry.value {
            case .string(let text): return (entry.key, text)
            case .binary(let bytes): return (entry.key, "(\(bytes.count) bytes)")
            }
        }
    }
}
