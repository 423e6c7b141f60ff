import Testing

/// The shared/exclusive gate the restart tests rely on (no database needed).
@Suite("Test support: the database gate")
struct TestSupportTests {
    @Test("exclusive waits for shared holders; later shared requests queue behind a waiting exclusive")
    func gateOrdering() async throws {
        let gate = DatabaseGate()
        let log = Locked<[String]>([])
        await gate.lock(exclusive: false)
        log.withLock { $0.append("reader 1 in") }

        let writer = Task {
            await gate.lock(exclusive: true)
            log.withLock { $0.append("writer in") }
            try? await Task.sleep(for: .milliseconds(20))
            log.withLock { $0.append("writer out") }
            await gate.unlock(exclusive: true)
        }
        #expect(try await TestDatabase.eventually { await gate.queued == 1 }, "the writer never queued")
        let reader2 = Task {
            await gate.lock(exclusive: false)
            log.withLock { $0.append("reader 2 in") }
            await gate.unlock(exclusive: false)
        }
        #expect(try await TestDatabase.eventually { await gate.queued == 2 }, "the second reader never queued")
        #expect(log.value == ["reader 1 in"], "the writer or the queued reader got in while reader 1 held the gate")

        log.withLock { $0.append("reader 1 out") }
        await gate.unlock(exclusive: false)
        await writer.value
        await reader2.value
        #expect(log.value == ["reader 1 in", "reader 1 out", "writer in", "writer out", "reader 2 in"])
    }

    @Test("nested shared access does not wait, not even behind a queued exclusive")
    func nestedShared() async throws {
        // Uses the real gate: this test is itself outside any suite trait.
        let outcome = try await TestDatabase.shared {
            // Detached: task-local access is not inherited, as for another test.
            let writer = Task.detached { try await TestDatabase.exclusive { "writer" } }
            #expect(try await TestDatabase.eventually { await DatabaseGate.instance.queued >= 1 }, "the writer never queued")
            let nested = try await TestDatabase.shared { "nested" }
            await #expect(throws: TestDatabase.GateMisuse.self) {
                try await TestDatabase.exclusive {}
            }
            return (nested, writer)
        }
        #expect(outcome.0 == "nested")
        #expect(try await outcome.1.value == "writer")
    }
}
