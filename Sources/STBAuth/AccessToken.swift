import STBJSON

/// Why an access token was refused. The description is safe to return to the caller:
/// it never repeats the token.
public enum TokenError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Not three base64url segments of JSON, or a claim missing or of the wrong type.
    case malformed
    /// `alg` is not EdDSA (this includes `none`).
    case unsupportedAlgorithm
    /// No key with the header's `kid`.
    case unknownKey
    case badSignature
    case expired
    case notYetValid
    case wrongIssuer
    case wrongAudience
    /// The `role` claim names no role.
    case unknownRole

    public var description: String {
        switch self {
        case .malformed: "the access token is malformed"
        case .unsupportedAlgorithm: "the access token's algorithm is not accepted"
        case .unknownKey: "the access token was signed with an unknown key"
        case .badSignature: "the access token's signature is invalid"
        case .expired: "the access token has expired"
        case .notYetValid: "the access token is not valid yet"
        case .wrongIssuer: "the access token was not issued by the gateway"
        case .wrongAudience: "the access token is not for this platform"
        case .unknownRole: "the access token names an unknown role"
        }
    }
}

/// Access tokens: compact JWS (RFC 7515) with `alg` EdDSA (RFC 8037) over Ed25519.
public enum AccessToken {
    /// The `alg` this platform issues. The fully specified `Ed25519` (RFC 9864) is also
    /// accepted when verifying.
    public static let algorithm = "EdDSA"

    /// Tokens longer than this are refused before any parsing.
    public static let maximumLength = 4096

    /// The signed token for `claims`.
    public static func sign(_ claims: AccessClaims, with key: SigningKey) -> String {
        let header: JSONValue = .object([
            "alg": .string(algorithm), "typ": .string("JWT"), "kid": .string(key.id),
        ])
        let payload: JSONValue = .object([
            "iss": .string(claims.issuer),
            "aud": .string(claims.audience),
            "sub": .string(claims.subject),
            "name": .string(claims.name),
            "role": .string(claims.role.claim),
            "iat": .integer(claims.issuedAt),
            "nbf": .integer(claims.notBefore),
            "exp": .integer(claims.expiresAt),
            "jti": .string(claims.tokenID),
        ])
        let signingInput = Base64URL.encode(Array(header.canonicalText.utf8)) + "."
            + Base64URL.encode(Array(payload.canonicalText.utf8))
        let signature = key.signature(of: Array(signingInput.utf8))
        return signingInput + "." + Base64URL.encode(signature)
    }

    /// The claims of `token` after checking its form, algorithm, signature (by `kid` in
    /// `keys`), issuer, audience and validity period at `now` (seconds) with `leeway`.
    public static func verify(
        _ token: String, keys: KeySet, issuer: String = TokenAudience.issuer,
        audience: String = TokenAudience.services, now: Int64, leeway: Int64 = 30
    ) throws(TokenError) -> AccessClaims {
        guard token.utf8.count <= maximumLength else { throw .malformed }
        let parts = token.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3,
            let headerBytes = Base64URL.decode(Substring(parts[0])),
            let payloadBytes = Base64URL.decode(Substring(parts[1])),
            let signature = Base64URL.decode(Substring(parts[2])),
            let header = try? JSONValue.parse(String(decoding: headerBytes, as: UTF8.self)),
            let payload = try? JSONValue.parse(String(decoding: payloadBytes, as: UTF8.self))
        else { throw .malformed }
        guard let alg = header["alg"]?.stringValue else { throw .malformed }
        guard alg == algorithm || alg == "Ed25519" else { throw .unsupportedAlgorithm }
        // A critical extension we do not understand must not be ignored (RFC 7515 §4.1.11).
        guard header["crit"] == nil else { throw .malformed }
        guard let kid = header["kid"]?.stringValue else { throw .unknownKey }
        guard let key = keys[kid] else { throw .unknownKey }
        let signingInput = Array(token.utf8.prefix(parts[0].count + 1 + parts[1].count))
        guard key.isValidSignature(signature, of: signingInput) else { throw .badSignature }

        guard let iss = payload["iss"]?.stringValue, let sub = payload["sub"]?.stringValue,
            let roleName = payload["role"]?.stringValue,
            let iat = payload["iat"]?.integerValue, let exp = payload["exp"]?.integerValue
        else { throw .malformed }
        let nbf = payload["nbf"]?.integerValue ?? iat
        guard iss == issuer else { throw .wrongIssuer }
        switch payload["aud"] {
        case .string(let value)? where value == audience: break
        case .array(let values)? where values.contains(.string(audience)): break
        default: throw .wrongAudience
        }
        guard now <= exp &+ leeway else { throw .expired }
        guard now &+ leeway >= nbf else { throw .notYetValid }
        guard let role = Role(claim: roleName) else { throw .unknownRole }
        return AccessClaims(
            issuer: iss, audience: audience, subject: sub,
            name: payload["name"]?.stringValue ?? sub, role: role,
            issuedAt: iat, notBefore: nbf, expiresAt: exp,
            tokenID: payload["jti"]?.stringValue ?? "")
    }
}
