// Fuzz target: the proto3 JSON mapping of the generated messages (STBMessages). Any bytes
// parse as each message type or are refused with an error; what parses is written as JSON
// again, and that JSON must parse back to the same value.

/// AllKinds with NaNs replaced by a fixed value, so that equality means "same message".
private func comparable(_ message: Stb_Testing_V1_AllKinds) -> Stb_Testing_V1_AllKinds {
    let sentinel = 1.234_567_8e-300
    var copy = message
    if copy.fDouble.isNaN { copy.fDouble = sentinel }
    if copy.fFloat.isNaN { copy.fFloat = 1.25e-30 }
    copy.rDouble = copy.rDouble.map { $0.isNaN ? sentinel : $0 }
    return copy
}

private func roundTrip<Message: ProtoMessage>(
    _ type: Message.Type, _ bytes: UnsafeRawBufferPointer, same: (Message, Message) -> Bool = { $0 == $1 }
) {
    guard let message = try? Message(jsonUTF8: bytes) else { return }
    let json = message.jsonUTF8Bytes()
    let again: Message
    do throws(ProtoJSONError) {
        again = try Message(jsonUTF8: json)
    } catch {
        fatalError("\(Message.protoMessageName) wrote JSON it does not read back (\(error)): \(String(decoding: json, as: UTF8.self))")
    }
    precondition(same(message, again), "\(Message.protoMessageName) does not survive a JSON round trip: \(String(decoding: json, as: UTF8.self))")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProtoJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    roundTrip(Stb_Testing_V1_AllKinds.self, bytes) { comparable($0) == comparable($1) }
    roundTrip(Stb_Catalog_V1_CreateOptionRequest.self, bytes)
    roundTrip(Stb_Catalog_V1_GetConfigResponse.self, bytes)
    // An Any's payload is re-encoded, and a packed map's entries may come out in another
    // order: compare what does not depend on that.
    roundTrip(Google_Rpc_Status.self, bytes) {
        $0.code == $1.code && $0.message == $1.message && $0.details.map(\.typeURL) == $1.details.map(\.typeURL)
    }
    return 0
}
