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

    /// The opaque text form.
    public var text: String {
        let body = Upstream.allCases.compactMap { upstream in positions[upstream].map { "\(upstream.rawValue)=\($0)" } }
        return Base64URL.encode(Array("v1|\(epoch)|\(body.joined(separator: ","))".utf8))
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
