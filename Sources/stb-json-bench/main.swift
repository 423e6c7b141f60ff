import Glibc
import STBBench
import STBMessages

// proto3 JSON measurements for scripts/bench-json, beside Python's json_format on the
// same message in the same run (the script runs the Python side).
//
//   stb-json-bench write WIRE_FILE [--options N]
//       builds the catalog's GetConfigResponse for N (10,000) options from a fixed seed
//       and writes its wire encoding to WIRE_FILE (both sides read the same message);
//   stb-json-bench measure WIRE_FILE JSON_FILE [--seconds S]
//       decodes WIRE_FILE, then times serializeJSON and init(jsonUTF8:) for S (2) seconds
//       each after a warm-up, checks the decoded message equals the original, writes the
//       JSON to JSON_FILE (what Python parses) and prints:
//         swift encode <messages/s> <MB/s>
//         swift decode <messages/s> <MB/s>
//         json bytes <count>

struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

func padded(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }

/// A catalog like catalogd's GetConfig reply: 20 modules × 10 groups × N/200 options,
/// with ids, timestamps, descriptions and meta, 40% boolean, 30% integer, 20% enum,
/// 10% string options.
func makeConfig(options total: Int) -> Stb_Catalog_V1_GetConfigResponse {
    var rng = SplitMix(state: 20_261_206)
    let modules = 20, groups = 10, perGroup = max(1, total / (modules * groups))
    var config = Stb_Catalog_V1_GetConfigResponse()
    config.revision = 4_217
    config.cursor = "0000000000004217"
    var id: Int64 = 1
    let epoch: Int64 = 1_764_000_000_000
    for m in 0..<modules {
        var entry = Stb_Catalog_V1_ConfigModule()
        var module = Stb_Catalog_V1_Module(id: id, key: "m\(padded(m))", name: "Module \(m)",
                                           description_p: "Settings of module \(m)", active: true, initialState: "idle")
        module.createdAtMs = epoch + Int64(rng.below(1_000_000))
        module.updatedAtMs = module.createdAtMs
        id += 1
        entry.module = module
        for g in 0..<groups {
            var group = Stb_Catalog_V1_ConfigGroup()
            var info = Stb_Catalog_V1_Group(id: id, moduleKey: module.key, key: "g\(padded(g))", name: "Group \(g)", position: Int32(g))
            info.createdAtMs = epoch + Int64(rng.below(1_000_000))
            info.updatedAtMs = info.createdAtMs
            id += 1
            group.group = info
            for o in 0..<perGroup {
                var option = Stb_Catalog_V1_Option()
                option.id = id
                id += 1
                option.moduleKey = module.key
                option.groupKey = info.key
                option.key = "m\(padded(m))_g\(padded(g))_o\(padded(o))"
                option.name = "Option \(option.id)"
                option.description_p = "What option \(o) of group \(g) does — ünïcode, \"quotes\""
                option.editable = rng.below(10) < 8
                option.includedByDefault = rng.below(2) == 0
                switch o % 10 {
                case 0...3:
                    option.type = .boolean
                    option.defaultValue = rng.below(2) == 0 ? "true" : "false"
                case 4...6:
                    option.type = .integer
                    option.defaultValue = "\(rng.below(10_000))"
                    option.metaJson = #"{"min":0,"max":100000,"step":1}"#
                case 7, 8:
                    option.type = .enum
                    option.defaultValue = "v\(rng.below(5))"
                    option.metaJson = #"{"values":["v0","v1","v2","v3","v4"]}"#
                default:
                    option.type = .string
                    option.defaultValue = "s\(option.id)"
                }
                option.createdAtMs = epoch + Int64(rng.below(1_000_000))
                option.updatedAtMs = option.createdAtMs + Int64(rng.below(1_000))
                group.options.append(option)
            }
            entry.groups.append(group)
        }
        config.modules.append(entry)
    }
    return config
}

func readFile(_ path: String) -> [UInt8] {
    guard let file = fopen(path, "rb") else { fail("cannot open \(path)") }
    defer { fclose(file) }
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        if count == 0 { return data }
        data += chunk[0..<count]
    }
}

func writeFile(_ path: String, _ bytes: [UInt8]) {
    guard let file = fopen(path, "wb") else { fail("cannot write \(path)") }
    defer { fclose(file) }
    guard fwrite(bytes, 1, bytes.count, file) == bytes.count else { fail("cannot write \(path)") }
}

/// Runs `body` repeatedly for `seconds` (after a short warm-up); returns calls per second.
func rate(seconds: Double, _ body: () -> Void) -> Double {
    for _ in 0..<3 { body() }
    let start = now()
    var calls = 0
    repeat {
        body()
        calls += 1
    } while Double(now() - start) < seconds * 1e9
    return Double(calls) / (Double(now() - start) / 1e9)
}

let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String, _ fallback: Double) -> Double {
    guard let index = arguments.firstIndex(of: name) else { return fallback }
    guard index + 1 < arguments.count, let value = Double(arguments[index + 1]), value > 0 else {
        fail("\(name) needs a positive number")
    }
    return value
}

switch arguments.first {
case "write" where arguments.count >= 2:
    let config = makeConfig(options: Int(option("--options", 10_000)))
    writeFile(arguments[1], config.serializedBytes())
case "measure" where arguments.count >= 3:
    let seconds = option("--seconds", 2)
    let wire = readFile(arguments[1])
    let config: Stb_Catalog_V1_GetConfigResponse
    do {
        config = try Stb_Catalog_V1_GetConfigResponse(serializedBytes: wire)
    } catch {
        fail("\(arguments[1]): \(error)")
    }
    var json: [UInt8] = []
    config.serializeJSON(into: &json)
    writeFile(arguments[2], json)
    do throws(ProtoJSONError) {
        guard try Stb_Catalog_V1_GetConfigResponse(jsonUTF8: json) == config else {
            fail("the JSON does not decode to the same message")
        }
    } catch {
        fail("our JSON does not decode: \(error)")
    }
    var buffer: [UInt8] = []
    buffer.reserveCapacity(json.count)
    let encode = rate(seconds: seconds) {
        buffer.removeAll(keepingCapacity: true)
        config.serializeJSON(into: &buffer)
    }
    var sink = 0
    let decode = json.withUnsafeBytes { raw in
        rate(seconds: seconds) {
            do throws(ProtoJSONError) {
                sink &+= try Stb_Catalog_V1_GetConfigResponse(jsonUTF8: raw).modules.count
            } catch {
                fail("decode failed: \(error)")
            }
        }
    }
    let megabytes = Double(json.count) / 1e6
    report("swift encode \(format(encode, 2)) \(format(encode * megabytes, 1))")
    report("swift decode \(format(decode, 2)) \(format(decode * megabytes, 1))")
    report("json bytes \(json.count) \(sink > 0 ? "" : " ")")
default:
    fail("usage: stb-json-bench write WIRE_FILE [--options N] | measure WIRE_FILE JSON_FILE [--seconds S]")
}
