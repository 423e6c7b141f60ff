import STBAPI
import STBMessages
import STBRPC

/// `stb.testing.v1.Echo`: a test peer for the RPC layer.
///
/// Request metadata whose key starts with `x-echo` comes back in the response headers and
/// the trailers; `metadata_padding_bytes` adds that much `x-echo-padding` metadata to both;
/// `delay_ms` sleeps (cancellably); `fail_with_code` ends the call with that status and
/// `text` as message.
public struct EchoService: Stb_Testing_V1_EchoService {
    public typealias Request = Stb_Testing_V1_EchoRequest
    public typealias Response = Stb_Testing_V1_EchoResponse

    public init() {}

    /// Every method, with `Get` answered at once (on the connection's thread, without a
    /// task) when it is not asked to wait.
    public func register(in router: inout RPCRouter) {
        registerMethods(in: &router)
        router.register(Stb_Testing_V1_Echo.get, immediate: { request, context in
            guard request.delayMs == 0 else { return nil }
            Self.echoMetadata(context)
            Self.addPadding(request, context)
            try Self.failIfAsked(request)
            return Response(text: request.text, payload: request.payload)
        })
    }

    public func get(_ request: Request, context: ServerContext) async throws -> Response {
        Self.echoMetadata(context)
        Self.addPadding(request, context)
        try await Self.pause(request)
        try Self.failIfAsked(request)
        return Response(text: request.text, payload: request.payload)
    }

    public func expand(_ request: Request, writer: RPCWriter<Response>, context: ServerContext) async throws {
        Self.echoMetadata(context)
        Self.addPadding(request, context)
        for index in 0..<request.count {
            try await Self.pause(request)
            try await writer.write(Response(text: request.text, payload: request.payload, index: index))
        }
        try Self.failIfAsked(request)
    }

    public func collect(_ requests: RPCMessageStream<Request>, context: ServerContext) async throws -> Response {
        Self.echoMetadata(context)
        var texts: [String] = []
        for try await request in requests {
            try Self.failIfAsked(request)
            texts.append(request.text)
        }
        return Response(text: texts.joined(separator: " "), index: UInt32(texts.count))
    }

    public func update(_ requests: RPCMessageStream<Request>, writer: RPCWriter<Response>, context: ServerContext) async throws {
        Self.echoMetadata(context)
        var index: UInt32 = 0
        for try await request in requests {
            try await Self.pause(request)
            try Self.failIfAsked(request)
            try await writer.write(Response(text: request.text, payload: request.payload, index: index))
            index += 1
        }
    }

    private static func echoMetadata(_ context: ServerContext) {
        var echoed = Metadata()
        for (key, value) in context.metadata where key.hasPrefix("x-echo") {
            switch value {
            case .string(let text): echoed.addString(text, forKey: key)
            case .binary(let bytes): echoed.addBinary(bytes, forKey: key)
            }
        }
        guard !echoed.isEmpty else { return }
        context.addInitialMetadata(echoed)
        context.addTrailingMetadata(echoed)
    }

    /// Metadata larger than any header budget: the RPC layer must still deliver the status.
    private static func addPadding(_ request: Request, _ context: ServerContext) {
        guard request.metadataPaddingBytes > 0 else { return }
        let padding = String(repeating: "x", count: min(Int(request.metadataPaddingBytes), 4 << 20))
        context.addInitialMetadata(Metadata(["x-echo-padding": padding]))
        context.addTrailingMetadata(Metadata(["x-echo-padding": padding]))
    }

    private static func pause(_ request: Request) async throws {
        if request.delayMs > 0 { try await Task.sleep(for: .milliseconds(Int(request.delayMs))) }
    }

    private static func failIfAsked(_ request: Request) throws {
        guard request.failWithCode != 0 else { return }
        throw RPCError(code: RPCError.Code(rawValue: Int(request.failWithCode)), message: request.text)
    }
}
