import STBJSON
import STBLoad
import STBMessages
import STBRPC

/// A scenario: ordered actions against mocks and services, checked whole before it runs
/// (every stub against its method, every request against its input type, every schedule
/// and threshold), so a bad one is refused with the action's position, path and reason.
///
/// `{"name": "rules-fault", "description": "…", "actions": [ … ]}`, each action an object
/// with a `type`: START_MOCK (`service`, `port`), STOP_MOCK (`service`), PUT_STUB (`stub`),
/// SET_DELAY (`stub`: an id, or `mock`: a service, `delay`: a stub delay or null), SET_FAULT
/// (`stub` or `mock`, `fault`: a fault or null), WAIT (`ms`), CALL (`target`, `method`, `request`, `metadata`,
/// `expect`: {`status`, `fields`: {path: value}}), LOAD (`target`, `method`, `data`,
/// `rate` and `duration` or `steps` or `ramp`, `poisson`, `connections`, `streams`,
/// `metadata`, `thresholds`). A target is `HOST:PORT` or `mock:SERVICE` (a running mock).
struct Scenario: Sendable {
    enum Target: Sendable {
        case address(String, Int)
        case mock(String)
    }

    struct Call: Sendable {
        var target: Target
        var method: ProtoMethodDescriptor
        var request: [UInt8]
        var metadata: Metadata
        var expectedStatus: Int
        var expectedFields: [(path: String, steps: [StubCondition.PathStep], value: JSONValue)]
    }

    struct Load: Sendable {
        var target: Target
        var method: ProtoMethodDescriptor
        var requests: RequestSource
        var schedule: LoadSchedule
        var thresholds: [LoadThreshold]
        var metadata: Metadata
        var connections: Int
        var streams: Int
    }

    enum Action: Sendable {
        case startMock(String, Int)
        case stopMock(String)
        case putStub(StubDefinition)
        case setDelay(String, JSONValue)
        case setFault(String, JSONValue)
        /// The fault of a whole mock (every call its stubs answer without a fault of their own).
        case setMockFault(String, JSONValue)
        /// The delay of a whole mock (every call its stubs answer without a delay of their own).
        case setMockDelay(String, JSONValue)
        case wait(UInt64)
        case call(Call)
        case load(Load)

        var typeName: String {
            switch self {
            case .startMock: "START_MOCK"
            case .stopMock: "STOP_MOCK"
            case .putStub: "PUT_STUB"
            case .setDelay, .setMockDelay: "SET_DELAY"
            case .setFault, .setMockFault: "SET_FAULT"
            case .wait: "WAIT"
            case .call: "CALL"
            case .load: "LOAD"
            }
        }
    }

    let name: String
    let description: String
    let actions: [(action: Action, parameters: JSONValue)]

    init(_ value: JSONValue) throws(StubError) {
        guard case .object(let members) = value else { throw StubError("", "a scenario is an object with name and actions") }
        for key in members.keys.sorted() where !["name", "description", "actions"].contains(key) {
            throw StubError(key, "unknown member (name, description, actions)")
        }
        guard case .string(let name)? = members["name"], StubDefinition.isValidID(name) else {
            throw StubError("name", "1 to 128 letters, digits, '-', '_', '.' or ':'")
        }
        self.name = name
        description = members["description"]?.stringValue ?? ""
        guard case .array(let list)? = members["actions"], !list.isEmpty, list.count <= 1000 else {
            throw StubError("actions", "a list of 1 to 1000 actions")
        }
        var actions: [(Action, JSONValue)] = []
        for (index, item) in list.enumerated() {
            do {
                actions.append((try Self.action(item), item))
            } catch {
                throw error.within("actions[\(index)]")
            }
        }
        self.actions = actions
    }

    private static func action(_ value: JSONValue) throws(StubError) -> Action {
        guard case .object(let members) = value, case .string(let type)? = members["type"] else {
            throw StubError("type", "START_MOCK, STOP_MOCK, PUT_STUB, SET_DELAY, SET_FAULT, WAIT, CALL or LOAD")
        }
        func string(_ key: String) throws(StubError) -> String {
            guard case .string(let text)? = members[key], !text.isEmpty else { throw StubError(key, "a string") }
            return text
        }
        switch type {
        case "START_MOCK":
            let service = try string("service")
            guard MockHost.stubbableServices.contains(service) else { throw StubError("service", "no service \(service) in Protos/") }
            var port = 0
            if let value = members["port"] {
                guard case .integer(let number) = value, (0...65535).contains(number) else { throw StubError("port", "0 to 65535") }
                port = Int(number)
            }
            return .startMock(service, port)
        case "STOP_MOCK":
            return .stopMock(try string("service"))
        case "PUT_STUB":
            guard let stub = members["stub"] else { throw StubError("stub", "a stub definition") }
            do {
                return .putStub(try StubDefinition(stub))
            } catch {
                throw error.within("stub")
            }
        case "SET_FAULT" where members["mock"] != nil:
            let service = try string("mock")
            guard MockHost.stubbableServices.contains(service) else { throw StubError("mock", "no service \(service) in Protos/") }
            guard let setting = members["fault"] else { throw StubError("fault", "a fault, or null to remove it") }
            if setting != .null {
                _ = try StubDefinition.fault(setting)
            }
            return .setMockFault(service, setting)
        case "SET_DELAY" where members["mock"] != nil:
            let service = try string("mock")
            guard MockHost.stubbableServices.contains(service) else { throw StubError("mock", "no service \(service) in Protos/") }
            guard let setting = members["delay"] else { throw StubError("delay", "a delay, or null to remove it") }
            if setting != .null {
                _ = try StubDefinition.delay(setting)
            }
            return .setMockDelay(service, setting)
        case "SET_DELAY", "SET_FAULT":
            let id = try string("stub")
            let key = type == "SET_DELAY" ? "delay" : "fault"
            guard let setting = members[key] else { throw StubError(key, "a stub \(key), or null to remove it") }
            return type == "SET_DELAY" ? .setDelay(id, setting) : .setFault(id, setting)
        case "WAIT":
            guard let ms = members["ms"].flatMap(StubCondition.number), ms >= 0, ms <= 3_600_000 else {
                throw StubError("ms", "milliseconds from 0 to 3600000")
            }
            return .wait(UInt64(ms * 1e6))
        case "CALL":
            let target = try Self.target(try string("target"))
            let method = try Self.method(try string("method"))
            guard method.kind == .unary else { throw StubError("method", "CALL makes unary calls") }
            let request: [UInt8]
            do {
                request = try ProtoDynamicMessage.wireEncoding(ofJSON: Array((members["request"] ?? .object([:])).canonicalText.utf8), type: method.requestType)
            } catch {
                throw StubError(error.path.isEmpty ? "request" : "request.\(error.path)", "not a \(method.requestType): \(error.reason)")
            }
            var expectedStatus = 0
            var fields: [(String, [StubCondition.PathStep], JSONValue)] = []
            if case .object(let expect)? = members["expect"] {
                if let status = expect["status"] {
                    expectedStatus = try StubDefinition.status(.object(["code": status]), at: "expect").code.rawValue
                }
                if case .object(let wanted)? = expect["fields"] {
                    for key in wanted.keys.sorted() {
                        fields.append((key, try StubCondition.parsePath(key, at: "expect.fields.\(key)"), wanted[key] ?? .null))
                    }
                }
            }
            return .call(Call(
                target: target, method: method, request: request, metadata: try Self.metadata(members["metadata"]),
                expectedStatus: expectedStatus, expectedFields: fields))
        case "LOAD":
            let target = try Self.target(try string("target"))
            let method = try Self.method(try string("method"))
            let data = members["data"].map { value -> String in
                if case .string(let template) = value { return template }
                return value.canonicalText
            } ?? "{}"
            do {
                let requests = try RequestSource(text: data, typeName: method.requestType, origin: "data")
                let steps: [LoadSchedule.Step]
                if let rate = members["rate"].flatMap(StubCondition.number) {
                    steps = [LoadSchedule.Step(rate: rate, durationNanos: try LoadArguments.duration(members["duration"]?.stringValue ?? "10s", option: "duration"))]
                } else if let text = members["steps"]?.stringValue {
                    steps = try LoadArguments.steps(text)
                } else if let text = members["ramp"]?.stringValue {
                    steps = [try LoadArguments.ramp(text)]
                } else {
                    throw LoadError(.badSchedule, "give rate (with duration), steps or ramp")
                }
                let schedule = try LoadSchedule(steps: steps, poisson: members["poisson"] == .bool(true))
                var thresholds: [LoadThreshold] = []
                for item in members["thresholds"]?.arrayValue ?? [] {
                    thresholds.append(try LoadThreshold(item.stringValue ?? ""))
                }
                guard method.kind == .unary || method.kind == .serverStreaming else {
                    throw LoadError(.badOption, "LOAD calls unary and server-streaming methods")
                }
                return .load(Load(
                    target: target, method: method, requests: requests, schedule: schedule, thresholds: thresholds,
                    metadata: try Self.metadata(members["metadata"]),
                    connections: Int(members["connections"]?.integerValue ?? 4), streams: Int(members["streams"]?.integerValue ?? 64)))
            } catch let error as LoadError {
                throw StubError("", error.message)
            } catch let error as StubError {
                throw error
            } catch {
                throw StubError("", "\(error)")
            }
        default:
            throw StubError("type", "\(type) is not START_MOCK, STOP_MOCK, PUT_STUB, SET_DELAY, SET_FAULT, WAIT, CALL or LOAD")
        }
    }

    private static func target(_ text: String) throws(StubError) -> Target {
        if text.hasPrefix("mock:") { return .mock(String(text.dropFirst(5))) }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            throw StubError("target", "HOST:PORT or mock:SERVICE")
        }
        return .address(String(text[..<colon]), port)
    }

    private static func method(_ text: String) throws(StubError) -> ProtoMethodDescriptor {
        do {
            return try LoadArguments.method(text)
        } catch {
            throw StubError("method", error.message)
        }
    }

    private static func metadata(_ value: JSONValue?) throws(StubError) -> Metadata {
        var metadata = Metadata()
        guard let value else { return metadata }
        guard case .object(let members) = value else { throw StubError("metadata", "an object of strings") }
        for (key, entry) in members.sorted(by: { $0.key < $1.key }) {
            guard case .string(let text) = entry else { throw StubError("metadata.\(key)", "a string") }
            metadata.addString(text, forKey: key.lowercased())
        }
        return metadata
    }
}
