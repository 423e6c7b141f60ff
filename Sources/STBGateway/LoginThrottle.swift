import Synchronization

/// Failed sign-ins per username and per peer address, in this process: after a few
/// failures (`freeFailures` of a username, a fifth of `peerLockAfter` of a peer) each
/// attempt waits longer (doubling, up to `maximumDelay`), and after
/// `lockAfter` failures of a username (`peerLockAfter` of a peer) attempts are refused
/// for `lockDuration`. Failures older than `lockDuration` are forgotten; a success clears
/// the username's count.
///
/// Unknown usernames count like known ones, so the throttle tells nothing about which
/// accounts exist. The tables hold at most `capacity` entries each (stale ones are
/// dropped first), so a flood of made-up names cannot grow them without bound.
public final class LoginThrottle: Sendable {
    public struct Policy: Sendable {
        public var lockAfter: Int
        public var peerLockAfter: Int
        public var lockDuration: Duration
        /// Failures that cost no delay.
        public var freeFailures = 3
        public var firstDelay: Duration = .milliseconds(250)
        public var maximumDelay: Duration = .seconds(4)
        public var capacity = 100_000

        public init(lockAfter: Int = 10, peerLockAfter: Int = 50, lockDuration: Duration = .seconds(900)) {
            self.lockAfter = lockAfter
            self.peerLockAfter = peerLockAfter
            self.lockDuration = lockDuration
        }
    }

    /// What an attempt must do before it is checked.
    public enum Verdict: Equatable, Sendable {
        /// Go on after waiting `delay` (zero for the first few failures).
        case proceed(delay: Duration)
        /// Refused until the lock ends, `retryAfter` from now.
        case locked(retryAfter: Duration)
    }

    private struct Record {
        var failures = 0
        var lastFailure: ContinuousClock.Instant
        var lockedUntil: ContinuousClock.Instant?
    }

    private struct State {
        var usernames: [String: Record] = [:]
        var peers: [String: Record] = [:]
    }

    public let policy: Policy
    private let state = Mutex(State())

    public init(policy: Policy) {
        self.policy = policy
    }

    /// Whether an attempt for `username` from `peer` may go on, and after how long.
    public func verdict(username: String, peer: String, now: ContinuousClock.Instant = .now) -> Verdict {
        state.withLock { state in
            let user = current(state.usernames[username], now: now)
            let address = current(state.peers[peer], now: now)
            let lockEnds = [user?.lockedUntil, address?.lockedUntil].compactMap { $0 }.filter { $0 > now }.max()
            if let lockEnds { return .locked(retryAfter: lockEnds - now) }
            // A peer may be many people (a NAT, a proxy): its failures start to cost later.
            let peerFree = max(policy.freeFailures, policy.peerLockAfter / 5)
            return .proceed(delay: max(delay(after: user?.failures ?? 0, free: policy.freeFailures), delay(after: address?.failures ?? 0, free: peerFree)))
        }
    }

    /// Records a failure; returns what it locked (a username, a peer, both or nothing).
    @discardableResult
    public func failed(username: String, peer: String, now: ContinuousClock.Instant = .now) -> (username: Bool, peer: Bool) {
        state.withLock { state in
            let lockedUser = record(&state.usernames, username, limit: policy.lockAfter, now: now)
            let lockedPeer = record(&state.peers, peer, limit: policy.peerLockAfter, now: now)
            return (lockedUser, lockedPeer)
        }
    }

    /// Clears the username's failures after a successful sign-in. The peer's stay: one
    /// good account must not reset a peer that is guessing others.
    public func succeeded(username: String) {
        _ = state.withLock { $0.usernames.removeValue(forKey: username) }
    }

    private func current(_ record: Record?, now: ContinuousClock.Instant) -> Record? {
        guard let record else { return nil }
        if let lockedUntil = record.lockedUntil { return lockedUntil > now ? record : nil }
        return now - record.lastFailure < policy.lockDuration ? record : nil
    }

    private func delay(after failures: Int, free: Int) -> Duration {
        guard failures >= free else { return .zero }
        let doublings = min(failures - free, 16)
        return min(policy.firstDelay * (1 << doublings), policy.maximumDelay)
    }

    /// Counts a failure of `key`; true when it starts a lock.
    private func record(_ table: inout [String: Record], _ key: String, limit: Int, now: ContinuousClock.Instant) -> Bool {
        if table[key] == nil, table.count >= policy.capacity {
            table = table.filter { current($0.value, now: now) != nil }
            if table.count >= policy.capacity { table.removeAll(keepingCapacity: true) }
        }
        var entry = current(table[key], now: now) ?? Record(lastFailure: now)
        entry.failures += 1
        entry.lastFailure = now
        var locked = false
        if entry.failures >= limit, entry.lockedUntil == nil {
            entry.lockedUntil = now + policy.lockDuration
            locked = true
        }
        table[key] = entry
        return locked
    }
}
