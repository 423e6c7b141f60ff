import STBAuth
import STBGateway
import STBMessages
import STBPostgres
import STBRPC
import Testing

@Suite("Gateway signing keys", .serialized)
struct KeyTests {
    @Test("After rotation the new key signs and tokens of the old one still verify until they expire")
    func rotation() async throws {
        try await GatewayHarness.with { gateway in
            let before = try await gateway.login()
            let oldKid = gateway.service.keys.signingKey.id
            let newKid = try await gateway.service.keys.rotate()
            #expect(newKid != oldKid)
            let after = try await gateway.login()
            let keys: Stb_Gateway_V1_GetKeysResponse = try await gateway.client.unary(Auth.getKeys, request: Stb_Gateway_V1_GetKeysRequest())
            #expect(Set(keys.keys.map(\.kid)) == [oldKid, newKid])
            #expect(after.accessToken != before.accessToken)
            // Both verify: the old token with the retired key, the new one with the new key.
            let oldTokenCaller = try await gateway.whoAmI(before.accessToken).username
            #expect(oldTokenCaller == "admin")
            let newTokenCaller = try await gateway.whoAmI(after.accessToken).username
            #expect(newTokenCaller == "admin")
            // Once the retired key's tokens have all expired, it is no longer published.
            _ = try await gateway.pool.query("UPDATE signing_keys SET retired_at = now() - interval '1 hour' WHERE kid = \(oldKid)")
            try await gateway.service.keys.reload()
            #expect(gateway.service.keys.published.keys.keys.sorted() == [newKid])
        }
    }

    @Test("With GATEWAY_KEY_ENCRYPTION_KEY the stored key is sealed; another key cannot open it")
    func sealedAtRest() async throws {
        let sealing = String(repeating: "ab", count: 32)
        try await GatewayHarness.with(["GATEWAY_KEY_ENCRYPTION_KEY": sealing]) { gateway in
            let signing = gateway.service.keys.signingKey
            let rows = try await gateway.pool.query("SELECT secret, sealed FROM signing_keys WHERE kid = \(signing.id)")
            let (secret, sealed) = try rows[0].decode([UInt8].self, Bool.self)
            #expect(sealed)
            #expect(secret.count == signing.secretKey.count + 40)
            #expect(!contains(secret, signing.secretKey))
            let reloaded = try await KeyRing.load(pool: gateway.pool, sealingKey: Array(repeating: 0xab, count: 32), accessLifetime: .seconds(600))
            #expect(reloaded.signingKey.id == signing.id)
            await #expect(throws: KeyRing.KeyError.self) {
                _ = try await KeyRing.load(pool: gateway.pool, sealingKey: Array(repeating: 0xcd, count: 32), accessLifetime: .seconds(600))
            }
            await #expect(throws: KeyRing.KeyError.self) {
                _ = try await KeyRing.load(pool: gateway.pool, sealingKey: nil, accessLifetime: .seconds(600))
            }
        }
    }

    @Test("The first admin is created only in an empty gateway")
    func bootstrapOnlyWhenEmpty() async throws {
        try await GatewayHarness.with { gateway in
            await #expect(throws: GatewayBootstrap.Refusal.self) {
                _ = try await GatewayBootstrap.createFirstAdmin(
                    username: "second", password: "second admin password", configuration: gateway.configuration, pool: gateway.pool)
            }
            let users = try await gateway.count("SELECT count(*) FROM users")
            #expect(users == 1)
        }
    }

    @Test("The activity log is append-only")
    func activityAppendOnly() async throws {
        try await GatewayHarness.with { gateway in
            _ = try await gateway.login()
            for statement: PostgresQuery in ["UPDATE activity SET kind = 'logout'", "DELETE FROM activity", "TRUNCATE activity"] {
                await #expect(throws: PostgresError.self) { _ = try await gateway.pool.query(statement) }
            }
            let logins = try await gateway.count("SELECT count(*) FROM activity WHERE kind = 'login'")
            #expect(logins == 1)
        }
    }

    private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        return (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle }
    }
}
