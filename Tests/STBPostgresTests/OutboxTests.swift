import Glibc
import STBEventLoop
import STBPostgres
import Synchronization
import Testing

/// An outbox table and channel of its own for one test.
struct TestOutbox {
    let outbox: Outbox

    static func create(_ pool: PostgresPool) async throws -> TestOutbox {
        let table = TestDatabase.uniqueName("events")
        _ = try await pool.withConnection { connection in
            try await connection.execute(script: """
                CREATE TABLE \(table)_revision (revision bigint NOT NULL);
                INSERT INTO \(table)_revision VALUES (0);
                CREATE TABLE \(table) (
                    id bigserial PRIMARY KEY,
                    revision bigint NOT NULL,
                    entity text NOT NULL,
                    entity_key text NOT NULL,
                    action text NOT NULL,
                    payload bytea NOT NULL,
                    actor text NOT NULL DEFAULT '',
                    created_at timestamptz NOT NULL DEFAULT now()
                );
                CREATE INDEX ON \(table) (revision, id);
                """)
        }
        return TestOutbox(outbox: Outbox(table: table, channel: table, revisionTable: "\(table)_revision"))
    }

    /// Takes the next revision and records `events` at it, as a service's change does.
    func append(_ events: [NewOutboxEvent], in transaction: PostgresTransaction) async throws {
        let revision = try await outbox.nextRevision(in: transaction)
        try await outbox.append(events, at: revision, in: transaction)
    }

    /// Every committed event's key, in cursor order, read straight from the table.
    func committedKeys(_ pool: PostgresPool) async throws -> [String] {
        try await pool.query(PostgresQuery(sql: "SELECT entity_key FROM \(outbox.table) ORDER BY revision, id"))
            .map { try $0.decode(0, as: String.self) }
    }
}

@Suite("Outbox and change feed")
struct OutboxTests {
    @Test("events are written with the transaction, read back in order with their payloads")
    func appendAndRead() async throws {
        try await TestDatabase.shared {
            let pool = TestDatabase.pool(size: 2)
            let test = try await TestOutbox.create(pool)
            try await pool.withTransaction { transaction in
                try await test.append([
                    NewOutboxEvent(entity: "option", key: "a", action: "created", payload: [1, 2, 3], actor: "alice"),
                    NewOutboxEvent(entity: "option", key: "b", action: "updated", payload: [], actor: "alice"),
                ], in: transaction)
            }
            await #expect(throws: TestFailure.self) {
                try await pool.withTransaction { transaction in
                    try await test.append([NewOutboxEvent(entity: "option", key: "rolled-back", action: "created")], in: transaction)
                    throw TestFailure("abort")
                }
            }
            let events = try await readEventually(test.outbox, count: 2, pool: pool)
            try #require(events.map(\.key) == ["a", "b"])
            #expect(events[0].payload == [1, 2, 3] && events[0].actor == "alice" && events[0].action == "created")
            #expect(events[0].cursor < events[1].cursor)
            #expect(OutboxCursor(events[1].cursor.description) == events[1].cursor)
            #expect(try await test.outbox.read(after: events[0].cursor, limit: 10, pool: pool).map(\.key) == ["b"])
            #expect(try await test.outbox.read(after: events[1].cursor, limit: 10, pool: pool).isEmpty)
            await pool.close()
        }
    }

    @Test("a change waits for the one before it to commit: the feed follows commit order, nothing read early")
    func commitOrder() async throws {
        try await TestDatabase.shared {
            let pool = TestDatabase.pool(size: 3)
            let test = try await TestOutbox.create(pool)
            let early = Gate()
            let late = Gate()
            // The first transaction takes its revision and holds it open.
            async let first: Void = pool.withTransaction { transaction in
                try await test.append([NewOutboxEvent(entity: "e", key: "first", action: "created")], in: transaction)
                early.open()
                await late.wait()
            }
            await early.wait()
            // The second cannot take a revision until the first ends.
            let secondDone = Locked(false)
            async let second: Void = pool.withTransaction { transaction in
                try await test.append([NewOutboxEvent(entity: "e", key: "second", action: "created")], in: transaction)
                secondDone.withLock { $0 = true }
            }
            try await Task.sleep(for: .milliseconds(200))
            #expect(secondDone.withLock { $0 } == false, "the second change took a revision while the first was open")
            #expect(try await test.outbox.read(after: .start, limit: 10, pool: pool).isEmpty)
            late.open()
            try await first
            try await second
            let events = try await readEventually(test.outbox, count: 2, pool: pool)
            #expect(events.map(\.key) == ["first", "second"])
            #expect(events.map(\.cursor.revision) == [1, 2])
            await pool.close()
        }
    }

    @Test("concurrent changes of the same rows: the last event per key carries the stored value")
    func sameRowUpdates() async throws {
        try await TestDatabase.shared {
            let pool = TestDatabase.pool(size: 8)
            let test = try await TestOutbox.create(pool)
            let items = TestDatabase.uniqueName("items")
            _ = try await pool.withConnection { connection in
                try await connection.execute(script: """
                    CREATE TABLE \(items) (key text PRIMARY KEY, value bigint NOT NULL);
                    INSERT INTO \(items) VALUES ('a', 0), ('b', 0), ('c', 0);
                    """)
            }
            // As a service's change does: the row first, then the revision and the event.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<8 {
                    group.addTask {
                        for round in 0..<40 {
                            let key = ["a", "b", "c"][(writer + round) % 3]
                            let value = Int64(writer * 1000 + round)
                            try await pool.withTransaction { transaction in
                                _ = try await transaction.query(PostgresQuery(
                                    sql: "UPDATE \(items) SET value = $1 WHERE key = $2", bindings: PostgresBindings(value, key)))
                                try await Task.sleep(for: .microseconds(Int.random(in: 0...500)))
                                try await test.append([NewOutboxEvent(entity: "item", key: key, action: "updated", payload: Array(String(value).utf8))], in: transaction)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let events = try await readAll(test.outbox, pool: pool)
            #expect(events.count == 320)
            #expect(zip(events, events.dropFirst()).allSatisfy { $0.cursor.revision < $1.cursor.revision }, "revisions out of order along the feed")
            var last: [String: String] = [:]
            for event in events { last[event.key] = String(decoding: event.payload, as: UTF8.self) }
            let stored = try await pool.query(PostgresQuery(sql: "SELECT key, value FROM \(items) ORDER BY key"))
            for row in stored {
                let (key, value) = try row.decode(String.self, Int64.self)
                #expect(last[key] == String(value), "the feed ends with \(last[key] ?? "nothing") for \(key), the table holds \(value)")
            }
            await pool.close()
        }
    }

    @Test("a caught-up feed reads again only once its signal moves: one query per wake-up")
    func caughtUpFeedWaitsForTheSignal() async throws {
        try await TestDatabase.shared {
            let pool = TestDatabase.pool(size: 2)
            let test = try await TestOutbox.create(pool)
            func commit(_ key: String) async throws {
                try await pool.withTransaction { transaction in
                    try await test.append([NewOutboxEvent(entity: "e", key: key, action: "created")], in: transaction)
                }
            }
            // Only the test moves this signal.
            let signal = ChangeSignal()
            let feed = OutboxFeed(outbox: test.outbox, pool: pool, signal: signal)
            var batches = feed.batches(after: .start).makeAsyncIterator()
            try await commit("first")
            #expect(try await batches.next()?.map(\.key) == ["first"])

            // The first read was short: it saw everything committed before it. This commit
            // is not announced, so the feed must not come back with it before the bump.
            try await commit("second")
            let bumped = Atomic<Bool>(false)
            let waker = Task {
                try? await Task.sleep(for: .seconds(1))
                bumped.store(true, ordering: .sequentiallyConsistent)
                signal.bump()
            }
            #expect(try await batches.next()?.map(\.key) == ["second"])
            let wokenFirst = bumped.load(ordering: .sequentiallyConsistent)
            #expect(wokenFirst, "the feed read again without a wake-up")
            await waker.value
            await pool.close()
        }
    }

    @Test("8 writers with random transactions, one tailing reader: every committed event, once, none skipped")
    func concurrentWritersOneReader() async throws {
        try await TestDatabase.shared {
            try await runWritersAndReader(restartMidRun: false)
        }
    }

    @Test("the same while Postgres restarts mid-run", .enabled(if: TestDatabase.control != nil, "needs the local cluster (STB_PG_CONTROL)"))
    func concurrentWritersWithRestart() async throws {
        try await TestDatabase.exclusive {
            try await runWritersAndReader(restartMidRun: true)
        }
    }

    @Test(
        "the listener re-subscribes after a restart: a commit wakes the feed without the poll",
        .enabled(if: TestDatabase.control != nil, "needs the local cluster (STB_PG_CONTROL)")
    )
    func listenerResubscribes() async throws {
        try await TestDatabase.exclusive {
            let pool = TestDatabase.pool(size: 2)
            let test = try await TestOutbox.create(pool)
            // A poll interval far beyond the test: only notifications can wake the reader.
            let listener = PostgresListener(
                conninfo: TestDatabase.conninfo, channels: [test.outbox.channel],
                loop: TestDatabase.group.loops[0], pollInterval: .seconds(600)
            )
            listener.start()
            try await waitUntil { listener.statistics.subscriptions == 1 }
            let feed = OutboxFeed(outbox: test.outbox, pool: pool, signal: listener.signal)
            var batches = feed.batches(after: .start).makeAsyncIterator()

            try await TestDatabase.restartServer()
            try await waitUntil { listener.statistics.subscriptions == 2 }

            let started = ContinuousClock.now
            try await pool.withTransaction { transaction in
                try await test.append([NewOutboxEvent(entity: "e", key: "after-restart", action: "created")], in: transaction)
            }
            let batch = try await batches.next()
            #expect(batch?.map(\.key) == ["after-restart"])
            #expect(ContinuousClock.now - started < .seconds(20))
            #expect(listener.statistics.notifications >= 1)
            await listener.stop()
            await pool.close()
        }
    }
}

/// Writers commit (or roll back) transactions of 0–4 events with random pauses; a reader
/// follows the feed. At the end the reader must hold exactly the table's events, in
/// cursor order, each once, including every commit a writer saw succeed and no event of
/// a rolled-back transaction.
private func runWritersAndReader(restartMidRun: Bool) async throws {
    let writerPool = TestDatabase.pool(size: 8)
    let readerPool = TestDatabase.pool(size: 2)
    let test = try await TestOutbox.create(writerPool)
    let listener = PostgresListener(
        conninfo: TestDatabase.conninfo, channels: [test.outbox.channel],
        loop: TestDatabase.group.loops[1], pollInterval: .milliseconds(250)
    )
    listener.start()
    let feed = OutboxFeed(outbox: test.outbox, pool: readerPool, signal: listener.signal, batchSize: 50)

    let received = Locked<[OutboxEvent]>([])
    let reader = Task {
        for try await batch in feed.batches(after: .start) {
            received.withLock { $0 += batch }
        }
    }

    let acknowledged = Locked<Set<String>>([])
    let rolledBack = Locked<Set<String>>([])
    let failures = Locked(0)
    // With a restart, the writers keep on until it is over, so that it interrupts some.
    let restarted = Locked(!restartMidRun)
    // At least this long, and on a loaded machine longer, until enough traffic to mean
    // anything has been acknowledged (bounded by `latest`).
    let duration: Duration = restartMidRun ? .seconds(4) : .seconds(3)
    let deadline = ContinuousClock.now + duration
    let latest = ContinuousClock.now + duration * 8
    let enoughTraffic = 150
    try await withThrowingTaskGroup(of: Void.self) { group in
        for writer in 0..<8 {
            group.addTask {
                var generator = SystemRandomNumberGenerator()
                var transactionNumber = 0
                while ContinuousClock.now < deadline
                    || (ContinuousClock.now < latest && acknowledged.withLock { $0.count } < enoughTraffic)
                    || (ContinuousClock.now < latest && !restarted.withLock { $0 })
                {
                    transactionNumber += 1
                    let count = Int.random(in: 0...4, using: &generator)
                    let keys = (0..<count).map { "w\(writer)-t\(transactionNumber)-e\($0)" }
                    let rollBack = Int.random(in: 0..<10, using: &generator) == 0
                    do {
                        try await writerPool.withTransaction { transaction in
                            for key in keys {
                                try await test.append([NewOutboxEvent(entity: "stress", key: key, action: "created")], in: transaction)
                                try await Task.sleep(for: .microseconds(Int.random(in: 0...3000)))
                            }
                            if rollBack { throw TestFailure("rollback") }
                        }
                        acknowledged.withLock { $0.formUnion(keys) }
                    } catch is TestFailure {
                        rolledBack.withLock { $0.formUnion(keys) }
                    } catch let error as PostgresError where restartMidRun && error.isRetryable {
                        // Outcome unknown (the commit may or may not have landed): the table decides.
                        failures.withLock { $0 += 1 }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
            }
        }
        if restartMidRun {
            group.addTask {
                try await Task.sleep(for: .milliseconds(1500))
                try await TestDatabase.restartServer()
                restarted.withLock { $0 = true }
            }
        }
        try await group.waitForAll()
    }

    let committed = try await retrying { try await test.committedKeys(writerPool) }
    try await waitUntil(timeout: .seconds(30)) { received.withLock { $0.count } >= committed.count }
    // Anything beyond the committed set would show up within a poll or two.
    try await Task.sleep(for: .milliseconds(300))
    reader.cancel()
    let events = received.withLock { $0 }
    let keys = events.map(\.key)

    #expect(keys == committed, "reader saw \(keys.count) events, table has \(committed.count)")
    #expect(Set(keys).count == keys.count, "an event was delivered twice")
    #expect(zip(events, events.dropFirst()).allSatisfy { $0.cursor < $1.cursor }, "events out of cursor order")
    let acknowledgedKeys = acknowledged.withLock { $0 }
    #expect(acknowledgedKeys.isSubset(of: Set(keys)), "an acknowledged commit is missing")
    #expect(rolledBack.withLock { $0 }.isDisjoint(with: Set(keys)), "a rolled-back event was delivered")
    #expect(committed.count > 100, "too little traffic to mean anything: \(committed.count)")
    if restartMidRun {
        #expect(failures.withLock { $0 } > 0, "the restart did not interrupt any writer")
        try? await waitUntil { listener.statistics.subscriptions >= 2 }
        #expect(listener.statistics.subscriptions >= 2, "the listener did not re-subscribe")
    }
    print("outbox stress\(restartMidRun ? " with restart" : ""): \(committed.count) committed events, \(acknowledgedKeys.count) acknowledged, \(failures.withLock { $0 }) interrupted transactions")
    await listener.stop()
    await writerPool.close()
    await readerPool.close()
}

/// Reads from the start until `count` events are readable (or 30 s pass), then once more
/// to catch any extra.
private func readEventually(_ outbox: Outbox, count: Int, pool: PostgresPool) async throws -> [OutboxEvent] {
    let deadline = ContinuousClock.now + .seconds(30)
    while ContinuousClock.now < deadline {
        if try await outbox.read(after: .start, limit: 100, pool: pool).count >= count { break }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try await outbox.read(after: .start, limit: 100, pool: pool)
}

/// Every event, following the feed in batches.
private func readAll(_ outbox: Outbox, pool: PostgresPool) async throws -> [OutboxEvent] {
    var events: [OutboxEvent] = []
    while true {
        let batch = try await outbox.read(after: events.last?.cursor ?? .start, limit: 100, pool: pool)
        if batch.isEmpty { return events }
        events += batch
    }
}

/// Retries `body` while the server is coming back.
private func retrying<T>(_ body: () async throws -> T) async throws -> T {
    for _ in 0..<200 {
        do { return try await body() } catch let error as PostgresError where error.isRetryable {
            try await Task.sleep(for: .milliseconds(100))
        }
    }
    return try await body()
}

/// Polls `condition` until it holds, failing after `timeout`.
func waitUntil(timeout: Duration = .seconds(30), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { throw TestFailure("condition not met within \(timeout)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// A one-way gate between tasks.
final class Gate: Sendable {
    private let opened = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiters = opened.withLock { state in
            state.open = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let isOpen = opened.withLock { state in
                if !state.open { state.waiters.append(continuation) }
                return state.open
            }
            if isOpen { continuation.resume() }
        }
    }
}
