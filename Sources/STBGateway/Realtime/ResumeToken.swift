import STBAuth
import STBPostgres

/// Where a `Subscribe` stream stands: for each upstream it follows, that upstream's own
/// outbox cursor, and the deployment's realtime epoch. Any gateway of the deployment can
/// honour it (nothing in it is local to one gateway); a token of another deployment (or
/// of a database that was replaced) carries another epoch and is answered with a resync.
///
/// Clients hold the opaque text form: base64url of `v1|<epoch>|<upstream>=<cursor>,…`.
public struct ResumeToken: Sendable, Hashable {
    /// The longest token accepted (the text form).
    public static let maximumLength = 1024

    public var epoch: String
    public var positions: [Upstream: OutboxCursor]

    public init(epoch: String, positions: [Upstream: OutboxCursor]) {
        self.epoch = epoch
        self.positions = positions
    }

    /// The opaque text form. Written byte by byte (a fan-out makes many): base64url,
    /// unpadded, of `v1|<epoch>|<upstream>=<revision>:<sequence>,…` in `Upstream` order.
    public var text: String {
        var plain: [UInt8] = []
        plain.reserveCapacity(4 + epoch.utf8.count + positions.count * 48)
        plain.append(contentsOf: "v1|".utf8)
        plain.append(contentsOf: epoch.utf8)
        plain.append(UInt8(ascii: "|"))
        var first = true
        for upstream in Upstream.allCases {
            guard let cursor = positions[upstream] else { continue }
            if !first { plain.append(UInt8(ascii: ",")) }
            first = false
            plain.append(contentsOf: upstream.rawValue.utf8)
            plain.append(UInt8(ascii: "="))
            Self.appendDecimal(cursor.revision, to: &plain)
            plain.append(UInt8(ascii: ":"))
            if cursor.sequence < 0 { plain.append(UInt8(ascii: "-")) }
            Self.appendDecimal(cursor.sequence.magnitude, to: &plain)
        }
        return Self.base64URL(plain)
    }

    private static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        let start = out.count
        var rest = value
        repeat {
            out.append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        } while rest > 0
        out[start...].reverse()
    }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Base64url without padding (as `Base64URL.encode`).
    private static func base64URL(_ bytes: [UInt8]) -> String {
        String(unsafeUninitializedCapacity: (bytes.count * 4 + 2) / 3) { out in
            var at = 0
            var index = 0
            while index + 3 <= bytes.count {
                let group = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
                out[at] = alphabet[Int(group >> 18 & 63)]
                out[at + 1] = alphabet[Int(group >> 12 & 63)]
                out[at + 2] = alphabet[Int(group >> 6 & 63)]
                out[at + 3] = alphabet[Int(group & 63)]
                at += 4
                index += 3
            }
            let left = bytes.count - index
            if left > 0 {
                let group = UInt32(bytes[index]) << 16 | (left == 2 ? UInt32(bytes[index + 1]) << 8 : 0)
                out[at] = alphabet[Int(group >> 18 & 63)]
                out[at + 1] = alphabet[Int(group >> 12 & 63)]
                at += 2
                if left == 2 {
                    out[at] = alphabet[Int(group >> 6 & 63)]
                    at += 1
                }
            }
            return at
        }
    }

    /// Parses the text form; nil for anything this codec did not write.
    public init?(text: String) {
        guard text.utf8.count <= Self.maximumLength, let bytes = Base64URL.decode(text),
              let plain = String(validating: bytes, as: UTF8.self) else { return nil }
        let parts = plain.split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "v1", Self.isEpoch(parts[1]) else { return nil }
        var positions: [Upstream: OutboxCursor] = [:]
        if !parts[2].isEmpty {
            for item in parts[2].split(separator: ",", omittingEmptySubsequences: false) {
                let pair = item.split(separator: "=", omittingEmptySubsequences: false)
                guard pair.count == 2, let upstream = Upstream(rawValue: String(pair[0])),
                      positions[upstream] == nil, let cursor = OutboxCursor(String(pair[1])) else { return nil }
                positions[upstream] = cursor
            }
        }
        self.init(epoch: String(parts[1]), positions: positions)
    }

    /// Lowercase hex, 8 to 64 digits.
    static func isEpoch(_ text: Substring) -> Bool {
        (8...64).contains(text.utf8.count) && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}

/// A feed the gateway follows.
public enum Upstream: String, Sendable, Hashable, CaseIterable {
    case catalog, rules, project, alarms
}
