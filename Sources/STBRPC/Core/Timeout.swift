/// The `grpc-timeout` header: up to 8 digits and a unit (H, M, S, m, u, n).
enum GRPCTimeout {
    /// Parses a header value into nanoseconds; nil when malformed.
    static func parse(_ value: String) -> UInt64? {
        let bytes = Array(value.utf8)
        guard bytes.count >= 2, bytes.count <= 9 else { return nil }
        var amount: UInt64 = 0
        for byte in bytes.dropLast() {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            amount = amount * 10 + UInt64(byte - 0x30)
        }
        let nanosPerUnit: UInt64
        switch bytes.last! {
        case UInt8(ascii: "H"): nanosPerUnit = 3_600_000_000_000
        case UInt8(ascii: "M"): nanosPerUnit = 60_000_000_000
        case UInt8(ascii: "S"): nanosPerUnit = 1_000_000_000
        case UInt8(ascii: "m"): nanosPerUnit = 1_000_000
        case UInt8(ascii: "u"): nanosPerUnit = 1_000
        case UInt8(ascii: "n"): nanosPerUnit = 1
        default: return nil
        }
        let (product, overflow) = amount.multipliedReportingOverflow(by: nanosPerUnit)
        return overflow ? UInt64.max : product
    }

    /// Formats nanoseconds with the finest unit that fits in 8 digits.
    static func format(nanoseconds: UInt64) -> String {
        let units: [(UInt64, Character)] = [
            (1, "n"), (1_000, "u"), (1_000_000, "m"), (1_000_000_000, "S"),
            (60_000_000_000, "M"), (3_600_000_000_000, "H"),
        ]
        for (divisor, unit) in units {
            let amount = (nanoseconds + divisor - 1) / divisor
            if amount < 100_000_000 { return "\(max(amount, 1))\(unit)" }
        }
        return "99999999H"
    }
}
