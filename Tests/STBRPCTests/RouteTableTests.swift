import STBEcho
import STBMessages
import Testing

@testable import STBRPC

@Suite("Routes found from a request's :path bytes")
struct RouteTableTests {
    private static func router() -> RPCRouter {
        var router = RPCRouter()
        let service: any RPCService = EchoService()
        service.register(in: &router)
        return router
    }

    private static func table() -> RouteTable {
        RouteTable(router())
    }

    private static func route(_ table: RouteTable, _ path: String) -> RouteTable.Route? {
        let bytes = Array(path.utf8)
        return bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress.flatMap { table.route($0, buffer.count) }
        }
    }

    @Test("every registered path is found, with the router's string and handler kind")
    func registeredPaths() throws {
        let table = Self.table()
        let router = Self.router()
        #expect(router.paths.count == 4)
        for path in router.paths {
            let route = try #require(Self.route(table, path))
            #expect(route.path == path)
            #expect(route.handler.takesSingleRequest == router.handler(for: path)?.takesSingleRequest)
        }
    }

    @Test("a path that is not exactly a registered one is not found")
    func otherPaths() {
        let table = Self.table()
        for path in [
            "/stb.testing.v1.Echo/Ge", "/stb.testing.v1.Echo/Gett", "/stb.testing.v1.Echo/get", "stb.testing.v1.Echo/Get",
            "/stb.testing.v1.Echo/Get/", "/", "/metrics",
        ] {
            #expect(Self.route(table, path) == nil, "\(path)")
        }
    }
}
