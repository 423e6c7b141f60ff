import Glibc

/// When requests are meant to be sent: steps run one after the other, each at a constant
/// rate or a linear ramp, with arrivals evenly spaced or Poisson.
///
/// Each arrival's intended time is fixed before the run: the generator never waits for
/// a reply to decide when to send the next request (an open model).
public struct LoadSchedule: Sendable, Hashable {
    /// One phase of the schedule.
    public struct Step: Sendable, Hashable {
        /// Requests per second at the step's start.
        public var startRate: Double
        /// Requests per second at its end (equal to `startRate` for a constant rate).
        public var endRate: Double
        /// How long it lasts, in nanoseconds.
        public var durationNanos: UInt64

        /// A constant `rate` for `durationNanos`.
        public init(rate: Double, durationNanos: UInt64) {
            self.init(startRate: rate, endRate: rate, durationNanos: durationNanos)
        }

        /// A linear ramp from `startRate` to `endRate` over `durationNanos`.
        public init(startRate: Double, endRate: Double, durationNanos: UInt64) {
            self.startRate = startRate
            self.endRate = endRate
            self.durationNanos = durationNanos
        }

        /// How many arrivals the step is meant to have (rounded down).
        public var expectedArrivals: Double {
            (startRate + endRate) / 2 * Double(durationNanos) / 1e9
        }

        /// The mean rate over the step.
        public var meanRate: Double { (startRate + endRate) / 2 }

        /// The time (seconds from the step's start) by which `count` arrivals are due:
        /// the inverse of the cumulative rate `r0·t + (r1 − r0)·t² / 2D`.
        func time(ofCumulative count: Double) -> Double {
            let seconds = Double(durationNanos) / 1e9
            let a = (endRate - startRate) / (2 * seconds)
            if abs(a) < 1e-12 { return count / startRate }
            let disc = startRate * startRate + 4 * a * count
            return (-startRate + disc.squareRoot()) / (2 * a)
        }
    }

    /// The largest rate a step may ask for.
    public static let maximumRate: Double = 2_000_000
    /// The longest a schedule may last (one day).
    public static let maximumDurationNanos: UInt64 = 86_400 * 1_000_000_000

    /// The phases, in order.
    public var steps: [Step]
    /// Poisson arrivals (exponential gaps at the step's rate) instead of even spacing.
    public var poisson: Bool
    /// Seeds the Poisson gaps, so a run can be repeated.
    public var seed: UInt64

    /// Checks every step; throws `badSchedule` naming the step and the reason.
    public init(steps: [Step], poisson: Bool = false, seed: UInt64 = 1) throws(LoadError) {
        guard !steps.isEmpty else { throw LoadError(.badSchedule, "the schedule has no steps") }
        var total: UInt64 = 0
        for (index, step) in steps.enumerated() {
            let name = "step \(index + 1)"
            for rate in [step.startRate, step.endRate] {
                guard rate.isFinite, rate >= 0 else { throw LoadError(.badSchedule, "\(name): a rate must be a number ≥ 0") }
                guard rate <= Self.maximumRate else {
                    throw LoadError(.badSchedule, "\(name): \(rate)/s is above the largest rate, \(Int(Self.maximumRate))/s")
                }
            }
            guard step.durationNanos > 0 else { throw LoadError(.badSchedule, "\(name): the duration must be above zero") }
            guard step.startRate > 0 || step.endRate > 0 else { throw LoadError(.badSchedule, "\(name): a rate of zero sends nothing") }
            total += min(step.durationNanos, Self.maximumDurationNanos)
            guard total <= Self.maximumDurationNanos else { throw LoadError(.badSchedule, "the schedule lasts more than a day") }
        }
        self.steps = steps
        self.poisson = poisson
        self.seed = seed
    }

    /// The whole schedule's length in nanoseconds.
    public var durationNanos: UInt64 { steps.reduce(0) { $0 + $1.durationNanos } }

    /// The arrivals in order.
    public func makeArrivals() -> Arrivals { Arrivals(schedule: self) }

    /// One request's intended send time, from the start of the run, and its step.
    public struct Arrival: Sendable, Hashable {
        public var offsetNanos: UInt64
        public var step: Int
    }

    /// The arrivals of a schedule, computed as they are taken.
    public struct Arrivals: Sequence, IteratorProtocol, Sendable {
        private let schedule: LoadSchedule
        private var step = 0
        private var stepStart: UInt64 = 0
        private var cumulative: Double = 0
        private var random: SplitMix64

        init(schedule: LoadSchedule) {
            self.schedule = schedule
            self.random = SplitMix64(seed: schedule.seed)
        }

        public mutating func next() -> Arrival? {
            while step < schedule.steps.count {
                let current = schedule.steps[step]
                // Arrival k is due when the cumulative rate reaches k (evenly spaced, the first
                // at the step's start), or the sum of k unit exponential gaps (Poisson, at a
                // rate that follows the step, constant or ramp).
                let position = schedule.poisson ? cumulative + -log(1 - random.nextUnit()) : cumulative
                let seconds = current.time(ofCumulative: position)
                if seconds.isFinite, seconds >= 0, seconds * 1e9 < Double(current.durationNanos) {
                    cumulative = schedule.poisson ? position : cumulative + 1
                    return Arrival(offsetNanos: stepStart + UInt64(seconds * 1e9), step: step)
                }
                stepStart += current.durationNanos
                step += 1
                cumulative = 0
            }
            return nil
        }
    }
}

/// A small seeded generator (SplitMix64) for Poisson gaps.
struct SplitMix64: Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in [0, 1).
    mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }
}
