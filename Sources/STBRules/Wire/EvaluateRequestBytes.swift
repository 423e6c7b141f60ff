import STBAPI
import STBMessages

/// An EvaluateRequest kept as its wire bytes: Evaluate reads them with
/// `EvaluateRequestScanner` against the engine's key table, so no generated message (and no
/// protobuf-c struct graph) is made for a request. Its JSON form is the generated message's.
typealias EvaluateRequestBytes = ProtoEncodedMessage<Stb_Rules_V1_EvaluateRequest>

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
