import STBEcho
import STBMessages
import Testing

@testable import STBRPC

typealias ReflectionRequest = Grpc_Reflection_V1_ServerReflectionRequest
typealias ReflectionResponse = Grpc_Reflection_V1_ServerReflectionResponse

@Suite("Server reflection, asked by our client over real sockets")
struct ReflectionTests {
    private static let v1 = Grpc_Reflection_V1_ServerReflection.serverReflectionInfo
    private static let v1alpha = ReflectionService.v1alphaInfo
    private static let rawV1 = ProtoMethod<RawRequest, ReflectionResponse>(path: v1.path, kind: .bidirectionalStreaming)
    private let index = ProtoDescriptorIndex.generated

    /// Sends each request on one stream and collects one response per request.
    private func ask(
        _ client: RPCClient, _ requests: [ReflectionRequest],
        method: ProtoMethod<ReflectionRequest, ReflectionResponse> = v1
    ) async throws -> [ReflectionResponse] {
        try await client.bidirectionalStreaming(method, timeout: .seconds(20)) { writer, responses in
            var iterator = responses.makeAsyncIterator()
            var answers: [ReflectionResponse] = []
            for request in requests {
                try await writer.write(request)
                answers.append(try #require(try await iterator.next()))
            }
            writer.finish()
            #expect(try await iterator.next() == nil)
            return answers
        }
    }

    private func names(_ response: ReflectionResponse) -> [String] {
        guard case .fileDescriptorResponse(let files)? = response.messageResponse else { return [] }
        return files.fileDescriptorProto.map { bytes in
            index.files.first { $0.serializedBytes == bytes }?.name ?? "<unknown descriptor>"
        }
    }

    @Test("list_services names the server's services, health and reflection, under v1 and v1alpha")
    func listServices() async throws {
        try await withServer { _, client in
            for method in [Self.v1, Self.v1alpha] {
                let answers = try await ask(client, [ReflectionRequest(host: "h", messageRequest: .listServices(""))], method: method)
                let answer = try #require(answers.first)
                guard case .listServicesResponse(let list)? = answer.messageResponse else {
                    Issue.record("expected a service list, got \(answer)")
                    continue
                }
                #expect(list.service.map(\.name) == [
                    "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                    "grpc.reflection.v1alpha.ServerReflection", "stb.testing.v1.Echo",
                ])
                #expect(answer.validHost == "h")
                #expect(answer.originalRequest == ReflectionRequest(host: "h", messageRequest: .listServices("")))
            }
        }
    }

    @Test("file by name and file containing a symbol send the file, then its imports")
    func files() async throws {
        try await withServer { _, client in
            for request: ReflectionRequest.OneOf_MessageRequest in [
                .fileByFilename("stb/catalog/v1/catalog.proto"),
                .fileContainingSymbol("stb.catalog.v1.Catalog"),
                .fileContainingSymbol("stb.catalog.v1.Catalog.GetConfig"),
                .fileContainingSymbol("stb.catalog.v1.Option"),
            ] {
                let answer = try #require(try await ask(client, [ReflectionRequest(messageRequest: request)]).first)
                #expect(names(answer) == ["stb/catalog/v1/catalog.proto", "stb/common/v1/common.proto"], "\(request)")
            }
            let echo = try #require(try await ask(client, [ReflectionRequest(messageRequest: .fileContainingSymbol("stb.testing.v1.Echo"))]).first)
            #expect(names(echo) == ["stb/testing/v1/echo.proto"])
        }
    }

    @Test("on one stream, imports already sent are not sent again; the file asked for always is")
    func sentOncePerStream() async throws {
        try await withServer { _, client in
            let answers = try await ask(client, [
                ReflectionRequest(messageRequest: .fileContainingSymbol("stb.rules.v1.Rules")),
                ReflectionRequest(messageRequest: .fileByFilename("stb/catalog/v1/catalog.proto")),
                ReflectionRequest(messageRequest: .fileByFilename("stb/common/v1/common.proto")),
            ])
            #expect(answers.map(names) == [
                ["stb/rules/v1/rules.proto", "stb/common/v1/common.proto"],
                ["stb/catalog/v1/catalog.proto"],
                ["stb/common/v1/common.proto"],
            ])
        }
    }

    @Test("unknown files and symbols get NOT_FOUND in an error response, and the stream goes on")
    func notFound() async throws {
        try await withServer { _, client in
            let answers = try await ask(client, [
                ReflectionRequest(messageRequest: .fileContainingSymbol("stb.catalog.v1.Nope")),
                ReflectionRequest(messageRequest: .fileByFilename("nope.proto")),
                ReflectionRequest(messageRequest: .fileContainingExtension(.init(containingType: "stb.testing.v1.EchoRequest", extensionNumber: 100))),
                ReflectionRequest(messageRequest: .allExtensionNumbersOfType("stb.testing.v1.Nope")),
                ReflectionRequest(messageRequest: .fileContainingSymbol(String(repeating: "x", count: 10_000))),
                ReflectionRequest(messageRequest: .fileContainingSymbol("stb.testing.v1.Echo")),
            ])
            var errors: [(Int32, String)] = []
            for answer in answers.prefix(5) {
                guard case .errorResponse(let error)? = answer.messageResponse else {
                    Issue.record("expected an error response, got \(answer)")
                    continue
                }
                errors.append((error.errorCode, error.errorMessage))
            }
            #expect(errors.map(\.0) == Array(repeating: 5, count: 5))
            #expect(errors.first?.1 == "symbol \"stb.catalog.v1.Nope\" not found")
            #expect(errors.dropFirst().first?.1 == "file \"nope.proto\" not found")
            #expect((errors.last?.1.count ?? 0) < 300)
            #expect(answers[0].originalRequest == ReflectionRequest(messageRequest: .fileContainingSymbol("stb.catalog.v1.Nope")))
            #expect(names(answers[5]) == ["stb/testing/v1/echo.proto"])
        }
    }

    @Test("extension numbers of a known type: none; a request that asks nothing: UNIMPLEMENTED")
    func extensionsAndEmpty() async throws {
        try await withServer { _, client in
            let answers = try await ask(client, [
                ReflectionRequest(messageRequest: .allExtensionNumbersOfType("stb.testing.v1.EchoRequest")),
                ReflectionRequest(host: "only a host"),
            ])
            #expect(answers[0].messageResponse == .allExtensionNumbersResponse(.init(baseTypeName: "stb.testing.v1.EchoRequest")))
            guard case .errorResponse(let error)? = answers[1].messageResponse else {
                Issue.record("expected an error response, got \(answers[1])")
                return
            }
            #expect(error.errorCode == 12)
        }
    }

    @Test("a malformed request ends that call with INTERNAL; the server answers the next one")
    func malformedRequest() async throws {
        try await withServer { _, client in
            await expectRPCError(.internal) {
                _ = try await client.bidirectionalStreaming(Self.rawV1, timeout: .seconds(20)) { writer, responses in
                    var iterator = responses.makeAsyncIterator()
                    // list_services, then field 4 claiming 5 bytes with only 1 there.
                    try await writer.write(RawRequest([0x3A, 0x00]))
                    let first = try #require(try await iterator.next())
                    #expect(first.messageResponse.map { if case .listServicesResponse = $0 { true } else { false } } == true)
                    try await writer.write(RawRequest([0x22, 0x05, 0x61]))
                    while try await iterator.next() != nil {}
                }
            }
            let answers = try await ask(client, [ReflectionRequest(messageRequest: .listServices(""))])
            #expect(answers.count == 1)
        }
    }

    @Test("a server lists only what it registers")
    func onlyRegistered() async throws {
        try await withServer(services: []) { _, client in
            let answer = try #require(try await ask(client, [ReflectionRequest(messageRequest: .listServices("*"))]).first)
            #expect(answer.messageResponse == .listServicesResponse(.init(service: [
                .init(name: "grpc.health.v1.Health"), .init(name: "grpc.reflection.v1.ServerReflection"),
                .init(name: "grpc.reflection.v1alpha.ServerReflection"),
            ])))
        }
    }
}
