import STBMessages

/// Parsing of the command-line forms of durations and schedules, shared by `stb-load`
/// and anything else that takes a schedule as text.
public enum LoadArguments {
    /// `500ms`, `10s`, `2m`, `250us` → nanoseconds.
    public static func duration(_ text: String, option: String) throws(LoadError) -> UInt64 {
        let units: [(String, Double)] = [("ms", 1e6), ("us", 1e3), ("s", 1e9), ("m", 60e9)]
        guard let unit = units.first(where: { text.hasSuffix($0.0) }),
              let number = Double(text.dropLast(unit.0.count)), number.isFinite, number > 0,
              number * unit.1 <= Double(LoadSchedule.maximumDurationNanos)
        else {
            throw LoadError(.badSchedule, "\(option) \(text): a duration is a positive number with a unit (500ms, 10s, 2m), at most a day")
        }
        return UInt64(number * unit.1)
    }

    /// `R` requests per second.
    public static func rate(_ text: String, option: String) throws(LoadError) -> Double {
        guard let rate = Double(text), rate.isFinite, rate >= 0 else {
            throw LoadError(.badSchedule, "\(option) \(text): a rate is a number of requests per second")
        }
        return rate
    }

    /// `R:D,R:D,…`: constant-rate steps.
    public static func steps(_ text: String) throws(LoadError) -> [LoadSchedule.Step] {
        var steps: [LoadSchedule.Step] = []
        for part in text.split(separator: ",") {
            let pieces = part.split(separator: ":").map(String.init)
            guard pieces.count == 2 else { throw LoadError(.badSchedule, "--steps \(part): a step is RATE:DURATION (1000:10s)") }
            steps.append(LoadSchedule.Step(rate: try rate(pieces[0], option: "--steps"), durationNanos: try duration(pieces[1], option: "--steps")))
        }
        return steps
    }

    /// `FROM:TO:D`: a linear ramp.
    public static func ramp(_ text: String) throws(LoadError) -> LoadSchedule.Step {
        let pieces = text.split(separator: ":").map(String.init)
        guard pieces.count == 3 else { throw LoadError(.badSchedule, "--ramp \(text): a ramp is FROM:TO:DURATION (100:5000:30s)") }
        return LoadSchedule.Step(
            startRate: try rate(pieces[0], option: "--ramp"), endRate: try rate(pieces[1], option: "--ramp"),
            durationNanos: try duration(pieces[2], option: "--ramp"))
    }

    /// The method a path names: `/pkg.Service/Method`, `pkg.Service/Method` or
    /// `pkg.Service.Method`.
    public static func method(_ text: String) throws(LoadError) -> ProtoMethodDescriptor {
        var path = text.hasPrefix("/") ? text : "/" + text
        if !path.dropFirst().contains("/"), let dot = path.lastIndex(of: ".") {
            path.replaceSubrange(dot...dot, with: "/")
        }
        guard let method = ProtoMethodDescriptor.named(path: path) else {
            throw LoadError(.unknownMethod, "--method \(text): no method \(path) in Protos/")
        }
        return method
    }
}
