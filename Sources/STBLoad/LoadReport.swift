import STBMessages
import Histogram
import STBJSON

/// What a run saw, per step and in total, as text for people and JSON for scripts.
public struct LoadReport: Sendable {
    public let configuration: LoadConfiguration
    /// One entry per schedule step.
    public let steps: [StepStatistics]
    /// From the first intended send to the last reply.
    public let elapsedNanos: UInt64
    /// Set when the run could not start at all.
    public let setupError: String?

    /// Every step added together.
    public var total: StepStatistics {
        steps.reduce(into: StepStatistics()) { $0.add($1) }
    }

    /// The error fraction of the whole run (0 when nothing ended).
    public var errorRatio: Double {
        let total = self.total
        return total.completed == 0 ? 0 : Double(total.errors) / Double(total.completed)
    }

    /// Requests sent per second in `step`, against its target.
    public func achievedRate(step index: Int) -> Double {
        Double(steps[index].sent) / (Double(configuration.schedule.steps[index].durationNanos) / 1e9)
    }

    /// Server streams: messages received per second of `step`'s schedule, or (nil) of the
    /// whole run (from the first intended send to the last reply).
    public func messageRate(step index: Int? = nil) -> Double {
        guard let index else { return elapsedNanos == 0 ? 0 : Double(total.messages) / (Double(elapsedNanos) / 1e9) }
        return Double(steps[index].messages) / (Double(configuration.schedule.steps[index].durationNanos) / 1e9)
    }

    /// The JSON form: the method, target, and per step and in total the rates, counts,
    /// statuses and percentiles (milliseconds) from the intended and the actual send time.
    public func json() -> JSONValue {
        var stepValues: [JSONValue] = []
        for (index, step) in steps.enumerated() {
            let planned = configuration.schedule.steps[index]
            var value = Self.statisticsJSON(step, messageRate: messageRate(step: index))
            value["targetRate"] = .double(planned.meanRate)
            value["startRate"] = .double(planned.startRate)
            value["endRate"] = .double(planned.endRate)
            value["durationSeconds"] = .double(Double(planned.durationNanos) / 1e9)
            value["achievedRate"] = .double(achievedRate(step: index))
            stepValues.append(.object(value))
        }
        var members: [String: JSONValue] = [
            "method": .string(configuration.method.path),
            "target": .string("\(configuration.host):\(configuration.port)"),
            "connections": .number(configuration.connections),
            "streamsPerConnection": .number(configuration.streamsPerConnection),
            "inFlightCap": .number(configuration.inFlightCap),
            "poisson": .bool(configuration.schedule.poisson),
            "elapsedSeconds": .double(Double(elapsedNanos) / 1e9),
            "steps": .array(stepValues),
            "total": .object(Self.statisticsJSON(total, messageRate: messageRate())),
        ]
        if let setupError { members["error"] = .string(setupError) }
        return .object(members)
    }

    private static func statisticsJSON(_ s: StepStatistics, messageRate: Double) -> [String: JSONValue] {
        var statuses: [String: JSONValue] = [:]
        for (code, count) in s.statusCounts { statuses[statusName(code)] = .number(count) }
        var value: [String: JSONValue] = [
            "sent": .number(s.sent),
            "completed": .number(s.completed),
            "errors": .number(s.errors),
            "late": .number(s.late),
            "neverSent": .number(s.neverSent),
            "statuses": .object(statuses),
            "latencyFromIntendedMs": s.fromIntended.percentilesJSON(),
            "latencyFromActualMs": s.fromActual.percentilesJSON(),
            "sendLagMs": s.sendLag.percentilesJSON(),
            "errorSamples": .object(s.errorSamples.mapValues { .number($0) }),
        ]
        if s.firstMessage.totalCount > 0 {
            value["firstMessageMs"] = s.firstMessage.percentilesJSON()
            value["firstMessageFromIntendedMs"] = s.firstMessageFromIntended.percentilesJSON()
            value["messages"] = .number(s.messages)
            value["messagesPerSecond"] = .double(messageRate)
        }
        return value
    }

    /// The text form: one block per step, then the total.
    public func text() -> String {
        var lines: [String] = []
        if let setupError { return "stb-load: \(setupError)\n" }
        lines.append("\(configuration.method.path) at \(configuration.host):\(configuration.port): \(configuration.connections) connections × \(configuration.streamsPerConnection) streams, in-flight cap \(configuration.inFlightCap)\(configuration.schedule.poisson ? ", Poisson arrivals" : "")")
        for (index, step) in steps.enumerated() {
            let planned = configuration.schedule.steps[index]
            let target = planned.startRate == planned.endRate
                ? "\(fixed(planned.startRate, 1))/s" : "\(fixed(planned.startRate, 1))→\(fixed(planned.endRate, 1))/s"
            lines.append("step \(index + 1): target \(target) for \(fixed(Double(planned.durationNanos) / 1e9, 1)) s, sent \(fixed(achievedRate(step: index), 1))/s")
            lines += Self.statisticsText(step, messageRate: messageRate(step: index))
        }
        if steps.count > 1 {
            lines.append("total:")
            lines += Self.statisticsText(total, messageRate: messageRate())
        }
        lines.append("elapsed \(fixed(Double(elapsedNanos) / 1e9, 2)) s")
        return lines.joined(separator: "\n") + "\n"
    }

    private static func statisticsText(_ s: StepStatistics, messageRate: Double) -> [String] {
        let statuses = s.statusCounts.keys.sorted().map { "\(statusName($0)) \(s.statusCounts[$0] ?? 0)" }.joined(separator: ", ")
        var lines = [
            "  sent \(s.sent), completed \(s.completed), errors \(s.errors), late \(s.late), never sent \(s.neverSent)",
            "  statuses: \(statuses.isEmpty ? "none" : statuses)",
            "  latency from intended send (ms): \(percentilesText(s.fromIntended))",
            "  latency from actual send (ms):   \(percentilesText(s.fromActual))   (what a closed-loop tool reports)",
            "  send lag (ms):                   \(percentilesText(s.sendLag))",
        ]
        if s.firstMessage.totalCount > 0 {
            lines.append("  first message from intended (ms): \(percentilesText(s.firstMessageFromIntended))")
            lines.append("  first message from actual (ms):   \(percentilesText(s.firstMessage))")
            lines.append("  messages \(s.messages), \(fixed(messageRate, 1))/s")
        }
        for (message, count) in s.errorSamples.sorted(by: { $0.value > $1.value }) {
            lines.append("  error ×\(count): \(message)")
        }
        return lines
    }

    private static func percentilesText(_ h: Histogram<UInt64>) -> String {
        guard h.totalCount > 0 else { return "none" }
        var parts = reportedPercentiles.map { "\(percentileName($0)) \(fixed(Double(h.valueAtPercentile($0)) / 1000, 3))" }
        parts.append("max \(fixed(Double(h.max) / 1000, 3))")
        return parts.joined(separator: "  ")
    }
}

/// The gRPC status name of a code (`OK`, `UNAVAILABLE`), or its number.
func statusName(_ code: Int) -> String {
    let names = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    ]
    return names.indices.contains(code) ? names[code] : "\(code)"
}

/// `value` with `digits` decimals, without Foundation.
func fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let whole = Int(scaled / scale)
    var text = (value < 0 && scaled > 0 ? "-" : "") + String(whole)
    if digits > 0 {
        let fraction = Int(scaled - Double(whole) * scale)
        let digitsText = String(fraction)
        text += "." + String(repeating: "0", count: digits - digitsText.count) + digitsText
    }
    return text
}
