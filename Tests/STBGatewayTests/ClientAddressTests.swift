import STBRPC
import Testing

@testable import STBGateway

@Suite("The client address behind the edge")
struct ClientAddressTests {
    func context(peer: String, forwarded: [String]) -> ServerContext {
        var metadata = Metadata()
        for value in forwarded { metadata.addString(value, forKey: "x-forwarded-for") }
        return ServerContext(path: "/stb.gateway.v1.Auth/Login", metadata: metadata, peer: peer)
    }

    @Test("A trusted proxy's last x-forwarded-for address is the client; anyone else's header is ignored")
    func trustedProxy() {
        let edge: Set<String> = ["127.0.0.1", "::1"]
        // The edge appended 203.0.113.7; the first entry came from the client itself.
        #expect(CallOrigin(context(peer: "127.0.0.1:40000", forwarded: ["10.9.9.9, 203.0.113.7"]), trustedProxies: edge).peer == "203.0.113.7")
        #expect(CallOrigin(context(peer: "[::1]:40000", forwarded: ["2001:DB8::5"]), trustedProxies: edge).peer == "2001:db8::5")
        // A direct client cannot name another address.
        #expect(CallOrigin(context(peer: "198.51.100.2:5000", forwarded: ["203.0.113.7"]), trustedProxies: edge).peer == "198.51.100.2")
        // Without trusted proxies (the default) the header counts for nothing.
        #expect(CallOrigin(context(peer: "127.0.0.1:40000", forwarded: ["203.0.113.7"])).peer == "127.0.0.1")
        // A missing or malformed header leaves the peer.
        #expect(CallOrigin(context(peer: "127.0.0.1:40000", forwarded: []), trustedProxies: edge).peer == "127.0.0.1")
        #expect(CallOrigin(context(peer: "127.0.0.1:40000", forwarded: ["evil\u{0}host"]), trustedProxies: edge).peer == "127.0.0.1")
        #expect(CallOrigin(context(peer: "127.0.0.1:40000", forwarded: ["unknown"]), trustedProxies: edge).peer == "127.0.0.1")
    }

    @Test("GATEWAY_TRUSTED_PROXIES takes addresses separated by commas and refuses anything else")
    func configuration() throws {
        let base = ["GATEWAY_DATABASE_URL": "postgresql://localhost/gateway"]
        let configured = try GatewayConfiguration(environment: base.merging(["GATEWAY_TRUSTED_PROXIES": "127.0.0.1, ::1"]) { $1 })
        #expect(configured.trustedProxies == ["127.0.0.1", "::1"])
        #expect(try GatewayConfiguration(environment: base).trustedProxies.isEmpty)
        #expect(throws: ConfigurationError.self) {
            try GatewayConfiguration(environment: base.merging(["GATEWAY_TRUSTED_PROXIES": "edge.local"]) { $1 })
        }
    }
}
