import Histogram
/// A pass/fail criterion on a run's total: `p99<20ms`, `actual.p99.9<=1s`,
/// `errors<0.1%`, `errors<5`, `late<1%`, `never_sent<1`, `rate>=99%` (sent over target).
/// Latency percentiles are from the intended send time unless prefixed `actual.`; for
/// server streams, `first.p99<50ms` (`actual.first.p99`) bounds the time to the first
/// message and `message_rate>=1000` the messages received per second.
public struct LoadThreshold: Sendable, Hashable, CustomStringConvertible {
    enum Metric: Hashable, Sendable {
        case latency(percentile: Double, fromActual: Bool)
        case firstMessage(percentile: Double, fromActual: Bool)
        case errors, late, neverSent, rate, messageRate
    }

    enum Comparison: String, Hashable, Sendable {
        case lessOrEqual = "<=", greaterOrEqual = ">=", less = "<", greater = ">"
    }

    let metric: Metric
    let comparison: Comparison
    /// Milliseconds for latencies; a fraction when `percent`, else a count.
    let limit: Double
    let percent: Bool
    /// The text it was parsed from.
    public let description: String

    /// Parses one criterion; throws `badThreshold` naming it and what is wrong.
    public init(_ text: String) throws(LoadError) {
        description = text
        let spaced = text.filter { $0 != " " }
        guard let at = spaced.firstIndex(where: { $0 == "<" || $0 == ">" }) else {
            throw LoadError(.badThreshold, "threshold \(text): no comparison (<, <=, >, >=)")
        }
        let afterSign = spaced.index(after: at)
        let orEqual = afterSign < spaced.endIndex && spaced[afterSign] == "="
        let sign = String(spaced[at...at]) + (orEqual ? "=" : "")
        guard let comparison = Comparison(rawValue: sign) else {
            throw LoadError(.badThreshold, "threshold \(text): no comparison (<, <=, >, >=)")
        }
        self.comparison = comparison
        let name = String(spaced[..<at])
        var value = String(spaced[(orEqual ? spaced.index(after: afterSign) : afterSign)...])
        switch name {
        case "errors": metric = .errors
        case "late": metric = .late
        case "never_sent": metric = .neverSent
        case "rate": metric = .rate
        case "message_rate": metric = .messageRate
        default:
            let fromActual = name.hasPrefix("actual.")
            var percentileText = fromActual ? name.dropFirst("actual.".count) : Substring(name)
            let first = percentileText.hasPrefix("first.")
            if first { percentileText = percentileText.dropFirst("first.".count) }
            guard percentileText.hasPrefix("p"), let p = Double(percentileText.dropFirst()), p > 0, p <= 100 else {
                throw LoadError(.badThreshold, "threshold \(text): \(name) is not errors, late, never_sent, rate, message_rate or a percentile (p99, actual.p99.9, first.p99)")
            }
            metric = first ? .firstMessage(percentile: p, fromActual: fromActual) : .latency(percentile: p, fromActual: fromActual)
        }
        if metric.isLatency {
            let units: [(String, Double)] = [("ms", 1), ("us", 0.001), ("µs", 0.001), ("s", 1000)]
            guard let unit = units.first(where: { value.hasSuffix($0.0) }), let number = Double(value.dropLast(unit.0.count)), number >= 0 else {
                throw LoadError(.badThreshold, "threshold \(text): a latency needs a unit (20ms, 1s, 500us)")
            }
            limit = number * unit.1
            percent = false
            return
        }
        percent = value.hasSuffix("%")
        if percent { value.removeLast() }
        guard let number = Double(value), number >= 0 else {
            throw LoadError(.badThreshold, "threshold \(text): \(value) is not a number")
        }
        if case .rate = metric, !percent { throw LoadError(.badThreshold, "threshold \(text): a rate is a percentage of the target (rate>=99%)") }
        if case .messageRate = metric, percent { throw LoadError(.badThreshold, "threshold \(text): a message rate is per second (message_rate>=1000)") }
        limit = percent ? number / 100 : number
    }

    /// The measured value (milliseconds, fraction or count) and whether it passes.
    public func evaluate(_ report: LoadReport) -> (measured: String, passed: Bool) {
        let total = report.total
        let measured: Double
        switch metric {
        case .latency(let p, let fromActual):
            let h = fromActual ? total.fromActual : total.fromIntended
            measured = h.totalCount == 0 ? 0 : Double(h.valueAtPercentile(p)) / 1000
        case .firstMessage(let p, let fromActual):
            let h = fromActual ? total.firstMessage : total.firstMessageFromIntended
            // No first message at all fails any bound on it.
            measured = h.totalCount == 0 ? .infinity : Double(h.valueAtPercentile(p)) / 1000
        case .messageRate: measured = report.messageRate()
        case .errors: measured = percent ? report.errorRatio : Double(total.errors)
        case .late: measured = percent ? (total.sent == 0 ? 0 : Double(total.late) / Double(total.sent)) : Double(total.late)
        case .neverSent:
            let due = total.sent + total.neverSent
            measured = percent ? (due == 0 ? 0 : Double(total.neverSent) / Double(due)) : Double(total.neverSent)
        case .rate:
            let target = report.configuration.schedule.steps.reduce(0.0) { $0 + $1.expectedArrivals }
            measured = target == 0 ? 1 : Double(total.sent) / target
        }
        let passed: Bool
        switch comparison {
        case .less: passed = measured < limit
        case .lessOrEqual: passed = measured <= limit
        case .greater: passed = measured > limit
        case .greaterOrEqual: passed = measured >= limit
        }
        let shown: String
        if metric.isLatency { shown = measured.isFinite ? "\(fixed(measured, 3))ms" : "no message" } else if case .messageRate = metric { shown = "\(fixed(measured, 1))/s" } else if percent { shown = "\(fixed(measured * 100, 3))%" } else { shown = fixed(measured, 0) }
        return (shown, passed)
    }
}

extension LoadThreshold.Metric {
    var isLatency: Bool {
        switch self {
        case .latency, .firstMessage: true
        case .errors, .late, .neverSent, .rate, .messageRate: false
        }
    }
}
