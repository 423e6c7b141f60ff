import STBJSON
import STBMessages
import Testing

@testable import STBAuth

@Suite("Access tokens")
struct AccessTokenTests {
    let key = SigningKey.generate(id: "k1")
    let now: Int64 = 1_800_000_000

    func claims(role: Role = .engineer, expiresIn: Int64 = 600, notBefore: Int64? = nil) -> AccessClaims {
        AccessClaims(
            issuer: TokenAudience.issuer, audience: TokenAudience.services, subject: "u-1",
            name: "ada", role: role, issuedAt: now, notBefore: notBefore ?? now,
            expiresAt: now + expiresIn, tokenID: "j-1")
    }

    @Test("a signed token verifies to its claims")
    func roundTrip() throws {
        let token = AccessToken.sign(claims(), with: key)
        let verified = try AccessToken.verify(token, keys: KeySet([key.verificationKey]), now: now + 5)
        #expect(verified == claims())
    }

    @Test("each kind of bad token is refused for its reason")
    func refusals() throws {
        let keys = KeySet([key.verificationKey])
        let token = AccessToken.sign(claims(), with: key)
        let parts = token.split(separator: ".").map(String.init)
        func expect(_ error: TokenError, _ candidate: String, now: Int64? = nil) {
            #expect(throws: error) { try AccessToken.verify(candidate, keys: keys, now: now ?? self.now) }
        }
        expect(.expired, token, now: now + 600 + 31)
        expect(.notYetValid, AccessToken.sign(claims(notBefore: now + 120), with: key))
        expect(.unknownKey, AccessToken.sign(claims(), with: SigningKey.generate(id: "other")))
        // Same kid, different key: the signature does not match.
        expect(.badSignature, AccessToken.sign(claims(), with: SigningKey.generate(id: "k1")))
        expect(.malformed, parts[0] + "." + parts[1])
        expect(.malformed, "not a token")
        expect(.malformed, token + "=")
        let none = Base64URL.encode(Array(#"{"alg":"none","kid":"k1"}"#.utf8))
        expect(.unsupportedAlgorithm, none + "." + parts[1] + ".")
        var wrongAudience = claims()
        wrongAudience.audience = "elsewhere"
        expect(.wrongAudience, AccessToken.sign(wrongAudience, with: key))
        var wrongIssuer = claims()
        wrongIssuer.issuer = "someone"
        expect(.wrongIssuer, AccessToken.sign(wrongIssuer, with: key))
        // A payload changed after signing.
        var forged = claims(role: .admin)
        forged.expiresAt += 1
        let forgedPayload = AccessToken.sign(forged, with: key).split(separator: ".")[1]
        expect(.badSignature, parts[0] + "." + forgedPayload + "." + parts[2])
    }

    @Test("a key set survives its JWKS form and its GetKeys form")
    func keySetForms() throws {
        let keys = KeySet([key.verificationKey, SigningKey.generate(id: "k2").verificationKey])
        #expect(try KeySet(jwksJSON: keys.jwksJSON) == keys)
        #expect(KeySet(keys.response) == keys)
        #expect(throws: KeySetError.self) { try KeySet(jwksJSON: "[]") }
    }

    @Test("roles: users in order, service apart")
    func roles() {
        #expect(Role.admin.permits(.viewer))
        #expect(Role.engineer.permits(.engineer))
        #expect(!Role.operator.permits(.engineer))
        #expect(!Role.service.permits(.viewer))
        #expect(Role.service.permits(.service))
        #expect(!Role.admin.permits(.service))
    }
}
