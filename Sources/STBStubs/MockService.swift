import STBJSON
import Synchronization
import STBMessages
@_spi(TransportFaults) import STBRPC

/// A stand-in for one service of `Protos/`: every method answers from the stubs.
///
/// A call is matched against the method's stubs in order (priority, then id); the first
/// whose conditions hold and whose `times` are not used up answers, after its delay and
/// unless its fault strikes. No match is UNIMPLEMENTED, and the journal keeps the near
/// misses. Unary and server-streaming calls are matched on their request; a
/// client-streaming call on its last request; a bidirectional call answers each request.
struct MockService: RPCService {
    let serviceName: String
    let registry: StubRegistry
    let journal: StubJournal

    func register(in router: inout RPCRouter) {
        for descriptor in ProtoMethodDescriptor.methods(ofService: serviceName) {
            let matcher = StubMatcher(method: descriptor, registry: registry, journal: journal)
            switch descriptor.kind {
            case .unary:
                router.register(ProtoMethod<ProtoWireMessage, ProtoWireMessage>(path: descriptor.path, kind: .unary), unary: { request, context in
                    try await matcher.answerUnary(request.bytes, context: context)
                })
            case .serverStreaming:
                router.register(ProtoMethod<ProtoWireMessage, ProtoWireMessage>(path: descriptor.path, kind: .serverStreaming), serverStreaming: { request, writer, context in
                    try await matcher.answerStream(request.bytes, writer: writer, context: context)
                })
            case .clientStreaming:
                router.register(ProtoMethod<ProtoWireMessage, ProtoWireMessage>(path: descriptor.path, kind: .clientStreaming), clientStreaming: { requests, context in
                    var last = ProtoWireMessage()
                    for try await request in requests { last = request }
                    return try await matcher.answerUnary(last.bytes, context: context)
                })
            case .bidirectionalStreaming:
                router.register(ProtoMethod<ProtoWireMessage, ProtoWireMessage>(path: descriptor.path, kind: .bidirectionalStreaming), bidirectionalStreaming: { requests, writer, context in
                    for try await request in requests {
                        try await matcher.answerStream(request.bytes, writer: writer, context: context, endsCall: false)
                    }
                })
            }
        }
    }
}

/// Matches the calls of one method and carries out the chosen stub's answer.
struct StubMatcher: Sendable {
    let method: ProtoMethodDescriptor
    let registry: StubRegistry
    let journal: StubJournal
    /// The last request decoded for the conditions (load tests repeat theirs).
    private let decodedRequests = DecodedRequestCache()

    init(method: ProtoMethodDescriptor, registry: StubRegistry, journal: StubJournal) {
        self.method = method
        self.registry = registry
        self.journal = journal
    }

    /// The stub that answers, the answer, its fault and its delay in nanoseconds.
    private func choose(_ request: [UInt8], context: ServerContext) throws -> (StubDefinition, StubDefinition.Response, StubDefinition.Fault?, UInt64) {
        let (candidates, mockFault, mockDelay) = registry.candidates(for: method.path, service: method.serviceName)
        var decoded: JSONValue??
        var metadata: [String: [String]] = [:]
        if candidates.contains(where: { $0.condition?.readsMetadata == true }) {
            for entry in context.metadata {
                if case .string(let text) = entry.value { metadata[entry.key, default: []].append(text) }
            }
        }
        var nearMisses: [String] = []
        for stub in candidates {
            if let condition = stub.condition {
                if condition.readsFields, decoded == nil {
                    decoded = .some(decodedRequests.decoded(request, type: method.requestType))
                }
                if let failure = condition.firstFailure(request: decoded ?? nil, metadata: metadata) {
                    nearMisses.append("\(stub.id): \(failure)")
                    continue
                }
            }
            guard let number = journal.claim(stub.id, times: stub.times) else {
                nearMisses.append("\(stub.id): its \(stub.times ?? 0) times are used up")
                continue
            }
            let response = stub.responses[min(number, stub.responses.count - 1)]
            let fault = stub.fault == nil ? mockFault.flatMap(StubDefinition.draw) : stub.drawFault()
            var status = response.status?.code.rawValue ?? 0
            switch fault {
            case .status(let error)?: status = error.code.rawValue
            case .resetStream?: status = RPCError.Code.internal.rawValue
            case .goAway?, .connectionReset?: status = RPCError.Code.unavailable.rawValue
            default: break
            }
            journal.record(method: method, request: request, metadata: context.metadata, stubID: stub.id, nearMisses: [], status: status)
            let delay = stub.hasDelay ? stub.drawDelay() : mockDelay.map(StubDefinition.draw) ?? 0
            return (stub, response, fault, delay)
        }
        journal.record(
            method: method, request: request, metadata: context.metadata, stubID: nil, nearMisses: nearMisses,
            status: RPCError.Code.unimplemented.rawValue)
        throw RPCError(code: .unimplemented, message: "no stub matches this call to \(method.path)")
    }

    func answerUnary(_ request: [UInt8], context: ServerContext) async throws -> ProtoWireMessage {
        let (_, response, fault, delay) = try choose(request, context: context)
        try await prepare(response, fault, delay: delay, context: context)
        if let status = response.status { throw status }
        guard let first = response.messages.first else {
            throw RPCError(code: .internal, message: "the stub has no message")
        }
        if first.delayNanos > 0 { try await Task.sleep(nanoseconds: first.delayNanos) }
        return ProtoWireMessage(bytes: first.bytes)
    }

    func answerStream(_ request: [UInt8], writer: RPCWriter<ProtoWireMessage>, context: ServerContext, endsCall: Bool = true) async throws {
        let (_, response, fault, delay) = try choose(request, context: context)
        try await prepare(response, fault, delay: delay, context: context)
        var gap: UInt64 = 0
        if case .slowStream(let nanos, _)? = fault { gap = nanos }
        for (index, message) in response.messages.enumerated() {
            let wait = message.delayNanos + (index > 0 ? gap : 0)
            if wait > 0 { try await Task.sleep(nanoseconds: wait) }
            try await writer.write(ProtoWireMessage(bytes: message.bytes))
        }
        if let status = response.status { throw status }
    }

    /// Headers and trailers, the delay, and the faults that strike before any answer.
    private func prepare(_ response: StubDefinition.Response, _ fault: StubDefinition.Fault?, delay: UInt64, context: ServerContext) async throws {
        if !response.headers.isEmpty { context.addInitialMetadata(response.headers) }
        if !response.trailers.isEmpty { context.addTrailingMetadata(response.trailers) }
        if delay > 0 { try await Task.sleep(nanoseconds: delay) }
        switch fault {
        case .neverAnswer?:
            // Until the caller gives up (its deadline or a cancel ends the task), at most an hour.
            try await Task.sleep(nanoseconds: 3_600_000_000_000)
            throw RPCError(code: .deadlineExceeded, message: "the stub never answered")
        case .status(let error)?:
            throw error
        case .resetStream(let code)?:
            throw TransportFault.resetStream(code: code)
        case .goAway(let code)?:
            throw TransportFault.goAway(code: code)
        case .connectionReset?:
            throw TransportFault.closeConnection
        case .slowStream(let gap, let chunkBytes?)?:
            // The framed answer a few bytes at a time (the status, if any, is not sent).
            throw TransportFault.dribble(messages: response.messages.map(\.bytes), chunkBytes: chunkBytes, gapNanos: gap)
        case .slowStream(_, nil)?, nil:
            break
        }
    }
}

/// The JSON form of the last request a method's conditions read, kept so that a repeated
/// request (the usual load test) is decoded once rather than on every call.
final class DecodedRequestCache: Sendable {
    /// Requests longer than this are decoded each time (not copied into the cache).
    static let maxCachedBytes = 4096

    private let last = Mutex<(request: [UInt8], value: JSONValue?)?>(nil)

    /// `request` (the wire encoding of `type`) as JSON; nil when it does not decode.
    func decoded(_ request: [UInt8], type: String) -> JSONValue? {
        if let hit = last.withLock({ last -> JSONValue?? in
            guard let last, last.request == request else { return nil }
            return .some(last.value)
        }) {
            return hit
        }
        let value = ProtoDynamicMessage.json(ofWireEncoding: request, type: type)
            .flatMap { try? JSONValue.parse(String(decoding: $0, as: UTF8.self)) }
        if request.count <= Self.maxCachedBytes { last.withLock { $0 = (request, value) } }
        return value
    }
}
