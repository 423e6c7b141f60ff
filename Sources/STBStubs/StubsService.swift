import Logging
import STBAPI
import STBJSON
import STBMessages
import STBPostgres
import STBRPC
import Synchronization

/// The admin API (`stb.stubs.v1.Stubs`): stubs saved here are checked, stored in the
/// `stubs` database and put in force at once; mocks started here are stored too, and
/// both come back when stubd restarts.
public final class StubsService: Stb_Stubs_V1_StubsService {
    let pool: PostgresPool
    public let registry: StubRegistry
    public let journal: StubJournal
    public let mocks: MockHost
    let logger: Logger

    public init(pool: PostgresPool, registry: StubRegistry, journal: StubJournal, mocks: MockHost, logger: Logger) {
        self.pool = pool
        self.registry = registry
        self.journal = journal
        self.mocks = mocks
        self.logger = logger
    }

    /// Puts the stored stubs in force and starts the stored mocks. A stored stub that no
    /// longer fits `Protos/` is logged and left out.
    public func restore() async throws {
        for row in try await pool.query("SELECT id, definition::text FROM stubs ORDER BY id") {
            let (id, text) = try row.decode(String.self, String.self)
            do {
                try registry.put(try StubDefinition(try JSONValue.parse(text)))
            } catch {
                logger.error("a stored stub no longer fits its method; left out", metadata: ["stub": "\(id)", "reason": "\(error)"])
            }
        }
        for row in try await pool.query("SELECT service, port FROM mocks ORDER BY service") {
            let (service, port) = try row.decode(String.self, Int32.self)
            _ = try await mocks.start(service: service, port: Int(port))
        }
    }

    public func putStub(_ request: Stb_Stubs_V1_PutStubRequest, context: ServerContext) async throws -> Stb_Stubs_V1_Stub {
        let value: JSONValue
        do {
            value = try JSONValue.parse(request.definitionJson)
        } catch {
            throw Self.invalid(StubError("definition_json", "not JSON: \(error)"))
        }
        let stub: StubDefinition
        do {
            stub = try StubDefinition(value, defaultID: Self.newID())
        } catch {
            throw Self.invalid(error.within("definition_json"))
        }
        try await save(stub)
        return Self.message(stub, source: .api)
    }

    /// Stores a checked stub and puts it in force (the admin API's and scenarios' path).
    func save(_ stub: StubDefinition) async throws {
        if let existing = registry.stub(stub.id), existing.source != .api {
            throw RPCError(code: .failedPrecondition, message: "\(stub.id) is a stub of \(existing.source): change it there")
        }
        let text = stub.json.canonicalText
        _ = try await pool.query("""
            INSERT INTO stubs (id, service, method, priority, definition) VALUES (\(stub.id), \(stub.service), \(stub.method.methodName), \(Int32(stub.priority)), \(text)::jsonb)
            ON CONFLICT (id) DO UPDATE SET service = EXCLUDED.service, method = EXCLUDED.method, priority = EXCLUDED.priority,
                definition = EXCLUDED.definition, updated_at = now()
            """)
        do {
            try registry.put(stub)
        } catch {
            throw RPCError(code: .failedPrecondition, message: error.description)
        }
    }

    public func getStub(_ request: Stb_Stubs_V1_StubRef, context: ServerContext) async throws -> Stb_Stubs_V1_Stub {
        guard let (stub, source) = registry.stub(request.id) else {
            throw RPCError(code: .notFound, message: "no stub \(quoted(request.id))")
        }
        return Self.message(stub, source: source)
    }

    public func listStubs(_ request: Stb_Stubs_V1_ListStubsRequest, context: ServerContext) async throws -> Stb_Stubs_V1_ListStubsResponse {
        Stb_Stubs_V1_ListStubsResponse(stubs: registry.all()
            .filter { request.service.isEmpty || $0.stub.service == request.service }
            .map { Self.message($0.stub, source: $0.source) })
    }

    public func deleteStub(_ request: Stb_Stubs_V1_StubRef, context: ServerContext) async throws -> Stb_Common_V1_Empty {
        if let existing = registry.stub(request.id), existing.source != .api {
            throw RPCError(code: .failedPrecondition, message: "\(request.id) is a stub of \(existing.source): change it there")
        }
        let rows = try await pool.query("DELETE FROM stubs WHERE id = \(request.id) RETURNING id")
        let removed = (try? registry.delete(request.id)) ?? false
        guard rows.count > 0 || removed else { throw RPCError(code: .notFound, message: "no stub \(quoted(request.id))") }
        return Stb_Common_V1_Empty()
    }

    public func startMock(_ request: Stb_Stubs_V1_StartMockRequest, context: ServerContext) async throws -> Stb_Stubs_V1_Mock {
        let port = try await mocks.start(service: request.service, port: Int(request.port))
        _ = try await pool.query("""
            INSERT INTO mocks (service, port) VALUES (\(request.service), \(request.port))
            ON CONFLICT (service) DO UPDATE SET port = EXCLUDED.port
            """)
        return Stb_Stubs_V1_Mock(service: request.service, port: Int32(port))
    }

    public func stopMock(_ request: Stb_Stubs_V1_MockRef, context: ServerContext) async throws -> Stb_Common_V1_Empty {
        _ = try await pool.query("DELETE FROM mocks WHERE service = \(request.service)")
        guard await mocks.stop(service: request.service) else {
            throw RPCError(code: .notFound, message: "no mock of \(quoted(request.service)) runs")
        }
        return Stb_Common_V1_Empty()
    }

    public func listMocks(_ request: Stb_Stubs_V1_ListMocksRequest, context: ServerContext) async throws -> Stb_Stubs_V1_ListMocksResponse {
        Stb_Stubs_V1_ListMocksResponse(mocks: mocks.running().map { Stb_Stubs_V1_Mock(service: $0.service, port: Int32($0.port)) })
    }

    public func verify(_ request: Stb_Stubs_V1_VerifyRequest, context: ServerContext) async throws -> Stb_Stubs_V1_VerifyResponse {
        guard registry.stub(request.stubID) != nil else {
            throw RPCError(code: .notFound, message: "no stub \(quoted(request.stubID))")
        }
        let count = journal.matchedCount(request.stubID)
        guard count == request.count else {
            throw RPCError(
                code: .failedPrecondition, message: "stub \(request.stubID) matched \(count) calls, not \(request.count)",
                details: [.preconditionFailure(type: "VERIFY", subject: request.stubID, description: "matched \(count), expected \(request.count)")])
        }
        return Stb_Stubs_V1_VerifyResponse(stubID: request.stubID, count: Int64(count))
    }

    public func getJournal(_ request: Stb_Stubs_V1_GetJournalRequest, context: ServerContext) async throws -> Stb_Stubs_V1_Journal {
        let limit = request.limit <= 0 ? journal.capacity : min(Int(request.limit), journal.capacity)
        return journal.snapshot(limit: limit)
    }

    public func resetJournal(_ request: Stb_Stubs_V1_ResetJournalRequest, context: ServerContext) async throws -> Stb_Common_V1_Empty {
        journal.reset()
        return Stb_Common_V1_Empty()
    }

    static func message(_ stub: StubDefinition, source: StubRegistry.Source) -> Stb_Stubs_V1_Stub {
        Stb_Stubs_V1_Stub(
            id: stub.id, service: stub.service, method: stub.method.methodName, priority: Int32(stub.priority),
            definitionJson: stub.json.canonicalText, source: source.description)
    }

    static func invalid(_ error: StubError) -> RPCError {
        RPCError(code: .invalidArgument, message: error.description, details: [.badRequest(fields: [(field: error.path, description: error.reason)])])
    }

    /// A random id for a stub saved without one: `stub-` and 16 hex digits.
    static func newID() -> String {
        let value = UInt64.random(in: 0...UInt64.max)
        let hex = String(value, radix: 16)
        return "stub-" + String(repeating: "0", count: 16 - hex.count) + hex
    }
}
