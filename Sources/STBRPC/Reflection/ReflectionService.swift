import STBMessages

/// Server reflection: `grpc.reflection.v1.ServerReflection` and its older name
/// `grpc.reflection.v1alpha.ServerReflection`, one implementation behind both (the two
/// packages' messages are the same on the wire).
///
/// Answers from the descriptors `scripts/gen-messages` embeds: the services the server
/// serves, a file by name, the file defining a symbol, each with the files it imports.
/// A question it cannot answer gets an `error_response` on the stream (NOT_FOUND for
/// unknown files and symbols); the call itself goes on. `RPCServer` adds it for the
/// services it was given.
public struct ReflectionService: RPCService {
    /// A reflection request (v1 and v1alpha alike).
    public typealias Request = Grpc_Reflection_V1_ServerReflectionRequest
    /// A reflection response (v1 and v1alpha alike).
    public typealias Response = Grpc_Reflection_V1_ServerReflectionResponse

    /// The names reflection is served under.
    public static let serviceNames = [
        Grpc_Reflection_V1_ServerReflection.serviceName,
        Grpc_Reflection_V1alpha_ServerReflection.serviceName,
    ]

    /// `ServerReflectionInfo` under the v1alpha name, typed with the v1 messages.
    static let v1alphaInfo = ProtoMethod<Request, Response>(
        path: Grpc_Reflection_V1alpha_ServerReflection.serverReflectionInfo.path,
        kind: .bidirectionalStreaming
    )

    /// The services `list_services` names, sorted.
    public let services: [String]
    /// Where files and symbols are looked up.
    public let index: ProtoDescriptorIndex

    /// Reflection listing `services` (fully qualified names), answering from `index`.
    public init(services: [String], index: ProtoDescriptorIndex = .generated) {
        self.services = Set(services).sorted()
        self.index = index
    }

    /// Routes `ServerReflectionInfo` under both names to this service.
    public func register(in router: inout RPCRouter) {
        for method in [Grpc_Reflection_V1_ServerReflection.serverReflectionInfo, Self.v1alphaInfo] {
            router.register(method, bidirectionalStreaming: { [self] requests, writer, _ in
                var sent = Set<String>()
                for try await request in requests {
                    try await writer.write(answer(request, alreadySent: &sent))
                }
            })
        }
    }

    /// The response to one request of a stream. `alreadySent` holds the files this
    /// stream has carried: the file asked for always comes, its imports only once per
    /// stream, as grpc-go does.
    public func answer(_ request: Request, alreadySent: inout Set<String>) -> Response {
        var response = Response(validHost: request.host, originalRequest: request)
        response.messageResponse = messageResponse(to: request, alreadySent: &alreadySent)
        return response
    }

    private func messageResponse(to request: Request, alreadySent: inout Set<String>) -> Response.OneOf_MessageResponse {
        switch request.messageRequest {
        case .listServices?:
            return .listServicesResponse(.init(service: services.map { .init(name: $0) }))
        case .fileByFilename(let name)?:
            guard let file = index.file(named: name) else {
                return error(.notFound, "file \(quoted(name)) not found")
            }
            return files(file, alreadySent: &alreadySent)
        case .fileContainingSymbol(let symbol)?:
            guard let file = index.file(containingSymbol: symbol) else {
                return error(.notFound, "symbol \(quoted(symbol)) not found")
            }
            return files(file, alreadySent: &alreadySent)
        case .fileContainingExtension(let ext)?:
            guard let file = index.file(containingExtension: ext.containingType, number: ext.extensionNumber) else {
                return error(.notFound, "extension \(ext.extensionNumber) of \(quoted(ext.containingType)) not found")
            }
            return files(file, alreadySent: &alreadySent)
        case .allExtensionNumbersOfType(let type)?:
            guard let numbers = index.extensionNumbers(ofType: type) else {
                return error(.notFound, "message type \(quoted(type)) not found")
            }
            return .allExtensionNumbersResponse(.init(baseTypeName: type, extensionNumber: numbers))
        case nil:
            // Also what a question added to the protocol after this build looks like.
            return error(.unimplemented, "the request asks nothing this server knows")
        }
    }

    private func files(_ file: ProtoFileDescriptor, alreadySent: inout Set<String>) -> Response.OneOf_MessageResponse {
        var bytes: [[UInt8]] = []
        for (position, descriptor) in index.withDependencies(file).enumerated() {
            guard position == 0 || !alreadySent.contains(descriptor.name) else { continue }
            alreadySent.insert(descriptor.name)
            bytes.append(descriptor.serializedBytes)
        }
        return .fileDescriptorResponse(.init(fileDescriptorProto: bytes))
    }

    private func error(_ code: RPCError.Code, _ message: String) -> Response.OneOf_MessageResponse {
        .errorResponse(.init(errorCode: Int32(code.rawValue), errorMessage: message))
    }

    /// A name from the request, quoted and cut short: it is echoed in
    /// `original_request` anyway.
    private func quoted(_ name: String) -> String {
        name.count <= 200 ? "\"\(name)\"" : "\"\(name.prefix(200))…\""
    }
}
