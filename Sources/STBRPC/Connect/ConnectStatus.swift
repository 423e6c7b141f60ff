import STBMessages

/// A status in the Connect protocol's terms: its code name, the HTTP status a unary error
/// answers with, the JSON `Error` object, and the end-of-stream message of a stream.
enum ConnectStatus {
    private static let names = [
        "ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found",
        "already_exists", "permission_denied", "resource_exhausted", "failed_precondition",
        "aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss",
        "unauthenticated",
    ]
    private static let httpStatuses = [
        200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401,
    ]

    /// The Connect code (`invalid_argument`); codes Connect does not define are `unknown`.
    static func codeName(_ code: RPCError.Code) -> String {
        names.indices.contains(code.rawValue) ? names[code.rawValue] : "unknown"
    }

    /// The HTTP status of a unary error response with this code.
    static func httpStatus(_ code: RPCError.Code) -> Int {
        httpStatuses.indices.contains(code.rawValue) ? httpStatuses[code.rawValue] : 500
    }

    /// Appends the JSON `Error` object: code, message (cut to `messageLimit` bytes) and
    /// each detail as its type name and its bytes in base64 without padding.
    static func appendError(_ status: RPCError, messageLimit: Int, to buffer: inout [UInt8]) {
        buffer.append(contentsOf: #"{"code":"#.utf8)
        JSONString.append(codeName(status.code), to: &buffer)
        if !status.message.isEmpty {
            buffer.append(contentsOf: #","message":"#.utf8)
            JSONString.append(JSONString.truncated(status.message, limit: messageLimit), to: &buffer)
        }
        if !status.details.isEmpty {
            buffer.append(contentsOf: #","details":["#.utf8)
            for (index, detail) in status.details.enumerated() {
                let packed = detail.packed
                let typeName = packed.typeURL.split(separator: "/").last ?? ""
                if index > 0 { buffer.append(UInt8(ascii: ",")) }
                buffer.append(contentsOf: #"{"type":"#.utf8)
                JSONString.append(typeName, to: &buffer)
                buffer.append(contentsOf: #","value":"#.utf8)
                JSONString.append(Base64.encode(packed.value, padded: false), to: &buffer)
                buffer.append(UInt8(ascii: "}"))
            }
            buffer.append(UInt8(ascii: "]"))
        }
        buffer.append(UInt8(ascii: "}"))
    }

    /// The body of a unary error response.
    static func errorBody(_ status: RPCError, messageLimit: Int) -> [UInt8] {
        var buffer: [UInt8] = []
        appendError(status, messageLimit: messageLimit, to: &buffer)
        return buffer
    }

    /// The end-of-stream message: `{"error":…}` unless `status` is OK, and the trailing
    /// metadata as `{"metadata":{"name":["value",…]}}` (binary values in base64).
    static func endStreamMessage(_ status: RPCError, trailing: Metadata, messageLimit: Int) -> [UInt8] {
        var buffer: [UInt8] = [UInt8(ascii: "{")]
        if status.code != .ok {
            buffer.append(contentsOf: #""error":"#.utf8)
            appendError(status, messageLimit: messageLimit, to: &buffer)
        }
        let fields = trailing.headerFields()
        if !fields.isEmpty {
            if status.code != .ok { buffer.append(UInt8(ascii: ",")) }
            buffer.append(contentsOf: #""metadata":{"#.utf8)
            var names: [String] = []
            var values: [String: [String]] = [:]
            for (name, value) in fields {
                if values[name] == nil { names.append(name) }
                values[name, default: []].append(value)
            }
            for (index, name) in names.enumerated() {
                if index > 0 { buffer.append(UInt8(ascii: ",")) }
                JSONString.append(name, to: &buffer)
                buffer.append(contentsOf: ":[".utf8)
                for (position, value) in (values[name] ?? []).enumerated() {
                    if position > 0 { buffer.append(UInt8(ascii: ",")) }
                    JSONString.append(value, to: &buffer)
                }
                buffer.append(UInt8(ascii: "]"))
            }
            buffer.append(UInt8(ascii: "}"))
        }
        buffer.append(UInt8(ascii: "}"))
        return buffer
    }
}

extension RPCError {
    /// The status's Connect code name (`invalid_argument`), as plain HTTP answers name it too.
    public var connectCodeName: String { ConnectStatus.codeName(code) }

    /// The HTTP status Connect answers this status's code with (404, 401, 429, …).
    public var connectHTTPStatus: Int { ConnectStatus.httpStatus(code) }
}
