import STBRPC
import STBService

/// `stubd`'s configuration, read once from the environment: the service's common part
/// (`STUBS_*`, see `ServiceConfiguration`; port 50054), the stub file (`STUBS_FILE`,
/// none by default; re-read when it changes), the host mocks listen on (`STUBS_MOCK_HOST`;
/// by default `STUBS_HOST`'s, 127.0.0.1 when neither is set) and the journal's ring size
/// (`STUBS_JOURNAL_SIZE`, 1024 calls).
public struct StubsConfiguration: Sendable {
    public var service: ServiceConfiguration
    public var stubFile: String?
    public var mockHost: String
    public var journalSize: Int

    public init(environment: [String: String]) throws(ConfigurationError) {
        service = try ServiceConfiguration(name: "stubs", defaultPort: 50054, environment: environment)
        stubFile = environment["STUBS_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        mockHost = environment["STUBS_MOCK_HOST"].flatMap { $0.isEmpty ? nil : $0 } ?? service.server.host
        journalSize = 1024
        if let text = environment["STUBS_JOURNAL_SIZE"] {
            journalSize = try ServiceConfiguration.integer("STUBS_JOURNAL_SIZE", text, in: 1...1_000_000)
        }
    }
}
