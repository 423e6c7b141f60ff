import Glibc
import STBJSON
import STBMessages

// Converts batches of messages between the wire form and proto3 JSON, for the
// cross-checks against Python's json_format (Tests/interop/test_json_mapping.py), and
// JSON documents to their RFC 8785 canonical form, for the cross-check against Python's
// rfc8785 and hashlib (Tests/interop/test_jcs.py): one process per batch, not per message.
//
//   stb-json to-json TYPE     wire records in, JSON records out
//   stb-json from-json TYPE   JSON records in, wire records out
//   stb-json jcs              JSON records in, records of the 32-byte SHA-256 of the
//                             canonical form followed by the canonical form out
//
// Input (stdin): records of a 4-byte little-endian length and that many bytes.
// Output (stdout): per input record, a status byte (0: converted, 1: refused), a 4-byte
// little-endian length and the converted bytes, or the error text when refused.
// TYPE: stb.testing.v1.AllKinds, stb.catalog.v1.GetConfigResponse or google.rpc.Status.

/// A line on standard error, then exit `status`.
func die(_ message: String, status: Int32 = 2) -> Never {
    let line = Array("stb-json: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(status)
}

func readAll(_ fd: Int32) -> [UInt8] {
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count <= 0 { return data }
        data += chunk[0..<count]
    }
}

func writeAll(_ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { raw -> Int in
            guard let base = raw.baseAddress else { return -1 }
            return write(1, base + offset, raw.count - offset)
        }
        guard written > 0 else { exit(1) }
        offset += written
    }
}

func records(_ data: [UInt8]) -> [[UInt8]]? {
    var out: [[UInt8]] = []
    var index = 0
    while index < data.count {
        guard index + 4 <= data.count else { return nil }
        let count = Int(data[index]) | Int(data[index + 1]) << 8 | Int(data[index + 2]) << 16 | Int(data[index + 3]) << 24
        index += 4
        guard index + count <= data.count else { return nil }
        out.append(Array(data[index..<index + count]))
        index += count
    }
    return out
}

func append(_ status: UInt8, _ payload: [UInt8], to out: inout [UInt8]) {
    out.append(status)
    let count = UInt32(payload.count)
    out += [UInt8(truncatingIfNeeded: count), UInt8(truncatingIfNeeded: count >> 8),
            UInt8(truncatingIfNeeded: count >> 16), UInt8(truncatingIfNeeded: count >> 24)]
    out += payload
}

func convert<Message: ProtoMessage>(_: Message.Type, toJSON: Bool, _ inputs: [[UInt8]]) -> [UInt8] {
    var out: [UInt8] = []
    for input in inputs {
        if toJSON {
            do {
                let message = try Message(serializedBytes: input)
                append(0, message.jsonUTF8Bytes(), to: &out)
            } catch {
                append(1, Array("\(error)".utf8), to: &out)
            }
        } else {
            do throws(ProtoJSONError) {
                let message = try Message(jsonUTF8: input)
                append(0, message.serializedBytes(), to: &out)
            } catch {
                append(1, Array(error.description.utf8), to: &out)
            }
        }
    }
    return out
}

/// Each JSON document's digest and canonical form (`JSONValue.jcsBytes`, `SHA256.hash`).
func canonicalize(_ inputs: [[UInt8]]) -> [UInt8] {
    var out: [UInt8] = []
    for input in inputs {
        do {
            let canonical = try JSONValue.parse(String(decoding: input, as: UTF8.self)).jcsBytes()
            append(0, SHA256.hash(canonical) + canonical, to: &out)
        } catch {
            // JSONParseError or JCSError: both describe themselves.
            append(1, Array("\(error)".utf8), to: &out)
        }
    }
    return out
}

let arguments = CommandLine.arguments
let mode = arguments.count > 1 ? arguments[1] : ""
guard (arguments.count == 3 && (mode == "to-json" || mode == "from-json")) || (arguments.count == 2 && mode == "jcs") else {
    die("usage: stb-json to-json|from-json TYPE < records, or stb-json jcs < records")
}
guard let inputs = records(readAll(0)) else {
    die("truncated input record")
}
if mode == "jcs" {
    writeAll(canonicalize(inputs))
    exit(0)
}
let toJSON = mode == "to-json"
switch arguments[2] {
case Stb_Testing_V1_AllKinds.protoMessageName: writeAll(convert(Stb_Testing_V1_AllKinds.self, toJSON: toJSON, inputs))
case Stb_Catalog_V1_GetConfigResponse.protoMessageName: writeAll(convert(Stb_Catalog_V1_GetConfigResponse.self, toJSON: toJSON, inputs))
case Google_Rpc_Status.protoMessageName: writeAll(convert(Google_Rpc_Status.self, toJSON: toJSON, inputs))
default:
    die("unknown type \(arguments[2])")
}
