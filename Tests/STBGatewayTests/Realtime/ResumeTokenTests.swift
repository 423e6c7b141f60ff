import STBGateway
import STBPostgres
import Testing

@Suite struct ResumeTokenTests {
    @Test func roundTripsEveryUpstreamsCursor() throws {
        let token = ResumeToken(epoch: "0123456789abcdef", positions: [
            .catalog: OutboxCursor(revision: 12, sequence: 340),
            .project: OutboxCursor(revision: 0, sequence: 0),
            .alarms: OutboxCursor(revision: UInt64.max, sequence: Int64.max),
        ])
        let parsed = try #require(ResumeToken(text: token.text))
        #expect(parsed == token)
        #expect(parsed.positions[.rules] == nil)
        // Opaque: base64url only, nothing a URL or header must escape.
        #expect(token.text.utf8.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 })
    }

    @Test func theTextIsTheDocumentedFormByteForByte() {
        // Gateways of different builds read each other's tokens: base64url, unpadded, of
        // `v1|<epoch>|<upstream>=<revision>:<sequence>,…` in `Upstream` order.
        #expect(ResumeToken(epoch: "0123abcd", positions: [.rules: OutboxCursor(revision: 1, sequence: -5), .catalog: OutboxCursor(revision: 12, sequence: 340)]).text
            == "djF8MDEyM2FiY2R8Y2F0YWxvZz0xMjozNDAscnVsZXM9MTotNQ")
        let cursors = [
            OutboxCursor.start, OutboxCursor(revision: 1, sequence: 1), OutboxCursor(revision: 9, sequence: 10),
            OutboxCursor(revision: 123_456_789, sequence: -42), OutboxCursor(revision: .max, sequence: .min), OutboxCursor(revision: 7, sequence: .max),
        ]
        for epoch in ["0123abcd", "0123abcde", "0123abcdef", "0123456789abcdef0123456789abcdef"] {
            for mask in 0..<16 {
                for index in cursors.indices {
                    var positions: [Upstream: OutboxCursor] = [:]
                    for (bit, upstream) in Upstream.allCases.enumerated() where mask & (1 << bit) != 0 {
                        positions[upstream] = cursors[(index + bit) % cursors.count]
                    }
                    let body = Upstream.allCases.compactMap { upstream in
                        positions[upstream].map { "\(upstream.rawValue)=\($0.revision):\($0.sequence)" }
                    }
                    let expected = base64url(Array("v1|\(epoch)|\(body.joined(separator: ","))".utf8))
                    #expect(ResumeToken(epoch: epoch, positions: positions).text == expected)
                }
            }
        }
    }

    @Test func refusesWhatItDidNotWrite() {
        func encoded(_ plain: String) -> String { base64url(Array(plain.utf8)) }
        let bad = [
            "", "not base64!", encoded("v2|0123456789abcdef|catalog=1:1"), encoded("v1|0123456789abcdef"),
            encoded("v1|SHORT|catalog=1:1"), encoded("v1|0123456789abcdef|catalog=01:1"),
            encoded("v1|0123456789abcdef|catalog=1:1,catalog=2:2"), encoded("v1|0123456789abcdef|weather=1:1"),
            encoded("v1|0123456789abcdef|catalog=1"), encoded("v1|0123456789abcdef|catalog=-1:1"),
            String(repeating: "A", count: ResumeToken.maximumLength + 4),
        ]
        for text in bad { #expect(ResumeToken(text: text) == nil, "\(text)") }
        #expect(ResumeToken(text: encoded("v1|0123456789abcdef|catalog=1:1")) != nil)
    }
}

func base64url(_ bytes: [UInt8]) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    var out = ""
    var index = 0
    while index < bytes.count {
        let chunk = Array(bytes[index..<min(index + 3, bytes.count)])
        let value = chunk.enumerated().reduce(0) { $0 | Int($1.element) << (16 - 8 * $1.offset) }
        for position in 0...chunk.count { out.append(alphabet[(value >> (18 - 6 * position)) & 63]) }
        index += 3
    }
    return out
}
