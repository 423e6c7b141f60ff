// Fuzz target: json-logic (STBJSON + STBJSONLogic). The input is an expression, a NUL
// byte, then the data it is evaluated against. Compiling and evaluating either succeed or
// throw a `JSONLogicError`; nothing traps, nothing grows without bound.
import STBJSON
import STBJSONLogic

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSONLogic(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let split = bytes.firstIndex(of: 0) ?? size
    let expressionText = String(decoding: bytes[..<split], as: UTF8.self)
    let dataText = split < size ? String(decoding: bytes[(split + 1)...], as: UTF8.self) : "{}"
    guard let expression = try? JSONValue.parse(expressionText), let logic = try? JSONLogic(expression) else { return 0 }
    let input = (try? JSONValue.parse(dataText)) ?? .object([:])
    _ = try? logic.evaluate(data: input)
    _ = try? logic.evaluate { name in input[name] }
    return 0
}
