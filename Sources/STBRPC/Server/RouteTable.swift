import Glibc

/// The router's methods, found straight from a request's `:path` bytes: no `String` is
/// made for a path that names a method (the call reuses the registered one), and the
/// lookup hashes the bytes once. Built once per server; read by every connection.
struct RouteTable: Sendable {
    struct Route: Sendable {
        /// The registered path, shared by every call of the method.
        let path: String
        let handler: RPCRouter.Handler
        /// The method's immediate answer, for a unary method that has one.
        let immediate: RPCRouter.Immediate?
        fileprivate let bytes: [UInt8]
    }

    private var routes: [UInt64: [Route]] = [:]

    init(_ router: RPCRouter) {
        for (path, handler) in router.handlers {
            let bytes = Array(path.utf8)
            guard !bytes.isEmpty else { continue }
            let hash = bytes.withUnsafeBufferPointer { Self.hash($0.baseAddress!, $0.count) }
            routes[hash, default: []].append(Route(path: path, handler: handler, immediate: router.immediateHandler(for: path), bytes: bytes))
        }
    }

    /// The method at the path in `pointer[0..<length]`, or nil.
    func route(_ pointer: UnsafePointer<UInt8>, _ length: Int) -> Route? {
        guard length > 0, let candidates = routes[Self.hash(pointer, length)] else { return nil }
        for route in candidates where route.bytes.count == length {
            if route.bytes.withUnsafeBufferPointer({ memcmp($0.baseAddress!, pointer, length) }) == 0 { return route }
        }
        return nil
    }

    /// FNV-1a, 64 bits.
    private static func hash(_ pointer: UnsafePointer<UInt8>, _ length: Int) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for index in 0..<length {
            hash = (hash ^ UInt64(pointer[index])) &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}
