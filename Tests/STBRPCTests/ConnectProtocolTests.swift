import STBMessages
import Testing

@testable import STBRPC

@Suite("Connect protocol: content types, timeouts, request headers, error bodies")
struct ConnectProtocolTests {
    typealias Machine = ServerStreamStateMachine

    @Test(
        "content types choose the protocol",
        arguments: [
            ("application/grpc", WireProtocol.grpc(.proto)),
            ("application/grpc+proto", .grpc(.proto)),
            ("application/grpc+json", .grpc(.json)),
            ("application/json", .connectUnary(.json)),
            ("application/json; charset=utf-8", .connectUnary(.json)),
            ("Application/JSON", .connectUnary(.json)),
            ("application/proto", .connectUnary(.proto)),
            ("application/connect+json", .connectStreaming(.json)),
            ("application/connect+proto ", .connectStreaming(.proto)),
        ])
    func contentTypes(_ contentType: String, _ expected: WireProtocol) {
        #expect(WireProtocol(contentType: contentType) == expected)
        #expect(WireProtocol(contentType: expected.responseContentType) == expected)
    }

    @Test("other content types are no protocol", arguments: ["", "text/plain", "application/xml", "application/connect+xml", "application/jsonx", "json"])
    func unknownContentTypes(_ contentType: String) {
        #expect(WireProtocol(contentType: contentType) == nil)
    }

    @Test("connect-timeout-ms: 1 to 10 digits of milliseconds")
    func timeouts() {
        #expect(ConnectTimeout.parse("1") == 1_000_000)
        #expect(ConnectTimeout.parse("0") == 0)
        #expect(ConnectTimeout.parse("9999999999") == 9_999_999_999_000_000)
        for bad in ["", "12345678901", "-1", "1.5", "1s", " 1", "١"] {
            #expect(ConnectTimeout.parse(bad) == nil, "\(bad)")
        }
    }

    private static func head(
        _ contentType: String, unary: Bool = true, version: String? = nil, encoding: String? = nil,
        connectEncoding: String? = nil, badTimeout: Bool = false, known: Bool = true
    ) -> Machine.RequestHead {
        Machine.RequestHead(
            contentType: contentType, method: "POST", path: "/echo.Echo/Get", encoding: nil,
            takesSingleRequest: known ? true : nil, handlerIsUnary: unary, connectProtocolVersion: version,
            contentEncoding: encoding, connectContentEncoding: connectEncoding, timeoutIsMalformed: badTimeout)
    }

    @Test("Connect request headers are checked before a handler is reserved")
    func requestHeaders() {
        func outcome(_ head: Machine.RequestHead) -> Machine.OnRequestHeaders {
            var machine = Machine()
            return machine.receivedRequestHeaders(head, hasHandlerRoom: true)
        }
        #expect(outcome(Self.head("application/json")) == .accept(startHandler: false))
        #expect(outcome(Self.head("application/json", version: "1")) == .accept(startHandler: false))
        #expect(
            outcome(Self.head("application/json", version: "2"))
                == .fail(RPCError(code: .invalidArgument, message: "connect-protocol-version \"2\" is not supported (1 is)"), advertiseEncodings: false))
        #expect(
            outcome(Self.head("application/proto", badTimeout: true))
                == .fail(RPCError(code: .invalidArgument, message: "connect-timeout-ms must be a number of at most 10 digits"), advertiseEncodings: false))
        #expect(
            outcome(Self.head("application/proto", encoding: "gzip"))
                == .fail(RPCError(code: .unimplemented, message: "message compression \"gzip\" is not supported (identity is)"), advertiseEncodings: true))
        // The streaming form reads its own header, not content-encoding.
        #expect(outcome(Self.head("application/connect+proto", unary: false, encoding: "gzip")) == .accept(startHandler: false))
        #expect(
            outcome(Self.head("application/connect+proto", unary: false, connectEncoding: "br"))
                == .fail(RPCError(code: .unimplemented, message: "message compression \"br\" is not supported (identity is)"), advertiseEncodings: true))
        // A form the method does not have: 415.
        #expect(outcome(Self.head("application/json", unary: false)) == .respondUnsupportedMediaType)
        #expect(outcome(Self.head("application/connect+json", unary: true)) == .respondUnsupportedMediaType)
        #expect(
            outcome(Self.head("application/json", known: false))
                == .fail(RPCError(code: .unimplemented, message: "method not found: /echo.Echo/Get"), advertiseEncodings: false))
    }

    @Test("the machine remembers the protocol")
    func remembersProtocol() {
        var machine = Machine()
        _ = machine.receivedRequestHeaders(Self.head("application/connect+json", unary: false), hasHandlerRoom: true)
        #expect(machine.wire == .connectStreaming(.json))
    }

    @Test("/metrics/<service> is a scrape when the server has that name")
    func metricsPaths() {
        func scrape(_ path: String, name: String?) -> Bool {
            Machine.RequestHead(
                contentType: nil, method: "GET", path: path, encoding: nil, takesSingleRequest: nil, servesMetrics: true,
                metricsServiceName: name
            ).isMetricsScrape
        }
        #expect(scrape("/metrics", name: nil))
        #expect(scrape("/metrics/catalog", name: "catalog"))
        #expect(!scrape("/metrics/catalog", name: nil))
        #expect(!scrape("/metrics/rules", name: "catalog"))
        #expect(!scrape("/metrics/catalogx", name: "catalog"))
        #expect(!scrape("/metrics/", name: "catalog"))
    }

    @Test("codes map to Connect names and HTTP statuses")
    func codes() {
        #expect(ConnectStatus.codeName(.cancelled) == "canceled")
        #expect(ConnectStatus.codeName(.invalidArgument) == "invalid_argument")
        #expect(ConnectStatus.codeName(RPCError.Code(rawValue: 99)) == "unknown")
        #expect(ConnectStatus.httpStatus(.cancelled) == 499)
        #expect(ConnectStatus.httpStatus(.resourceExhausted) == 429)
        #expect(ConnectStatus.httpStatus(.unauthenticated) == 401)
        #expect(ConnectStatus.httpStatus(RPCError.Code(rawValue: 99)) == 500)
    }

    @Test("the error body carries code, message and details in unpadded base64")
    func errorBody() throws {
        let status = RPCError(
            code: .invalidArgument, message: "a \"quoted\"\nline",
            details: [.badRequest(fields: [(field: "text", description: "bad")])])
        let text = String(decoding: ConnectStatus.errorBody(status, messageLimit: 1024), as: UTF8.self)
        let packed = Base64.encode(ErrorDetail.badRequest(fields: [(field: "text", description: "bad")]).packed.value, padded: false)
        #expect(text == #"{"code":"invalid_argument","message":"a \"quoted\"\nline","details":[{"type":"google.rpc.BadRequest","value":"\#(packed)"}]}"#)
        #expect(!packed.hasSuffix("="))
    }

    @Test("a long message is cut with a mark")
    func longMessage() {
        let body = ConnectStatus.errorBody(RPCError(code: .internal, message: String(repeating: "é", count: 5000)), messageLimit: 100)
        let text = String(decoding: body, as: UTF8.self)
        #expect(text.utf8.count < 200)
        #expect(text.contains("[truncated; 10000 bytes in all]"))
    }

    @Test("the end-of-stream message: {} when OK, the error and the metadata otherwise")
    func endStream() {
        #expect(ConnectStatus.endStreamMessage(RPCError(code: .ok, message: ""), trailing: Metadata(), messageLimit: 100) == Array("{}".utf8))
        var trailing = Metadata()
        trailing.addString("1", forKey: "x-a")
        trailing.addString("2", forKey: "x-a")
        trailing.addBinary([0xFF], forKey: "x-b-bin")
        let message = ConnectStatus.endStreamMessage(RPCError(code: .unavailable, message: "later"), trailing: trailing, messageLimit: 100)
        #expect(
            String(decoding: message, as: UTF8.self)
                == #"{"error":{"code":"unavailable","message":"later"},"metadata":{"x-a":["1","2"],"x-b-bin":["/w"]}}"#)
    }

    @Test("JSON strings escape quotes, backslashes and control characters")
    func jsonStrings() {
        var buffer: [UInt8] = []
        JSONString.append("a\"b\\c\u{01}\té", to: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self) == #""a\"b\\c\u0001\u0009é""#)
    }

    @Test("a bad JSON request names the field in a BadRequest")
    func jsonDecodingError() {
        let error = RPCError(decodingJSONRequest: ProtoJSONError(path: "option.default_value", reason: "not a string"))
        #expect(error.code == .invalidArgument)
        #expect(error.message == "option.default_value: not a string")
        #expect(error.fieldViolations.map(\.field) == ["option.default_value"])
        let whole = RPCError(decodingJSONRequest: ProtoJSONError(path: "", reason: "not JSON"))
        #expect(whole.code == .invalidArgument && whole.details.isEmpty)
    }
}
