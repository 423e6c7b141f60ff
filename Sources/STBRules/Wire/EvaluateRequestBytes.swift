import STBAPI
import STBMessages

/// An EvaluateRequest kept as its wire bytes: Evaluate reads them with
/// `EvaluateRequestScanner` against the engine's key table, so no generated message (and no
/// protobuf-c struct graph) is made for a request. Its JSON form is the generated message's.
struct EvaluateRequestBytes: ProtoMessage {
    var bytes: [UInt8] = []

    init() {}
    init(bytes: [UInt8]) { self.bytes = bytes }

    init(serializedBytes: UnsafeRawBufferPointer) throws(ProtoDecodingError) {
        bytes = Array(serializedBytes)
    }

    func serialize(into buffer: inout [UInt8]) {
        buffer.append(contentsOf: bytes)
    }

    static var protoMessageName: String { Stb_Rules_V1_EvaluateRequest.protoMessageName }
}

extension WireDecodeProblem {
    /// The generated decoder's error for the same bytes (which the router maps to a status).
    func decodingError(byteCount: Int) -> ProtoDecodingError {
        let code: ProtoDecodingError.Code
        switch kind {
        case .malformed: return ProtoDecodingError(messageName: EvaluateRequestBytes.protoMessageName, byteCount: byteCount)
        case .invalidUTF8: code = .invalidUTF8
        case .nulCharacter: code = .nulCharacter
        }
        return ProtoDecodingError(code: code, messageName: EvaluateRequestBytes.protoMessageName, byteCount: byteCount, fieldPath: fieldPath)
    }
}
