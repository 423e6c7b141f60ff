/// A bound on free text, in characters (what a reader counts) and in bytes of UTF-8 (what
/// is stored and sent): one character can take any number of bytes (a letter followed by
/// a thousand combining marks is one character).
public struct TextLimit: Sendable, Hashable {
    public var characters: Int
    public var bytes: Int

    public init(characters: Int, bytes: Int) {
        self.characters = characters
        self.bytes = bytes
    }

    /// Why `text` is too long, or nil (`longer than 200 characters`, `longer than 800 bytes of UTF-8`).
    public func problem(_ text: String) -> String? {
        // Bytes first: counting characters walks the text, bytes do not.
        if text.utf8.count > bytes { return "longer than \(bytes) bytes of UTF-8 (the limit is \(characters) characters and \(bytes) bytes)" }
        if text.count > characters { return "longer than \(characters) characters" }
        return nil
    }

    /// Names of modules, groups and options; rule subjects; selection names.
    public static let name = TextLimit(characters: 200, bytes: 800)
    /// Descriptions of modules, groups and options; a seed document's description.
    public static let description = TextLimit(characters: 2000, bytes: 8000)
    /// A rule's message.
    public static let message = TextLimit(characters: 1000, bytes: 4000)
    /// A string option's value (default or selection); also the largest `max_length`.
    public static let stringValue = TextLimit(characters: 4096, bytes: 16384)
    /// One value of an enum option.
    public static let enumValue = TextLimit(characters: 200, bytes: 800)
    /// A JSON document held in one field: `meta_json`, a rule's `payload_json`.
    public static let json = TextLimit(characters: 65536, bytes: 65536)
    /// A seed or rules document's file name, and short document fields (`$schema`, `version`).
    public static let fileName = TextLimit(characters: 1024, bytes: 4096)
}
