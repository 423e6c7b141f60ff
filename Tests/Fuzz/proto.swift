// Fuzz target: protobuf decoding through the generated glue (STBMessages over
// protobuf-c). Any bytes decode into each request type or are refused; what decodes
// encodes and decodes again, to the same value where values compare exactly (no NaN
// doubles, no maps whose entries repeat a key).
private func roundTrip<Message: ProtoMessage>(_ type: Message.Type, _ bytes: UnsafeRawBufferPointer, exact: Bool = true) {
    guard let message = try? Message(serializedBytes: bytes) else { return }
    let encoded = message.serializedBytes()
    guard let again = encoded.withUnsafeBytes({ try? Message(serializedBytes: $0) }) else {
        fatalError("\(Message.protoMessageName) encoded bytes that do not decode")
    }
    precondition(!exact || again == message, "\(Message.protoMessageName) does not survive a round trip")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProto(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    roundTrip(Stb_Testing_V1_AllKinds.self, bytes, exact: false)
    roundTrip(Stb_Catalog_V1_CreateOptionRequest.self, bytes)
    roundTrip(Stb_Catalog_V1_ImportSeedRequest.self, bytes)
    roundTrip(Stb_Catalog_V1_GetConfigResponse.self, bytes)
    roundTrip(Stb_Rules_V1_EvaluateRequest.self, bytes)
    roundTrip(Stb_Rules_V1_Rule.self, bytes)
    return 0
}
