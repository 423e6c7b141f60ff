import Testing
@testable import STBLoad

@Suite("load schedules: when each request is meant to be sent")
struct LoadScheduleTests {
    @Test("a constant rate spaces arrivals evenly from the step's start")
    func constant() throws {
        let schedule = try LoadSchedule(steps: [.init(rate: 1000, durationNanos: 1_000_000_000)])
        let arrivals = Array(schedule.makeArrivals())
        #expect(arrivals.count == 1000)
        #expect(arrivals.first?.offsetNanos == 0)
        #expect(arrivals[1].offsetNanos == 1_000_000)
        #expect(arrivals.last?.offsetNanos == 999_000_000)
    }

    @Test("steps follow one another, each arrival tagged with its step")
    func steps() throws {
        let schedule = try LoadSchedule(steps: [.init(rate: 10, durationNanos: 1_000_000_000), .init(rate: 20, durationNanos: 500_000_000)])
        let arrivals = Array(schedule.makeArrivals())
        #expect(arrivals.filter { $0.step == 0 }.count == 10)
        #expect(arrivals.filter { $0.step == 1 }.count == 10)
        #expect(arrivals.first { $0.step == 1 }?.offsetNanos == 1_000_000_000)
        #expect(zip(arrivals, arrivals.dropFirst()).allSatisfy { $0.offsetNanos <= $1.offsetNanos })
    }

    @Test("a linear ramp sends the area under its rate, denser towards the higher end")
    func ramp() throws {
        let schedule = try LoadSchedule(steps: [.init(startRate: 0, endRate: 2000, durationNanos: 2_000_000_000)])
        let arrivals = Array(schedule.makeArrivals())
        #expect(abs(arrivals.count - 2000) <= 1)
        let firstHalf = arrivals.filter { $0.offsetNanos < 1_000_000_000 }.count
        // A ramp from 0 sends a quarter of its requests in its first half.
        #expect(abs(firstHalf - 500) <= 2)
    }

    @Test("Poisson arrivals average the rate, are repeatable by seed, and differ by seed")
    func poisson() throws {
        let steps = [LoadSchedule.Step(rate: 5000, durationNanos: 2_000_000_000)]
        let a = Array(try LoadSchedule(steps: steps, poisson: true, seed: 3).makeArrivals())
        let b = Array(try LoadSchedule(steps: steps, poisson: true, seed: 3).makeArrivals())
        let c = Array(try LoadSchedule(steps: steps, poisson: true, seed: 4).makeArrivals())
        // 10,000 expected; σ = 100.
        #expect(abs(a.count - 10_000) < 400)
        #expect(a == b)
        #expect(a != c)
        // Exponential gaps: about 63% are shorter than the mean gap (200 µs).
        let gaps = zip(a, a.dropFirst()).map { $1.offsetNanos - $0.offsetNanos }
        let short = Double(gaps.filter { $0 < 200_000 }.count) / Double(gaps.count)
        #expect(abs(short - 0.632) < 0.03)
    }

    @Test("impossible schedules are refused with the step and the reason")
    func refusals() {
        #expect(throws: LoadError.self) { try LoadSchedule(steps: []) }
        #expect(throws: LoadError(.badSchedule, "step 2: 3000000.0/s is above the largest rate, 2000000/s")) {
            try LoadSchedule(steps: [.init(rate: 1, durationNanos: 1), .init(rate: 3_000_000, durationNanos: 1)])
        }
        #expect(throws: LoadError(.badSchedule, "step 1: a rate of zero sends nothing")) {
            try LoadSchedule(steps: [.init(rate: 0, durationNanos: 1_000)])
        }
        #expect(throws: LoadError(.badSchedule, "step 1: a rate must be a number ≥ 0")) {
            try LoadSchedule(steps: [.init(rate: -.infinity, durationNanos: 1_000)])
        }
    }

    @Test("thresholds parse with their units and refuse what they cannot read")
    func thresholds() throws {
        #expect(try LoadThreshold("p99<20ms").limit == 20)
        #expect(try LoadThreshold("actual.p99.9 <= 1s").limit == 1000)
        #expect(try LoadThreshold("errors<0.1%").limit == 0.001)
        #expect(try LoadThreshold("rate>=99%").comparison == .greaterOrEqual)
        #expect(throws: LoadError.self) { try LoadThreshold("p99<20") }
        #expect(throws: LoadError.self) { try LoadThreshold("p200<1ms") }
        #expect(throws: LoadError.self) { try LoadThreshold("speed>1") }
        #expect(throws: LoadError.self) { try LoadThreshold("rate>5") }
        #expect(try LoadThreshold("first.p99<50ms").metric == .firstMessage(percentile: 99, fromActual: false))
        #expect(try LoadThreshold("actual.first.p50<=1s").limit == 1000)
        #expect(try LoadThreshold("message_rate>=1000").limit == 1000)
        #expect(throws: LoadError.self) { try LoadThreshold("message_rate>=10%") }
        #expect(throws: LoadError.self) { try LoadThreshold("first.p99<5") }
    }
}
