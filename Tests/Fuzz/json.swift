// Fuzz target: JSON parsing (STBJSON). Any bytes: parsing either fails or gives a value
// whose canonical text parses again to the same text; quoting never fails.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let value = try? JSONValue.parse(text) {
        let canonical = value.canonicalText
        guard let again = try? JSONValue.parse(canonical) else { fatalError("canonical text does not parse: \(canonical)") }
        precondition(again.canonicalText == canonical, "canonical text is not stable")
        _ = value.rendered(pretty: true)
    }
    _ = quoted(text)
    return 0
}
