// Fuzz target: the gRPC length-prefix deframer (STBRPC/Framing). The first byte picks
// the chunk size the rest is fed in; messages come out whole and in order, never larger
// than the limit, and no more bytes come out than went in.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDeframer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = UnsafeBufferPointer(start: data + 1, count: size - 1)
    let chunk = Int(data[0]) + 1
    var deframer = MessageDeframer(maxMessageSize: 4096)
    var emitted = 0
    var offset = 0
    do {
        while offset < bytes.count {
            let end = min(offset + chunk, bytes.count)
            try deframer.process(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[offset..<end]))) { message in
                precondition(message.count <= 4096, "a message over the limit came out")
                emitted += message.count + 5
            }
            offset = end
        }
        precondition(emitted + deframer.bufferedByteCount == bytes.count, "bytes lost or invented")
    } catch {
        // Refused: over the limit or compressed; the caller ends the call.
    }
    return 0
}
