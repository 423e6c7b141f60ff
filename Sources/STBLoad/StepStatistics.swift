import Histogram
import STBJSON

/// What one step of a run saw: latencies in two HdrHistograms (microseconds), counts of
/// late and never-sent requests, and replies by status code.
public struct StepStatistics: Sendable {
    /// Latency from the request's intended send time to its end: what a user arriving on
    /// schedule waited, a server stall included (no coordinated omission).
    public var fromIntended = StepStatistics.histogram()
    /// Latency from the actual send to the end: the service time a closed-loop tool
    /// reports, which hides the requests a stall kept from being sent.
    public var fromActual = StepStatistics.histogram()
    /// Server streams: from the actual send to the first message.
    public var firstMessage = StepStatistics.histogram()
    /// Server streams: from the intended send to the first message (a stall included).
    public var firstMessageFromIntended = StepStatistics.histogram()
    /// How long after its intended time each request was actually sent: the generator's
    /// own lag and the in-flight cap's, reported apart from the server's latency.
    public var sendLag = StepStatistics.histogram()
    /// Requests sent.
    public var sent = 0
    /// Requests sent later than the lateness threshold after their intended time (the
    /// in-flight cap was full, or the generator fell behind).
    public var late = 0
    /// Requests due in the step that were never sent before the run ended.
    public var neverSent = 0
    /// Calls ended, by gRPC status code (0 is OK).
    public var statusCounts: [Int: Int] = [:]
    /// Server streams: messages received.
    public var messages = 0
    /// The first few distinct error messages, with how often each came.
    public var errorSamples: [String: Int] = [:]

    /// Latencies from 1 µs to one hour, to three significant digits.
    static func histogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    }

    public init() {}

    /// Calls that ended.
    public var completed: Int { statusCounts.values.reduce(0, +) }
    /// Calls that ended with a status other than OK.
    public var errors: Int { completed - (statusCounts[0] ?? 0) }

    mutating func record(intendedNanos: UInt64, sentNanos: UInt64, endNanos: UInt64, status: Int, firstMessageNanos: UInt64?, messages: Int, error: String?) {
        _ = fromIntended.record(Self.micros(endNanos &- intendedNanos, endNanos >= intendedNanos))
        _ = fromActual.record(Self.micros(endNanos &- sentNanos, endNanos >= sentNanos))
        if let firstMessageNanos {
            _ = firstMessage.record(Self.micros(firstMessageNanos &- sentNanos, firstMessageNanos >= sentNanos))
            _ = firstMessageFromIntended.record(Self.micros(firstMessageNanos &- intendedNanos, firstMessageNanos >= intendedNanos))
        }
        statusCounts[status, default: 0] += 1
        self.messages += messages
        if let error, errorSamples[error] != nil || errorSamples.count < 8 {
            errorSamples[error, default: 0] += 1
        }
    }

    private static func micros(_ nanos: UInt64, _ valid: Bool) -> UInt64 {
        guard valid else { return 1 }
        return min(max(nanos / 1000, 1), 3_600_000_000)
    }

    /// Adds `other`'s counts and histograms (for the run's total).
    public mutating func add(_ other: StepStatistics) {
        fromIntended.add(other.fromIntended)
        fromActual.add(other.fromActual)
        firstMessage.add(other.firstMessage)
        firstMessageFromIntended.add(other.firstMessageFromIntended)
        sendLag.add(other.sendLag)
        sent += other.sent
        late += other.late
        neverSent += other.neverSent
        messages += other.messages
        for (code, count) in other.statusCounts { statusCounts[code, default: 0] += count }
        for (message, count) in other.errorSamples where errorSamples[message] != nil || errorSamples.count < 8 {
            errorSamples[message, default: 0] += count
        }
    }
}

/// The percentiles a report shows.
public let reportedPercentiles: [Double] = [50, 90, 99, 99.9, 99.99]

extension Histogram where Count == UInt64 {
    /// Percentiles and the maximum in milliseconds, as JSON (`{"p50": 0.123, …, "max": …}`).
    func percentilesJSON() -> JSONValue {
        var members: [String: JSONValue] = [:]
        for p in reportedPercentiles {
            members[percentileName(p)] = .double(totalCount == 0 ? 0 : Double(valueAtPercentile(p)) / 1000)
        }
        members["max"] = .double(totalCount == 0 ? 0 : Double(max) / 1000)
        members["count"] = .number(totalCount)
        return .object(members)
    }
}

/// `p50`, `p99.9`, `p99.99`.
func percentileName(_ p: Double) -> String {
    p == p.rounded() ? "p\(Int(p))" : "p\(p)"
}
