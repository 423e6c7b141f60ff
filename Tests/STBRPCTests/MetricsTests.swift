import Metrics
import Prometheus
import STBEcho
import STBMessages
import Testing

@testable import STBRPC

@Suite("Metrics")
struct MetricsTests {
    /// A server recording into its own registry (the process's `MetricsSystem` is left alone).
    private func withMeteredServer(
        _ body: (PrometheusCollectorRegistry, RPCClient) async throws -> Void
    ) async throws {
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        try await withServer(interceptors: [MetricsInterceptor(factory: factory)]) { configuration in
            configuration.metricsFactory = factory
            configuration.metricsExposition = { PrometheusText.addingHelp(to: registry.emitToBuffer(), help: RPCMetricName.help) }
        } _: { _, client in
            try await body(registry, client)
        }
    }

    /// The value of the sample `name{labels}` (labels as written), or nil.
    private func sample(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    @Test("Calls are counted by method and status code, timed, and the transport counters move")
    func countersMove() async throws {
        try await withMeteredServer { registry, client in
            for _ in 0..<3 {
                _ = try await client.unary(Echo.get, request: EchoRequest(text: "hello"))
            }
            await expectRPCError(.notFound) { _ = try await client.unary(Echo.get, request: EchoRequest(text: "gone", failWithCode: 5)) }

            let text = registry.emitToString()
            let method = #"{service="stb.testing.v1.Echo",method="Get""#
            #expect(sample(text, "stb_rpc_server_requests_total\(method),code=\"OK\",protocol=\"grpc\"}") == 3)
            #expect(sample(text, "stb_rpc_server_requests_total\(method),code=\"NOT_FOUND\",protocol=\"grpc\"}") == 1)
            #expect(sample(text, "stb_rpc_server_request_duration_seconds_count\(method)}") == 4)
            #expect(sample(text, "stb_rpc_server_calls_in_flight\(method)}") == 0)
            #expect(sample(text, "stb_rpc_server_connections") == 1)
            #expect((sample(text, "stb_rpc_server_received_bytes_total") ?? 0) > 0)
            #expect((sample(text, "stb_rpc_server_sent_bytes_total") ?? 0) > 0)
        }
    }

    @Test("Help texts are added before the type lines they describe, and only there")
    func helpLines() {
        let exposition = Array("# TYPE a_total counter\na_total 1\n# TYPE b gauge\nb 2\n".utf8)
        let text = String(decoding: PrometheusText.addingHelp(to: exposition, help: ["a_total": "As.\nMore \\ here"]), as: UTF8.self)
        #expect(text == "# HELP a_total As.\\nMore \\\\ here\n# TYPE a_total counter\na_total 1\n# TYPE b gauge\nb 2\n")
    }
}
