import STBBench

// The gateway's benchmarks:
//
//   stb-gateway-bench flood …      a login flood (scripts/bench-login; LoginFlood.swift)
//   stb-gateway-bench realtime …   Subscribe latency, fan-out, idle streams and resume
//                                  (scripts/bench-gateway; RealtimeBench.swift)

let arguments = CommandLine.arguments.dropFirst()
switch arguments.first {
case "flood": await runFlood(arguments.dropFirst())
case "realtime": await runRealtime(arguments.dropFirst())
default: fail("usage: stb-gateway-bench flood … | realtime latency|fanout|idle|resume …")
}
