import STBAuth
import STBMessages
import STBProject
import STBRPC
import Testing

/// Versions of a 10,000-option configuration: the diff is right at that size, and the
/// test prints how long CommitVersion and DiffVersions take (figures, not a benchmark).
@Suite("project versions at 10,000 options", .serialized)
struct ProjectVersionScaleTests {
    static let options = 10_000

    static func key(_ index: Int) -> String { "o\(String(100_000 + index).dropFirst())" }

    /// One module, 100 groups of 100 integer options; every 50th is excluded by default.
    static var seed: String {
        var groups: [String] = []
        for group in 0..<(options / 100) {
            var entries: [String] = []
            for index in (group * 100)..<(group * 100 + 100) {
                entries.append(#"{"key": "\#(key(index))", "name": "Option \#(index)", "type": "integer", "default": 0, "included_by_default": \#(index % 50 != 0)}"#)
            }
            groups.append(#"{"key": "g\#(group)", "name": "Group \#(group)", "options": [\#(entries.joined(separator: ","))]}"#)
        }
        return #"{"modules": [{"key": "big", "name": "Big", "groups": [\#(groups.joined(separator: ","))]}]}"#
    }

    static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }

    static func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

    @Test("CommitVersion and DiffVersions of two 10,000-option versions")
    func largeVersions() async throws {
        try await ProjectHarness.with(seed: Self.seed) { harness in
            try await harness.createProject("big")
            // Version 1: every option overridden, half of the default-excluded ones included.
            var changes = (0..<Self.options).map { value(Self.key($0), "\($0 + 1)") }
            changes += stride(from: 0, to: Self.options, by: 100).map { include(Self.key($0), true) }
            // One change per option in a batch: the inclusions go in a second one.
            try await harness.set("big", Array(changes.prefix(Self.options)))
            try await harness.set("big", Array(changes.dropFirst(Self.options)))
            let clock = ContinuousClock()
            var commits: [Double] = []
            let start = clock.now
            let first = try await harness.commit("big", "all options")
            commits.append(Self.milliseconds(clock.now - start))
            #expect(first.number == 1)

            // Version 2: 1,000 values changed, 100 options excluded, the other 100 included.
            let changedIndexes = (1...2000).map { $0 * 3 + 1 }.filter { $0 % 50 != 0 }.prefix(1000)
            var second = changedIndexes.map { value(Self.key($0), "-\($0)") }
            let changed = Set(second.map(\.key))
            second += stride(from: 0, to: Self.options, by: 100).map { include(Self.key($0), false) }
            second += stride(from: 50, to: Self.options, by: 100).map { include(Self.key($0), true) }
            try await harness.set("big", second)
            let start2 = clock.now
            let last = try await harness.commit("big", "second")
            commits.append(Self.milliseconds(clock.now - start2))

            var diffs: [Double] = []
            var diff = Stb_Project_V1_DiffVersionsResponse()
            for _ in 0..<10 {
                let start = clock.now
                diff = try await harness.diff("big", from: 1, to: 2)
                diffs.append(Self.milliseconds(clock.now - start))
            }
            #expect(diff.changed.count == changed.count && Set(diff.changed.map(\.key)) == changed)
            #expect(diff.removed.count == 100 && diff.added.count == 100)
            #expect(diff.fromHash == first.hash_p && diff.toHash == last.hash_p)
            #expect(try await harness.diff("big", from: 2, to: 0).changed.isEmpty)

            // More commits of one changed option each, for a steadier figure.
            for round in 0..<5 {
                try await harness.set("big", [value(Self.key(round + 1), "\(round + 90_000)")])
                let start = clock.now
                try await harness.commit("big", "round \(round)")
                commits.append(Self.milliseconds(clock.now - start))
            }
            let included = first.canonicalJson.filter { $0 == ":" }.count
            print("""
                project versions at \(Self.options) options (\(included) included; debug build): \
                CommitVersion median \(Self.median(commits)) ms (all: \(commits.map { Int($0) })), \
                DiffVersions median \(Self.median(diffs)) ms (all: \(diffs.map { Int($0) }))
                """)
        }
    }
}
