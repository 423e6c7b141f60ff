import STBMessages
import Testing

@Suite("Health, echo and common messages")
struct ServiceMessagesTests {
    @Test("health check request and response round-trip")
    func healthRoundTrip() throws {
        let request = Grpc_Health_V1_HealthCheckRequest(service: "stb.testing.v1.Echo")
        #expect(try request.roundTripped() == request)
        #expect(try request.roundTripped().service == "stb.testing.v1.Echo")

        let response = Grpc_Health_V1_HealthCheckResponse(status: .notServing)
        // Field 1, varint 2: what every gRPC health client expects for NOT_SERVING.
        #expect(response.serializedBytes() == [0x08, 0x02])
        #expect(try response.roundTripped().status == .notServing)
    }

    @Test("serving status cases are named as swift-protobuf names them")
    func servingStatusNames() {
        #expect(Grpc_Health_V1_HealthCheckResponse.ServingStatus.unknown.rawValue == 0)
        #expect(Grpc_Health_V1_HealthCheckResponse.ServingStatus.serving.rawValue == 1)
        #expect(Grpc_Health_V1_HealthCheckResponse.ServingStatus.notServing.rawValue == 2)
        #expect(Grpc_Health_V1_HealthCheckResponse.ServingStatus.serviceUnknown.rawValue == 3)
        #expect(Stb_Common_V1_ChangeAction(rawValue: 2) == .updated)
    }

    @Test("health list response with a message-valued map round-trips")
    func healthList() throws {
        let list = Grpc_Health_V1_HealthListResponse(statuses: [
            "": Grpc_Health_V1_HealthCheckResponse(status: .serving),
            "stb.testing.v1.Echo": Grpc_Health_V1_HealthCheckResponse(status: .notServing),
            "stb.other.v1.Other": Grpc_Health_V1_HealthCheckResponse(),
        ])
        let decoded = try list.roundTripped()
        #expect(decoded.statuses.count == 3)
        #expect(decoded.statuses["stb.testing.v1.Echo"]?.status == .notServing)
        #expect(decoded == list)
        #expect(Grpc_Health_V1_HealthListRequest().serializedBytes() == [])
    }

    @Test("echo messages round-trip")
    func echoRoundTrip() throws {
        let request = Stb_Testing_V1_EchoRequest(text: "hi", payload: [1, 2, 3], count: 3, delayMs: 10, failWithCode: 5)
        #expect(try request.roundTripped() == request)
        let response = Stb_Testing_V1_EchoResponse(text: "hi", payload: Array(repeating: 7, count: 70_000), index: 2)
        #expect(try response.roundTripped() == response)
    }

    @Test("service descriptions carry the gRPC paths and streaming kinds")
    func services() {
        #expect(Grpc_Health_V1_Health.serviceName == "grpc.health.v1.Health")
        #expect(Grpc_Health_V1_Health.check.path == "/grpc.health.v1.Health/Check")
        #expect(Grpc_Health_V1_Health.check.kind == .unary)
        #expect(Grpc_Health_V1_Health.watch.kind == .serverStreaming)
        #expect(Stb_Testing_V1_Echo.serviceName == "stb.testing.v1.Echo")
        #expect(Stb_Testing_V1_Echo.get.path == "/stb.testing.v1.Echo/Get")
        #expect(Stb_Testing_V1_Echo.get.kind == .unary)
        #expect(Stb_Testing_V1_Echo.expand.kind == .serverStreaming)
        #expect(Stb_Testing_V1_Echo.collect.kind == .clientStreaming)
        #expect(Stb_Testing_V1_Echo.update.kind == .bidirectionalStreaming)
    }
}
