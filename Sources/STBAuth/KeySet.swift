import STBJSON
import STBMessages

/// The public keys that verify access tokens, by `kid`: what the gateway's `GetKeys`
/// returns and what a JWKS file (RFC 7517) holds.
public struct KeySet: Sendable, Hashable {
    public private(set) var keys: [String: VerificationKey] = [:]

    public init(_ keys: [VerificationKey] = []) {
        for key in keys { self.keys[key.id] = key }
    }

    public subscript(id: String) -> VerificationKey? { keys[id] }

    public var isEmpty: Bool { keys.isEmpty }

    /// The Ed25519 keys of a `GetKeys` reply; other key types are skipped.
    public init(_ response: Stb_Gateway_V1_GetKeysResponse) {
        self.init(response.keys.compactMap { jwk in
            guard jwk.kty == "OKP", jwk.crv == "Ed25519", jwk.use.isEmpty || jwk.use == "sig",
                let bytes = Base64URL.decode(jwk.x)
            else { return nil }
            return VerificationKey(id: jwk.kid, publicKey: bytes)
        })
    }

    /// The keys of a JWKS document; throws when it is not one.
    public init(jwksJSON text: String) throws(KeySetError) {
        guard let document = try? JSONValue.parse(text), let entries = document["keys"]?.arrayValue else {
            throw KeySetError(reason: "not a JWKS document (an object with a `keys` array)")
        }
        var response = Stb_Gateway_V1_GetKeysResponse()
        for entry in entries {
            var jwk = Stb_Gateway_V1_JsonWebKey()
            jwk.kty = entry["kty"]?.stringValue ?? ""
            jwk.crv = entry["crv"]?.stringValue ?? ""
            jwk.x = entry["x"]?.stringValue ?? ""
            jwk.kid = entry["kid"]?.stringValue ?? ""
            jwk.use = entry["use"]?.stringValue ?? ""
            jwk.alg = entry["alg"]?.stringValue ?? ""
            response.keys.append(jwk)
        }
        self.init(response)
    }

    /// The keys as a `GetKeys` reply, sorted by `kid`.
    public var response: Stb_Gateway_V1_GetKeysResponse {
        var response = Stb_Gateway_V1_GetKeysResponse()
        response.keys = keys.values.sorted { $0.id < $1.id }.map { key in
            var jwk = Stb_Gateway_V1_JsonWebKey()
            jwk.kty = "OKP"
            jwk.crv = "Ed25519"
            jwk.x = Base64URL.encode(key.publicKey)
            jwk.kid = key.id
            jwk.use = "sig"
            jwk.alg = AccessToken.algorithm
            return jwk
        }
        return response
    }

    /// The keys as a JWKS document.
    public var jwksJSON: String {
        let keys: [JSONValue] = response.keys.map { jwk in
            .object([
                "kty": .string(jwk.kty), "crv": .string(jwk.crv), "x": .string(jwk.x),
                "kid": .string(jwk.kid), "use": .string(jwk.use), "alg": .string(jwk.alg),
            ])
        }
        return JSONValue.object(["keys": .array(keys)]).canonicalText
    }
}

/// A key set that could not be read.
public struct KeySetError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}
