import STBMessages
import Testing

@testable import STBRPC

/// Details of every kind the services send, plus one the runtime does not know.
private let sampleDetails: [ErrorDetail] = [
    .badRequest(fields: [(field: "option.default_value", description: "\"abc\" is not an integer"), (field: "option.key", description: "is required")]),
    .errorInfo(reason: "INVALID_ARGUMENT", metadata: ["service": "catalog"]),
    .preconditionFailure(type: "RESYNC_REQUIRED", subject: "after", description: "the cursor is older than the change feed keeps"),
    .retry(after: .milliseconds(1500)),
    .other(Google_Protobuf_AnyMessage(typeURL: "type.googleapis.com/example.v1.Custom", value: [0x08, 0x2A])),
]

@Suite("Status details: google.rpc.Status in grpc-status-details-bin")
struct StatusDetailsEncodingTests {
    @Test("every detail survives packing into an Any and unpacking")
    func packRoundTrip() throws {
        for detail in sampleDetails {
            #expect(ErrorDetail(unpacking: detail.packed) == detail)
        }
        #expect(ErrorDetail.badRequest(fields: [(field: "a", description: "b")]).packed.typeURL == "type.googleapis.com/google.rpc.BadRequest")
        let retry = try #require(RPCError(code: .unavailable, message: "", details: [.retry(after: .milliseconds(1500))]).retryInfo)
        #expect(retry.retryDelay == Google_Protobuf_Duration(seconds: 1, nanos: 500_000_000))
        // A known type name whose bytes do not decode is kept as received, not lost.
        let broken = Google_Protobuf_AnyMessage(typeURL: "type.googleapis.com/google.rpc.ErrorInfo", value: [0xFF])
        #expect(ErrorDetail(unpacking: broken) == .other(broken))
    }

    @Test("an error goes to a google.rpc.Status and back unchanged")
    func statusRoundTrip() throws {
        let error = RPCError(code: .invalidArgument, message: "option.default_value: \"abc\" is not an integer", details: sampleDetails)
        let bytes = error.rpcStatus.serializedBytes()
        let back = RPCError(status: try Google_Rpc_Status(serializedBytes: bytes))
        #expect(back == error)
        #expect(back.fieldViolations.map(\.field) == ["option.default_value", "option.key"])
        #expect(back.errorInfo?.domain == "stb")
        #expect(back.preconditionViolations.map(\.type) == ["RESYNC_REQUIRED"])
    }

    @Test("the trailer value is unpadded base64 of the status, with the message as sent")
    func trailerValue() throws {
        let sent = "cut… [truncated; 9000 bytes in all]"
        let encoded = try #require(RPCError.detailsValue(code: .invalidArgument, message: sent, details: sampleDetails, room: 10_000))
        #expect(encoded.dropped == 0)
        #expect(!encoded.value.hasSuffix("="))
        let status = try Google_Rpc_Status(serializedBytes: try #require(Base64.decode(encoded.value)))
        #expect(status.code == 3 && status.message == sent)
        #expect(status.details.map(ErrorDetail.init(unpacking:)) == sampleDetails)
        #expect(RPCError.receivedDetails(try #require(Base64.decode(encoded.value)), code: .invalidArgument) == sampleDetails)
        // Details of another status than the one received describe something else.
        #expect(RPCError.receivedDetails(try #require(Base64.decode(encoded.value)), code: .notFound) == nil)
        #expect(RPCError.receivedDetails([0xFF, 0xFF], code: .invalidArgument) == nil)
        #expect(RPCError.detailsValue(code: .internal, message: "x", details: [], room: 10_000) == nil)
    }

    @Test("details that do not fit are dropped, in order, each one only if it still fits", arguments: [0, 40, 120, 300, 600, 2_000])
    func dropWhatDoesNotFit(_ room: Int) throws {
        let big = ErrorDetail.badRequest(fields: (0..<20).map { (field: "options[\($0)].default_value", description: String(repeating: "x", count: 40)) })
        let small = ErrorDetail.errorInfo(reason: "INVALID_ARGUMENT")
        let details = [big, small]
        let encoded = RPCError.detailsValue(code: .invalidArgument, message: "bad", details: details, room: room)
        guard let encoded else {
            // Nothing fits: only possible when even the small detail is too large.
            let alone = try #require(RPCError.detailsValue(code: .invalidArgument, message: "bad", details: [small], room: 10_000))
            #expect(alone.value.utf8.count > room)
            return
        }
        #expect(encoded.value.utf8.count <= room)
        if room >= 300 { #expect(encoded.dropped < details.count) }
        let status = try Google_Rpc_Status(serializedBytes: try #require(Base64.decode(encoded.value)))
        let kept = status.details.map(ErrorDetail.init(unpacking:))
        #expect(kept.count == details.count - encoded.dropped)
        // In their order, and nothing dropped that would still have fit beside what went.
        #expect(kept == details.filter { kept.contains($0) })
        for dropped in details where !kept.contains(dropped) {
            let with = details.filter { kept.contains($0) || $0 == dropped }
            let size = try #require(RPCError.detailsValue(code: .invalidArgument, message: "bad", details: with, room: 100_000)).value.utf8.count
            #expect(size > room)
        }
    }
}

/// Throws the status the request's text names, with details.
private struct DetailsService: RPCService {
    static let error = RPCError(code: .failedPrecondition, message: "the condition does not hold", details: sampleDetails)

    func register(in router: inout RPCRouter) {
        router.register(Echo.get, unary: { request, _ -> EchoResponse in
            if request.text == "huge" {
                throw RPCError(code: .invalidArgument, message: String(repeating: "m", count: 100_000), details: [.errorInfo(reason: "BIG")])
            }
            if request.text == "big details" {
                var details = [ErrorDetail.badRequest(fields: (0..<400).map { (field: "f\($0)", description: "bad") })]
                details.append(.errorInfo(reason: "STILL_THERE"))
                throw RPCError(code: .invalidArgument, message: "many", details: details)
            }
            throw Self.error
        })
        router.register(Echo.expand, serverStreaming: { request, writer, _ in
            try await writer.write(EchoResponse(text: "first"))
            throw Self.error
        })
    }
}

@Suite("Status details between our client and our server")
struct StatusDetailsCallTests {
    @Test("a unary refusal (Trailers-Only) carries its details to the client")
    func trailersOnly() async throws {
        try await withServer(services: [DetailsService()]) { _, client in
            let error = await expectRPCError(.failedPrecondition) {
                _ = try await client.unary(Echo.get, request: EchoRequest(text: ""), timeout: .seconds(20))
            }
            #expect(error == DetailsService.error)
        }
    }

    @Test("a status after streamed messages carries its details in the trailers")
    func trailers() async throws {
        try await withServer(services: [DetailsService()]) { _, client in
            var received: [String] = []
            let error = await expectRPCError(.failedPrecondition) {
                try await client.serverStreaming(Echo.expand, request: EchoRequest(text: ""), timeout: .seconds(20)) { responses in
                    for try await response in responses { received.append(response.text) }
                }
            }
            #expect(received == ["first"])
            #expect(error?.details == sampleDetails)
        }
    }

    @Test("over the header budget, details go before the status does: status and message always arrive")
    func budget() async throws {
        try await withServer(services: [DetailsService()]) { _, client in
            // A message cut to 2 KiB leaves too little room for a Status repeating it.
            let huge = await expectRPCError(.invalidArgument) {
                _ = try await client.unary(Echo.get, request: EchoRequest(text: "huge"), timeout: .seconds(20))
            }
            #expect(huge?.message.hasSuffix("[truncated; 100000 bytes in all]") == true)
            #expect(huge?.details == [])
            // A BadRequest too large to send is dropped; the small detail after it still goes.
            let many = await expectRPCError(.invalidArgument) {
                _ = try await client.unary(Echo.get, request: EchoRequest(text: "big details"), timeout: .seconds(20))
            }
            #expect(many?.message == "many")
            #expect(many?.details == [.errorInfo(reason: "STILL_THERE")])
            // The connection is fine for the next call.
            await expectRPCError(.failedPrecondition) {
                _ = try await client.unary(Echo.get, request: EchoRequest(text: ""), timeout: .seconds(20))
            }
        }
    }
}
