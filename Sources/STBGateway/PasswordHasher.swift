internal import CSodium
import Dispatch
import Glibc
import Synchronization

/// Argon2id password hashing through libsodium (`crypto_pwhash_str`, INTERACTIVE limits:
/// 2 passes over 64 MiB), with at most `concurrency` hashes at once.
///
/// Each hash holds its memory while it runs, so the limit bounds the memory a login flood
/// can take; a hash runs on a Dispatch thread, never on a worker loop or Swift's
/// cooperative pool. Callers beyond the limit wait in line; beyond `maxWaiting` they are
/// turned away with `PasswordHasher.Busy`.
public final class PasswordHasher: Sendable {
    /// Argon2id passes (libsodium's OPSLIMIT_INTERACTIVE).
    public static let opsLimit = UInt64(crypto_pwhash_OPSLIMIT_INTERACTIVE)
    /// Argon2id memory in bytes (libsodium's MEMLIMIT_INTERACTIVE, 64 MiB).
    public static let memoryLimit = Int(crypto_pwhash_MEMLIMIT_INTERACTIVE)

    /// Too many callers are already waiting for a hash.
    public struct Busy: Error {}

    private struct State {
        var running = 0
        var waiting: [CheckedContinuation<Void, Never>] = []
        var dummyHash: String?
    }

    public let concurrency: Int
    public let maxWaiting: Int
    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "stb.gateway.argon2", attributes: .concurrent)

    public init(concurrency: Int = 2, maxWaiting: Int = 1000) {
        self.concurrency = max(1, concurrency)
        self.maxWaiting = maxWaiting
        Crypto.ensureReady()
    }

    /// The stored form (`$argon2id$…`) of `password`.
    public func hash(_ password: String) async throws -> String {
        try await run { Self.hashNow(password) }
    }

    /// Whether `password` matches `stored`, and whether `stored` should be replaced by a
    /// hash with the current limits.
    public func verify(_ password: String, against stored: String) async throws -> (matches: Bool, needsRehash: Bool) {
        try await run {
            let matches = password.withCString { passwordBytes in
                crypto_pwhash_str_verify(stored, passwordBytes, UInt64(strlen(passwordBytes))) == 0
            }
            let rehash = crypto_pwhash_str_needs_rehash(stored, Self.opsLimit, Self.memoryLimit) != 0
            return (matches, matches && rehash)
        }
    }

    /// Spends the time and memory of a verification that fails: what a login for an
    /// unknown user does, so that it answers like a wrong password.
    public func verifyDummy(_ password: String) async throws {
        _ = try await verify(password, against: try await dummyHash())
    }

    /// The hash `verifyDummy` verifies against, made on first use (`GatewayService.prepare`
    /// makes it at start, so that no login pays for it).
    @discardableResult
    public func dummyHash() async throws -> String {
        if let stored = state.withLock({ $0.dummyHash }) { return stored }
        let made = try await hash(Crypto.randomToken())
        return state.withLock { state in
            if state.dummyHash == nil { state.dummyHash = made }
            return state.dummyHash ?? made
        }
    }

    private static func hashNow(_ password: String) -> String {
        var out = [CChar](repeating: 0, count: Int(crypto_pwhash_STRBYTES))
        let rc = password.withCString { passwordBytes in
            crypto_pwhash_str(&out, passwordBytes, UInt64(strlen(passwordBytes)), opsLimit, memoryLimit)
        }
        // Fails only when the memory cannot be allocated.
        precondition(rc == 0, "crypto_pwhash_str could not allocate its memory")
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs `work` on a Dispatch thread once one of the `concurrency` slots is free.
    private func run<R: Sendable>(_ work: @escaping @Sendable () -> R) async throws -> R {
        try await acquire()
        defer { release() }
        return await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: work()) }
        }
    }

    private func acquire() async throws {
        enum Admission { case now, wait, refuse }
        // Decide and enqueue under one lock, so a release cannot slip between them.
        var admission = Admission.now
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            admission = state.withLock { state in
                if state.running < concurrency {
                    state.running += 1
                    return .now
                }
                guard state.waiting.count < maxWaiting else { return .refuse }
                state.waiting.append(continuation)
                return .wait
            }
            if admission != .wait { continuation.resume() }
        }
        if admission == .refuse { throw Busy() }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiting.isEmpty {
                state.running -= 1
                return nil
            }
            // The slot passes to the first waiter: `running` stays.
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}
