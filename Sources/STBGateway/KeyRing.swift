import Logging
import STBAuth
import STBPostgres
import Synchronization

/// The gateway's signing keys, kept in the `signing_keys` table (sealed with
/// `GATEWAY_KEY_ENCRYPTION_KEY` when it is set) and in memory: the newest unretired key
/// signs; every key whose tokens may still be valid is published by `GetKeys`.
///
/// A key is created on first start. `rotate` adds a new signing key and retires the
/// others; a retired key stays published for `publishRetiredFor` (longer than an access
/// token lives) and its row is deleted a day after that.
public final class KeyRing: Sendable {
    /// A stored key could not be read.
    public struct KeyError: Error, CustomStringConvertible {
        public var description: String
    }

    private struct State {
        var signing: SigningKey
        var signingCreatedAtMs: Int64
        var published: KeySet
    }

    private let pool: PostgresPool
    private let sealingKey: [UInt8]?
    private let state: Mutex<State>
    /// How long a retired key keeps verifying: an access token's life, the verifiers'
    /// leeway and a margin.
    public let publishRetiredFor: Duration

    private init(pool: PostgresPool, sealingKey: [UInt8]?, state: State, publishRetiredFor: Duration) {
        self.pool = pool
        self.sealingKey = sealingKey
        self.state = Mutex(state)
        self.publishRetiredFor = publishRetiredFor
    }

    /// The ring as stored, creating the first key when there is none.
    public static func load(pool: PostgresPool, sealingKey: [UInt8]?, accessLifetime: Duration) async throws -> KeyRing {
        let publishFor = accessLifetime + .seconds(120)
        let state = try await read(pool: pool, sealingKey: sealingKey, publishFor: publishFor, createIfNone: true)
        return KeyRing(pool: pool, sealingKey: sealingKey, state: state, publishRetiredFor: publishFor)
    }

    /// The key that signs new tokens.
    public var signingKey: SigningKey { state.withLock { $0.signing } }

    /// The keys that verify tokens (the signing key and recently retired ones).
    public var published: KeySet { state.withLock { $0.published } }

    /// When the signing key was created (ms since 1970).
    public var signingKeyCreatedAtMs: Int64 { state.withLock { $0.signingCreatedAtMs } }

    /// Makes a new key the signing key and retires the others; returns its `kid`.
    @discardableResult
    public func rotate() async throws -> String {
        let kid = try await pool.withTransaction { transaction in
            _ = try await transaction.query("SELECT pg_advisory_xact_lock(\(Self.lockID))")
            let kid = try await Self.insertKey(in: transaction, sealingKey: sealingKey)
            _ = try await transaction.query("UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL AND kid <> \(kid)")
            _ = try await transaction.query("DELETE FROM signing_keys WHERE retired_at < now() - interval '1 day'")
            return kid
        }
        try await reload()
        return kid
    }

    /// Re-reads the table (another gateway may have rotated).
    public func reload() async throws {
        let fresh = try await Self.read(pool: pool, sealingKey: sealingKey, publishFor: publishRetiredFor, createIfNone: true)
        state.withLock { $0 = fresh }
    }

    /// An advisory lock id that serialises key creation across gateways.
    private static let lockID: Int64 = 0x5354_4247_4b45_5953

    private static func read(pool: PostgresPool, sealingKey: [UInt8]?, publishFor: Duration, createIfNone: Bool) async throws -> State {
        let seconds = publishFor.components.seconds
        return try await pool.withTransaction { transaction in
            _ = try await transaction.query("SELECT pg_advisory_xact_lock(\(lockID))")
            var rows = try await published(in: transaction, seconds: seconds)
            if !rows.contains(where: { $0.retired == false }), createIfNone {
                _ = try await insertKey(in: transaction, sealingKey: sealingKey)
                rows = try await published(in: transaction, seconds: seconds)
            }
            var keys: [VerificationKey] = []
            var signing: (key: SigningKey, createdAtMs: Int64)?
            for row in rows {
                let key = try unseal(row, sealingKey: sealingKey)
                keys.append(key.verificationKey)
                if !row.retired, signing == nil { signing = (key, row.createdAtMs) }
            }
            guard let signing else { throw KeyError(description: "no signing key") }
            return State(signing: signing.key, signingCreatedAtMs: signing.createdAtMs, published: KeySet(keys))
        }
    }

    private struct StoredKey {
        var kid: String
        var secret: [UInt8]
        var sealed: Bool
        var retired: Bool
        var createdAtMs: Int64
    }

    /// Unretired keys (newest first), then recently retired ones.
    private static func published(in transaction: PostgresTransaction, seconds: Int64) async throws -> [StoredKey] {
        let rows = try await transaction.query("""
            SELECT kid, secret, sealed, retired_at IS NOT NULL, (extract(epoch FROM created_at) * 1000)::int8
            FROM signing_keys
            WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => \(seconds))
            ORDER BY retired_at IS NOT NULL, created_at DESC, kid
            """)
        return try rows.map { row in
            let (kid, secret, sealed, retired, created) = try row.decode(String.self, [UInt8].self, Bool.self, Bool.self, Int64.self)
            return StoredKey(kid: kid, secret: secret, sealed: sealed, retired: retired, createdAtMs: created)
        }
    }

    private static func unseal(_ stored: StoredKey, sealingKey: [UInt8]?) throws -> SigningKey {
        var secret = stored.secret
        if stored.sealed {
            guard let sealingKey else {
                throw KeyError(description: "signing key \(stored.kid) is sealed: set GATEWAY_KEY_ENCRYPTION_KEY")
            }
            guard let opened = Crypto.open(secret, key: sealingKey) else {
                throw KeyError(description: "signing key \(stored.kid) does not open with GATEWAY_KEY_ENCRYPTION_KEY")
            }
            secret = opened
        }
        guard let key = SigningKey(id: stored.kid, secretKey: secret) else {
            throw KeyError(description: "signing key \(stored.kid) is not an Ed25519 key")
        }
        return key
    }

    private static func insertKey(in transaction: PostgresTransaction, sealingKey: [UInt8]?) async throws -> String {
        let kid = Base64URL.encode(Crypto.randomBytes(12))
        let key = SigningKey.generate(id: kid)
        let secret = sealingKey.map { Crypto.seal(key.secretKey, key: $0) } ?? key.secretKey
        _ = try await transaction.query("""
            INSERT INTO signing_keys (kid, secret, sealed) VALUES (\(kid), \(secret), \(sealingKey != nil))
            """)
        return kid
    }
}
