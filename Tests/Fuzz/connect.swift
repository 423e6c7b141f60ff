import STBJSON

// Fuzz target: what the Connect protocol reads from a request (STBRPC/Connect and
// STBRPC/Framing). The same bytes go through:
// - the envelope reader (the first byte picks the chunk size): messages come out whole,
//   in order, within the limit, re-enveloped they are the bytes that went in, and a
//   refused flags byte is never 0;
// - the request-header parsers: a content type that parses names a protocol whose own
//   content type parses to the same; a timeout that parses is 1 to 10 digits and their
//   value in milliseconds;
// - the JSON string writer of error bodies: its output parses (STBJSON) to the text
//   (texts without NUL, which STBJSON refuses by design).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConnect(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = UnsafeBufferPointer(start: data + 1, count: size - 1)
    readEnvelopes(bytes, chunk: Int(data[0]) + 1)

    let text = String(decoding: bytes, as: UTF8.self)
    if let wire = WireProtocol(contentType: text) {
        precondition(WireProtocol(contentType: wire.responseContentType) == wire, "content type does not round-trip")
    }
    if let nanos = ConnectTimeout.parse(text) {
        precondition(!text.isEmpty && text.utf8.count <= 10 && text.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }, "bad timeout accepted")
        precondition(nanos == UInt64(text)! * 1_000_000, "timeout misread")
    }

    var json: [UInt8] = []
    JSONString.append(text, to: &json)
    // STBJSON refuses NUL in strings (stored text cannot hold it); other parsers take it.
    if !text.utf8.contains(0) {
        guard case .string(let decoded)? = try? JSONValue.parse(String(decoding: json, as: UTF8.self)) else {
            fatalError("escaped string does not parse: \(json)")
        }
        precondition(decoded == text, "escaped string does not round-trip")
    }
    let limit = Int(data[0])
    let cut = JSONString.truncated(text, limit: limit)
    // Bytes, not characters: the kept prefix may end in a scalar that joins the mark's first
    // character into one grapheme (a prepended mark such as U+070F), so a search by
    // characters would miss the mark.
    if cut != text {
        let cutBytes = Array(cut.utf8), mark = Array("… [truncated; \(text.utf8.count) bytes in all]".utf8)
        precondition(cutBytes.count >= mark.count && cutBytes.suffix(mark.count).elementsEqual(mark), "a cut text lost its mark")
        precondition(text.utf8.starts(with: cutBytes.dropLast(mark.count)), "a cut text is not a prefix of the text")
    }
    return 0
}

private func readEnvelopes(_ bytes: UnsafeBufferPointer<UInt8>, chunk: Int) {
    var deframer = MessageDeframer(maxMessageSize: 4096)
    var reframed: [UInt8] = []
    var offset = 0
    do {
        while offset < bytes.count {
            let end = min(offset + chunk, bytes.count)
            try deframer.process(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[offset..<end]))) { message in
                precondition(message.count <= 4096, "a message over the limit came out")
                appendEnvelope(flags: 0, message, to: &reframed)
            }
            offset = end
        }
        precondition(reframed.count + deframer.bufferedByteCount == bytes.count, "bytes lost or invented")
        precondition(reframed.elementsEqual(bytes.prefix(reframed.count)), "messages differ from the envelopes read")
    } catch {
        if case .unexpectedFlags(let flags) = error { precondition(flags != 0, "flags 0 refused") }
    }
}
