import Synchronization
import STBEventLoop

/// What a handler knows about its call, and how it adds response metadata.
public struct ServerContext: Sendable {
    /// The method path, `/package.Service/Method`.
    public let path: String
    /// The client's custom metadata.
    public let metadata: Metadata
    /// The peer's address, `host:port`.
    public let peer: String
    /// When the client's deadline (`grpc-timeout`) expires; nil when it set none.
    public let deadline: ContinuousClock.Instant?
    /// Who is calling, once an interceptor has established it; nil before.
    public var identity: CallerIdentity?
    /// The protocol the call arrived in.
    public var rpcProtocol: RPCProtocol = .grpc

    let responseMetadata: ResponseMetadata

    /// Adds metadata to the response headers. Effective only before the first message.
    public func addInitialMetadata(_ metadata: Metadata) {
        responseMetadata.state.withLock { $0.initial.add(contentsOf: metadata) }
    }

    /// Adds metadata to the trailers sent with the status.
    public func addTrailingMetadata(_ metadata: Metadata) {
        responseMetadata.state.withLock { $0.trailing.add(contentsOf: metadata) }
    }
}

/// Response metadata set by a handler, read by the connection when it sends headers/trailers.
final class ResponseMetadata: Sendable {
    struct State {
        var initial = Metadata()
        var trailing = Metadata()
    }
    let state = Mutex(State())
}

/// The protocols a server speaks on its port.
public enum RPCProtocol: String, Sendable, Hashable {
    /// gRPC over HTTP/2.
    case grpc
    /// The Connect protocol (unary or streaming, protobuf or JSON).
    case connect
}

extension ServerContext {
    /// A context for calling a handler directly, outside a server's call (a plain HTTP
    /// route serving a stream through an RPC's handler): no deadline, no identity yet.
    public init(path: String, metadata: Metadata, peer: String, rpcProtocol: RPCProtocol = .connect) {
        self.init(path: path, metadata: metadata, peer: peer, deadline: nil, rpcProtocol: rpcProtocol, responseMetadata: ResponseMetadata())
    }
}
