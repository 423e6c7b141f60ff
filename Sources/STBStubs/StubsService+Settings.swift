import STBJSON
import STBMessages
import STBRPC

/// Faults and delays set at run time (`SetFault`, `SetDelay`, and the scenario actions
/// SET_FAULT and SET_DELAY): on one admin-API stub, saved with it, or on a whole mock.
extension StubsService {
    public func setFault(_ request: Stb_Stubs_V1_SetFaultRequest, context: ServerContext) async throws -> Stb_Stubs_V1_Setting {
        try await apply(.fault, stubID: request.stubID, mock: request.mock, json: request.faultJson, field: "fault_json")
    }

    public func setDelay(_ request: Stb_Stubs_V1_SetDelayRequest, context: ServerContext) async throws -> Stb_Stubs_V1_Setting {
        try await apply(.delay, stubID: request.stubID, mock: request.mock, json: request.delayJson, field: "delay_json")
    }

    /// What a run-time setting changes: a stub's (or a mock's) fault or delay.
    enum SettingKind: String {
        case fault
        case delay
    }

    private func apply(_ kind: SettingKind, stubID: String, mock: String, json: String, field: String) async throws -> Stb_Stubs_V1_Setting {
        guard stubID.isEmpty != mock.isEmpty else {
            throw Self.invalid(StubError(stubID.isEmpty ? "stub_id" : "mock", "give a stub id or a mock's service, one of the two"))
        }
        var setting = JSONValue.null
        if !json.isEmpty {
            do {
                setting = try JSONValue.parse(json)
            } catch {
                throw Self.invalid(StubError(field, "not JSON"))
            }
            guard setting != .null else { throw Self.invalid(StubError(field, "a \(kind.rawValue), or empty to remove it")) }
        }
        if !stubID.isEmpty {
            let changed = try await changeStub(stubID, kind, to: setting)
            return Stb_Stubs_V1_Setting(stubID: stubID, json: changed.json[kind.rawValue]?.canonicalText ?? "")
        }
        try setMock(mock, kind, to: setting)
        return Stb_Stubs_V1_Setting(mock: mock, json: setting == .null ? "" : setting.canonicalText)
    }

    /// Sets (`.null`: removes) the fault or delay of an admin-API stub, checked and saved
    /// like the rest of the stub; returns the stub as saved.
    @discardableResult
    func changeStub(_ id: String, _ kind: SettingKind, to setting: JSONValue) async throws -> StubDefinition {
        guard let (stub, source) = registry.stub(id) else { throw RPCError(code: .notFound, message: "no stub \(quoted(id))") }
        guard source == .api, case .object(var members) = stub.json else {
            throw RPCError(code: .failedPrecondition, message: "\(id) is a stub of \(source): change it there")
        }
        members[kind.rawValue] = setting == .null ? nil : setting
        let changed: StubDefinition
        do {
            changed = try StubDefinition(.object(members))
        } catch {
            throw Self.invalid(error)
        }
        try await save(changed)
        return changed
    }

    /// Sets (`.null`: removes) the fault or delay of the mock of `service` (which need not
    /// run yet), for the calls its stubs answer without one of their own.
    func setMock(_ service: String, _ kind: SettingKind, to setting: JSONValue) throws {
        guard MockHost.stubbableServices.contains(service) else {
            throw RPCError(code: .notFound, message: "no service \(quoted(service)) in Protos/")
        }
        do {
            switch kind {
            case .fault: try registry.setMockFault(service: service, fault: setting == .null ? nil : setting)
            case .delay: try registry.setMockDelay(service: service, delay: setting == .null ? nil : setting)
            }
        } catch {
            throw Self.invalid(error)
        }
    }
}
