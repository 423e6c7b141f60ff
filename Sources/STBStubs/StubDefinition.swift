import Glibc
import STBJSON
import STBMessages
import STBRPC

/// A stub checked and compiled: which calls it answers (service, method, conditions,
/// priority), how (messages in wire form, or a status), after what delay, with what
/// fault, and how many times.
///
/// Every message is converted to the method's output type when the stub is read, so a
/// stub that does not fit its method is refused then, never when a call arrives.
public struct StubDefinition: Sendable {
    /// One answer.
    struct Response: Sendable {
        /// Messages in wire form with the delay before each (one for unary methods).
        var messages: [(bytes: [UInt8], delayNanos: UInt64)]
        /// The status to end with (OK when nil).
        var status: RPCError?
        var headers: Metadata
        var trailers: Metadata
    }

    /// How long to wait before answering.
    enum Delay: Sendable {
        case none
        case fixed(UInt64)
        case uniform(UInt64, UInt64)
        /// Lognormal with this median (nanoseconds) and sigma (of the underlying normal).
        case lognormal(median: Double, sigma: Double)
    }

    /// What goes wrong, with what probability.
    enum Fault: Sendable {
        /// The call is never answered (until the caller's deadline or cancel).
        case neverAnswer
        /// The call ends with this status instead of the response.
        case status(RPCError)
        /// Stream messages come `gapNanos` apart (a slowly dribbled stream); with
        /// `chunkBytes`, the framed response goes out that many bytes at a time instead.
        case slowStream(gapNanos: UInt64, chunkBytes: Int?)
        /// The call's stream is reset (RST_STREAM) with this HTTP/2 error code.
        case resetStream(code: UInt32)
        /// The connection is sent away (GOAWAY with this HTTP/2 error code) and closed.
        case goAway(code: UInt32)
        /// The connection is cut (the socket closed with a TCP reset).
        case connectionReset
    }

    public let id: String
    public let method: ProtoMethodDescriptor
    public let priority: Int
    let condition: StubCondition?
    /// Answers in order: the n-th matched call gets the n-th, the last repeats.
    let responses: [Response]
    let delay: Delay
    let fault: (fault: Fault, probability: Double)?
    /// At most this many calls match; nil for no limit.
    public let times: Int?
    /// The definition as given, re-rendered (with its id).
    public let json: JSONValue

    /// Reads one stub. `defaultID` is used when the definition has none (the admin API
    /// makes one). Throws naming the path inside the definition and the reason.
    public init(_ value: JSONValue, defaultID: String? = nil) throws(StubError) {
        guard case .object(var members) = value else { throw StubError("", "a stub is a JSON object") }
        let known: Set<String> = ["id", "service", "method", "priority", "when", "response", "sequence", "delay", "fault", "times", "description"]
        for key in members.keys.sorted() where !known.contains(key) {
            throw StubError(key, "unknown member (expected one of \(known.sorted().joined(separator: ", ")))")
        }
        let id: String
        switch members["id"] {
        case .string(let text)?:
            guard Self.isValidID(text) else { throw StubError("id", "1 to 128 letters, digits, '-', '_', '.' or ':'") }
            id = text
        case nil:
            guard let defaultID else { throw StubError("id", "a stub in a file needs a stable id") }
            id = defaultID
            members["id"] = .string(defaultID)
        default:
            throw StubError("id", "a string")
        }
        self.id = id
        guard case .string(let service)? = members["service"] else { throw StubError("service", "the fully qualified service, e.g. stb.rules.v1.Rules") }
        guard case .string(let methodName)? = members["method"] else { throw StubError("method", "the method's name, e.g. Evaluate") }
        guard let method = ProtoMethodDescriptor.named(path: "/\(service)/\(methodName)") else {
            throw StubError("method", "\(service) has no method \(methodName) in Protos/")
        }
        self.method = method
        switch members["priority"] {
        case nil: priority = 0
        case .integer(let value)? where abs(value) <= 1_000_000: priority = Int(value)
        default: throw StubError("priority", "an integer from -1000000 to 1000000 (higher wins)")
        }
        condition = try members["when"].map { (value) throws(StubError) in try StubCondition.parse(value) }
        switch (members["response"], members["sequence"]) {
        case (let single?, nil):
            responses = [try Self.response(single, at: "response", method: method)]
        case (nil, .array(let list)?) where !list.isEmpty:
            var parsed: [Response] = []
            for (index, item) in list.enumerated() {
                parsed.append(try Self.response(item, at: "sequence[\(index)]", method: method))
            }
            responses = parsed
        case (nil, nil):
            throw StubError("response", "a stub needs a response (or a sequence of them)")
        default:
            throw StubError("sequence", "give one response or a non-empty sequence, not both")
        }
        delay = try members["delay"].map { (value) throws(StubError) in try Self.delay(value) } ?? .none
        fault = try members["fault"].map { (value) throws(StubError) in try Self.fault(value) }
        switch members["times"] {
        case nil: times = nil
        case .integer(let value)? where value >= 1 && value <= 1_000_000_000: times = Int(value)
        default: throw StubError("times", "a positive integer")
        }
        json = .object(members)
    }

    /// The stub's service, e.g. "stb.rules.v1.Rules".
    public var service: String { method.serviceName }

    static func isValidID(_ text: String) -> Bool {
        (1...128).contains(text.utf8.count) && text.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || byte == 0x5F || byte == 0x2E || byte == 0x3A
        }
    }

    private static func response(_ value: JSONValue, at path: String, method: ProtoMethodDescriptor) throws(StubError) -> Response {
        guard case .object(let members) = value else { throw StubError(path, "a response is an object") }
        for key in members.keys.sorted() where !["message", "messages", "status", "headers", "trailers"].contains(key) {
            throw StubError("\(path).\(key)", "unknown member (message, messages, status, headers, trailers)")
        }
        var messages: [(bytes: [UInt8], delayNanos: UInt64)] = []
        if let message = members["message"] {
            guard members["messages"] == nil else { throw StubError(path, "give message or messages, not both") }
            messages.append((try encode(message, at: "\(path).message", type: method.responseType), 0))
        }
        if let list = members["messages"] {
            guard method.kind == .serverStreaming || method.kind == .bidirectionalStreaming else {
                throw StubError("\(path).messages", "\(method.path) answers with one message: use \"message\"")
            }
            guard case .array(let items) = list else { throw StubError("\(path).messages", "a list") }
            for (index, item) in items.enumerated() {
                let at = "\(path).messages[\(index)]"
                guard case .object(let entry) = item, let message = entry["message"] else {
                    throw StubError(at, "an object with \"message\" and optionally \"delayMs\"")
                }
                let delay = try entry["delayMs"].map { (value) throws(StubError) in try milliseconds(value, at: "\(at).delayMs") } ?? 0
                messages.append((try encode(message, at: "\(at).message", type: method.responseType), delay))
            }
        }
        var status: RPCError?
        if let statusValue = members["status"] {
            status = try Self.status(statusValue, at: "\(path).status")
        }
        if status == nil || status?.code == .ok {
            if method.kind == .unary || method.kind == .clientStreaming {
                guard messages.count == 1 else { throw StubError(path, "\(method.path) answers with one message (or a status)") }
            }
            status = nil
        }
        return Response(
            messages: messages, status: status,
            headers: try metadata(members["headers"], at: "\(path).headers"),
            trailers: try metadata(members["trailers"], at: "\(path).trailers"))
    }

    private static func encode(_ value: JSONValue, at path: String, type: String) throws(StubError) -> [UInt8] {
        do {
            return try ProtoDynamicMessage.wireEncoding(ofJSON: Array(value.canonicalText.utf8), type: type)
        } catch {
            throw StubError(error.path.isEmpty ? path : "\(path).\(error.path)", "not a \(type): \(error.reason)")
        }
    }

    static func status(_ value: JSONValue, at path: String) throws(StubError) -> RPCError {
        guard case .object(let members) = value else { throw StubError(path, "a status is an object with code, message, details") }
        let code: RPCError.Code
        switch members["code"] {
        case .integer(let number)? where (0...16).contains(number):
            code = RPCError.Code(rawValue: Int(number))
        case .string(let name)?:
            guard let found = (0...16).first(where: { RPCError.Code(rawValue: $0).description == name }) else {
                throw StubError("\(path).code", "\(name) is not a gRPC status name")
            }
            code = RPCError.Code(rawValue: found)
        default:
            throw StubError("\(path).code", "a gRPC status: a name (NOT_FOUND) or a number 0 to 16")
        }
        var message = ""
        if let text = members["message"] {
            guard case .string(let value) = text else { throw StubError("\(path).message", "a string") }
            message = value
        }
        var details: [ErrorDetail] = []
        if let list = members["details"] {
            guard case .array(let items) = list else { throw StubError("\(path).details", "a list of google.protobuf.Any in JSON form") }
            for (index, item) in items.enumerated() {
                do {
                    let any = try Google_Protobuf_AnyMessage(jsonUTF8: Array(item.canonicalText.utf8))
                    details.append(ErrorDetail(unpacking: any))
                } catch {
                    throw StubError("\(path).details[\(index)]", "not a google.protobuf.Any: \(error)")
                }
            }
        }
        return RPCError(code: code, message: message, details: details)
    }

    private static func metadata(_ value: JSONValue?, at path: String) throws(StubError) -> Metadata {
        var metadata = Metadata()
        guard let value else { return metadata }
        guard case .object(let members) = value else { throw StubError(path, "an object of strings") }
        for (key, entry) in members.sorted(by: { $0.key < $1.key }) {
            guard case .string(let text) = entry else { throw StubError("\(path).\(key)", "a string") }
            let lower = key.lowercased()
            guard !lower.isEmpty, !lower.hasPrefix("grpc-"), !lower.hasPrefix(":"), !lower.hasSuffix("-bin") else {
                throw StubError("\(path).\(key)", "not a key a stub may set (grpc-*, pseudo-headers and -bin keys are reserved)")
            }
            metadata.addString(text, forKey: lower)
        }
        return metadata
    }

    private static func milliseconds(_ value: JSONValue, at path: String) throws(StubError) -> UInt64 {
        guard let number = StubCondition.number(value), number >= 0, number <= 3_600_000 else {
            throw StubError(path, "milliseconds from 0 to 3600000")
        }
        return UInt64(number * 1_000_000)
    }

    /// Reads a delay (of a stub, or of a whole mock).
    static func delay(_ value: JSONValue) throws(StubError) -> Delay {
        guard case .object(let members) = value, members.count == 1, let (kind, body) = members.first else {
            throw StubError("delay", "one of {\"fixedMs\": N}, {\"uniformMs\": [MIN, MAX]}, {\"lognormal\": {\"medianMs\": M, \"sigma\": S}}")
        }
        switch kind {
        case "fixedMs":
            return .fixed(try milliseconds(body, at: "delay.fixedMs"))
        case "uniformMs":
            guard case .array(let bounds) = body, bounds.count == 2 else { throw StubError("delay.uniformMs", "[MIN, MAX] in milliseconds") }
            let low = try milliseconds(bounds[0], at: "delay.uniformMs[0]")
            let high = try milliseconds(bounds[1], at: "delay.uniformMs[1]")
            guard low <= high else { throw StubError("delay.uniformMs", "MIN is above MAX") }
            return .uniform(low, high)
        case "lognormal":
            guard case .object(let parameters) = body, let median = parameters["medianMs"], let sigma = parameters["sigma"].flatMap(StubCondition.number),
                  sigma >= 0, sigma <= 4
            else { throw StubError("delay.lognormal", "{\"medianMs\": M, \"sigma\": S} with S from 0 to 4") }
            return .lognormal(median: Double(try milliseconds(median, at: "delay.lognormal.medianMs")), sigma: sigma)
        default:
            throw StubError("delay.\(kind)", "unknown delay (fixedMs, uniformMs, lognormal)")
        }
    }

    static let faultKinds = ["NEVER_ANSWER", "STATUS", "SLOW_STREAM", "RST_STREAM", "GOAWAY", "CONNECTION_RESET"]

    /// Reads a fault (of a stub, or of a whole mock); `path` names it in errors.
    static func fault(_ value: JSONValue, at path: String = "fault") throws(StubError) -> (Fault, Double) {
        guard case .object(let members) = value, case .string(let kind)? = members["kind"] else {
            throw StubError(path, "an object with \"kind\" (\(faultKinds.joined(separator: ", "))) and \"probability\"")
        }
        let allowed: Set<String> = ["kind", "probability", "status", "gapMs", "chunkBytes", "code"]
        for key in members.keys.sorted() where !allowed.contains(key) {
            throw StubError("\(path).\(key)", "unknown member (\(allowed.sorted().joined(separator: ", ")))")
        }
        let probability = members["probability"].flatMap(StubCondition.number) ?? 1
        guard probability >= 0, probability <= 1 else { throw StubError("\(path).probability", "a number from 0 to 1") }
        func http2Code(default fallback: UInt32) throws(StubError) -> UInt32 {
            guard let value = members["code"] else { return fallback }
            guard case .integer(let number) = value, (0...13).contains(number) else {
                throw StubError("\(path).code", "an HTTP/2 error code from 0 to 13 (2 INTERNAL_ERROR, 7 REFUSED_STREAM, 8 CANCEL, 11 ENHANCE_YOUR_CALM)")
            }
            return UInt32(number)
        }
        switch kind {
        case "NEVER_ANSWER":
            return (.neverAnswer, probability)
        case "STATUS":
            guard let status = members["status"] else { throw StubError("\(path).status", "STATUS needs a status") }
            return (.status(try Self.status(status, at: "\(path).status")), probability)
        case "SLOW_STREAM":
            let gap = try members["gapMs"].map { (value) throws(StubError) in try milliseconds(value, at: "\(path).gapMs") } ?? 100_000_000
            var chunk: Int?
            if let value = members["chunkBytes"] {
                guard case .integer(let number) = value, (1...1_048_576).contains(number) else {
                    throw StubError("\(path).chunkBytes", "bytes per write, 1 to 1048576")
                }
                chunk = Int(number)
            }
            return (.slowStream(gapNanos: gap, chunkBytes: chunk), probability)
        case "RST_STREAM":
            return (.resetStream(code: try http2Code(default: 2)), probability)
        case "GOAWAY":
            return (.goAway(code: try http2Code(default: 0)), probability)
        case "CONNECTION_RESET":
            return (.connectionReset, probability)
        default:
            throw StubError("\(path).kind", "\(kind) is not one of \(faultKinds.joined(separator: ", "))")
        }
    }

    /// Whether the stub sets a delay of its own (else its mock's applies).
    var hasDelay: Bool {
        if case .none = delay { return false }
        return true
    }

    /// A delay drawn from the stub's distribution, in nanoseconds.
    func drawDelay() -> UInt64 {
        Self.draw(delay)
    }

    /// A delay drawn from `delay`'s distribution, in nanoseconds.
    static func draw(_ delay: Delay) -> UInt64 {
        switch delay {
        case .none: return 0
        case .fixed(let nanos): return nanos
        case .uniform(let low, let high): return low == high ? low : UInt64.random(in: low...high)
        case .lognormal(let median, let sigma):
            // Box–Muller: a standard normal from two uniforms.
            let u1 = Double.random(in: Double.ulpOfOne..<1)
            let u2 = Double.random(in: 0..<1)
            let normal = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
            return UInt64(min(median * exp(sigma * normal), 3.6e12))
        }
    }

    /// The fault for this call, if the dice say so.
    func drawFault() -> Fault? {
        guard let fault else { return nil }
        return Self.draw(fault)
    }

    /// `fault.fault`, with its probability.
    static func draw(_ fault: (fault: Fault, probability: Double)) -> Fault? {
        fault.probability >= 1 || Double.random(in: 0..<1) < fault.probability ? fault.fault : nil
    }
}
