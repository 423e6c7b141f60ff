import STBGateway
import STBMessages
import STBRPC
import Testing

@Suite("Login throttling and hashing limits", .serialized)
struct ThrottleTests {
    @Test("Failures grow the delay, then lock the username; the lock ends after its duration")
    func throttlePolicy() {
        var policy = LoginThrottle.Policy(lockAfter: 6, peerLockAfter: 100, lockDuration: .seconds(60))
        policy.freeFailures = 2
        let throttle = LoginThrottle(policy: policy)
        let start = ContinuousClock.now
        var delays: [LoginThrottle.Verdict] = []
        for attempt in 0..<5 {
            delays.append(throttle.verdict(username: "u", peer: "p", now: start))
            #expect(throttle.failed(username: "u", peer: "p", now: start) == (false, false), "attempt \(attempt)")
        }
        #expect(delays == [.proceed(delay: .zero), .proceed(delay: .zero), .proceed(delay: .milliseconds(250)),
                           .proceed(delay: .milliseconds(500)), .proceed(delay: .seconds(1))])
        #expect(throttle.failed(username: "u", peer: "p", now: start) == (true, false))
        #expect(throttle.verdict(username: "u", peer: "p", now: start + .seconds(10)) == .locked(retryAfter: .seconds(50)))
        // Another username from the same peer is not locked (the peer's threshold is higher).
        #expect(throttle.verdict(username: "v", peer: "p", now: start) == .proceed(delay: .zero))
        #expect(throttle.verdict(username: "u", peer: "p", now: start + .seconds(61)) == .proceed(delay: .zero))
    }

    @Test("A peer guessing many usernames is locked too")
    func peerLock() {
        let throttle = LoginThrottle(policy: LoginThrottle.Policy(lockAfter: 100, peerLockAfter: 5, lockDuration: .seconds(60)))
        let now = ContinuousClock.now
        for index in 0..<4 { #expect(throttle.failed(username: "user\(index)", peer: "10.0.0.1", now: now) == (false, false)) }
        #expect(throttle.failed(username: "user4", peer: "10.0.0.1", now: now) == (false, true))
        guard case .locked = throttle.verdict(username: "fresh", peer: "10.0.0.1", now: now) else {
            Issue.record("the peer should be locked")
            return
        }
        #expect(throttle.verdict(username: "fresh", peer: "10.0.0.2", now: now) == .proceed(delay: .zero))
    }

    @Test("Over RPC: after the limit even the right password is refused, and the lock is recorded")
    func lockOverRPC() async throws {
        try await GatewayHarness.with(["GATEWAY_LOGIN_LOCK_AFTER": "3"]) { gateway in
            for _ in 0..<3 { await expectStatus(.unauthenticated) { _ = try await gateway.login("admin", "wrong password!") } }
            let locked = await expectStatus(.resourceExhausted) { _ = try await gateway.login() }
            #expect(locked?.retryInfo != nil)
            let kinds = try await gateway.activityKinds(of: "admin")
            #expect(kinds == ["user_created", "login_failed", "login_failed", "login_failed", "login_locked"])
            // Failed attempts never store what was typed.
            let leaks = try await gateway.count("SELECT count(*) FROM activity WHERE detail::text LIKE '%wrong password%'")
            #expect(leaks == 0)
        }
    }

    @Test("At most `concurrency` hashes run at once; beyond the waiting line callers are turned away")
    func hashLimit() async throws {
        let hasher = PasswordHasher(concurrency: 1, maxWaiting: 0)
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<3 { group.addTask { (try? await hasher.hash("password \(index)")) != nil } }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 }.count >= 1)
        #expect(outcomes.contains(false))
        let stored = try await hasher.hash("a password")
        #expect(stored.hasPrefix("$argon2id$"))
        #expect(try await hasher.verify("a password", against: stored).matches)
        #expect(try await !hasher.verify("another", against: stored).matches)
    }
}
