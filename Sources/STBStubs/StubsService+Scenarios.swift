import Glibc
import STBJSON
import STBLoad
import STBMessages
import STBPostgres
import STBRPC

extension StubsService {
    public func runScenario(_ request: Stb_Stubs_V1_RunScenarioRequest, context: ServerContext) async throws -> Stb_Stubs_V1_ScenarioResult {
        let scenario: Scenario
        do {
            scenario = try Scenario(try JSONValue.parse(request.definitionJson))
        } catch let error as StubError {
            throw Self.invalid(error.within("definition_json"))
        } catch {
            throw Self.invalid(StubError("definition_json", "not JSON: \(error)"))
        }
        // The scenario and its actions are stored (replacing an earlier one of the same
        // name) and marked RUNNING; its status at the end is COMPLETED or FAILED.
        let scenarioID = try await pool.withTransaction { connection in
            let rows = try await connection.query("""
                INSERT INTO scenarios (name, description, status) VALUES (\(scenario.name), \(scenario.description), 'RUNNING')
                ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description, status = 'RUNNING', updated_at = now()
                RETURNING id
                """)
            let id = try rows[0].decode(0, as: Int64.self)
            _ = try await connection.query("DELETE FROM scenario_actions WHERE scenario_id = \(id)")
            for (position, entry) in scenario.actions.enumerated() {
                _ = try await connection.query("""
                    INSERT INTO scenario_actions (scenario_id, position, action_type, parameters)
                    VALUES (\(id), \(Int32(position)), \(entry.action.typeName), \(entry.parameters.canonicalText)::jsonb)
                    """)
            }
            return id
        }
        let started = Self.monotonicMillis()
        var steps: [JSONValue] = []
        var failure: String?
        var allHeld = true
        for (position, entry) in scenario.actions.enumerated() {
            var step: [String: JSONValue] = ["position": .number(position), "type": .string(entry.action.typeName)]
            do {
                let (held, detail) = try await perform(entry.action)
                step["held"] = .bool(held)
                step["detail"] = detail
                allHeld = allHeld && held
            } catch {
                let message = (error as? RPCError)?.message ?? (error as? StubError)?.description ?? "the action could not run"
                step["held"] = .bool(false)
                step["error"] = .string(message)
                steps.append(.object(step))
                failure = "action \(position) (\(entry.action.typeName)): \(message)"
                break
            }
            steps.append(.object(step))
        }
        let duration = Self.monotonicMillis() - started
        let status = failure != nil ? "FAILED" : (allHeld ? "SUCCESS" : "PARTIAL")
        let stepsText = JSONValue.array(steps).canonicalText
        let rows = try await pool.withTransaction { connection in
            _ = try await connection.query("""
                UPDATE scenarios SET status = \(failure == nil ? "COMPLETED" : "FAILED"), updated_at = now() WHERE id = \(scenarioID)
                """)
            return try await connection.query("""
                INSERT INTO test_results (scenario_id, status, results, duration_ms, error_message)
                VALUES (\(scenarioID), \(status), \(stepsText)::jsonb, \(duration), \(failure))
                RETURNING id, (extract(epoch FROM executed_at) * 1000000)::bigint
                """)
        }
        let (resultID, executed) = try rows[0].decode(Int64.self, Int64.self)
        return Stb_Stubs_V1_ScenarioResult(
            id: String(resultID), scenario: scenario.name, status: status, stepsJson: stepsText, durationMs: duration,
            error: failure ?? "", executedUnixMicros: executed)
    }

    public func listResults(_ request: Stb_Stubs_V1_ListResultsRequest, context: ServerContext) async throws -> Stb_Stubs_V1_ListResultsResponse {
        let limit = request.limit <= 0 ? 20 : min(Int64(request.limit), 1000)
        let rows = try await pool.query("""
            SELECT r.id, s.name, r.status, r.results::text, r.duration_ms, coalesce(r.error_message, ''),
                   (extract(epoch FROM r.executed_at) * 1000000)::bigint
              FROM test_results r JOIN scenarios s ON s.id = r.scenario_id
             WHERE \(request.scenario) = '' OR s.name = \(request.scenario)
             ORDER BY r.id DESC LIMIT \(limit)
            """)
        var results: [Stb_Stubs_V1_ScenarioResult] = []
        for row in rows {
            let (id, name, status, steps, duration, error, executed) = try row.decode(Int64.self, String.self, String.self, String.self, Int64.self, String.self, Int64.self)
            results.append(Stb_Stubs_V1_ScenarioResult(
                id: String(id), scenario: name, status: status, stepsJson: steps, durationMs: duration, error: error, executedUnixMicros: executed))
        }
        return Stb_Stubs_V1_ListResultsResponse(results: results)
    }

    /// Carries out one action: whether its expectations held, and what it saw.
    private func perform(_ action: Scenario.Action) async throws -> (Bool, JSONValue) {
        switch action {
        case .startMock(let service, let port):
            let bound = try await mocks.start(service: service, port: port)
            return (true, ["service": .string(service), "port": .number(bound)])
        case .stopMock(let service):
            guard await mocks.stop(service: service) else { throw RPCError(code: .notFound, message: "no mock of \(service) runs") }
            return (true, ["service": .string(service)])
        case .putStub(let stub):
            try await save(stub)
            return (true, ["stub": .string(stub.id)])
        case .setDelay(let id, let setting):
            try await changeStub(id, .delay, to: setting)
            return (true, ["stub": .string(id), "delay": setting])
        case .setFault(let id, let setting):
            try await changeStub(id, .fault, to: setting)
            return (true, ["stub": .string(id), "fault": setting])
        case .setMockFault(let service, let setting):
            try setMock(service, .fault, to: setting)
            return (true, ["mock": .string(service), "fault": setting])
        case .setMockDelay(let service, let setting):
            try setMock(service, .delay, to: setting)
            return (true, ["mock": .string(service), "delay": setting])
        case .wait(let nanos):
            try await Task.sleep(nanoseconds: nanos)
            return (true, ["ms": .double(Double(nanos) / 1e6)])
        case .call(let call):
            let (host, port) = try address(call.target)
            let client = try RPCClient(host: host, port: port)
            let method = ProtoMethod<ProtoWireMessage, ProtoWireMessage>(path: call.method.path, kind: .unary)
            var detail: [String: JSONValue] = ["method": .string(call.method.path)]
            var status = 0
            var response: JSONValue?
            do {
                let reply = try await client.unary(method, request: ProtoWireMessage(bytes: call.request), metadata: call.metadata, timeout: .seconds(10))
                response = ProtoDynamicMessage.json(ofWireEncoding: reply.bytes, type: call.method.responseType)
                    .flatMap { try? JSONValue.parse(String(decoding: $0, as: UTF8.self)) }
            } catch let error as RPCError {
                status = error.code.rawValue
                detail["message"] = .string(error.message)
            } catch {
                status = RPCError.Code.unknown.rawValue
            }
            await client.close()
            detail["status"] = .string(RPCError.Code(rawValue: status).description)
            if let response { detail["response"] = response }
            var held = status == call.expectedStatus
            var mismatches: [JSONValue] = []
            for field in call.expectedFields {
                let actual = response.flatMap { StubCondition.resolve(field.steps, in: $0) }
                if actual.map({ StubCondition.same($0, field.value) }) != true {
                    held = false
                    mismatches.append(["field": .string(field.path), "expected": field.value, "actual": actual ?? .null])
                }
            }
            if !mismatches.isEmpty { detail["mismatches"] = .array(mismatches) }
            return (held, .object(detail))
        case .load(let load):
            let (host, port) = try address(load.target)
            var configuration = LoadConfiguration(host: host, port: port, method: load.method, requests: load.requests, schedule: load.schedule)
            configuration.connections = load.connections
            configuration.streamsPerConnection = load.streams
            configuration.metadata = load.metadata
            let report = await (try LoadRunner(configuration: configuration)).run()
            if let setupError = report.setupError { throw RPCError(code: .failedPrecondition, message: setupError) }
            var held = true
            var verdicts: [JSONValue] = []
            for threshold in load.thresholds {
                let (measured, passed) = threshold.evaluate(report)
                held = held && passed
                verdicts.append(["threshold": .string(threshold.description), "measured": .string(measured), "passed": .bool(passed)])
            }
            var value = report.json()
            if case .object(var members) = value {
                members["thresholds"] = .array(verdicts)
                value = .object(members)
            }
            return (held, value)
        }
    }

    private func address(_ target: Scenario.Target) throws -> (String, Int) {
        switch target {
        case .address(let host, let port):
            return (host, port)
        case .mock(let service):
            guard let running = mocks.running().first(where: { $0.service == service }) else {
                throw RPCError(code: .failedPrecondition, message: "no mock of \(service) runs")
            }
            return ("127.0.0.1", running.port)
        }
    }

    static func monotonicMillis() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec / 1_000_000)
    }
}
