/// Why a load run could not be set up: a bad schedule, request or option, named with
/// the input it came from.
public struct LoadError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of input was refused.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The schedule cannot be run (a rate or duration out of range, bad syntax).
        public static let badSchedule = Code("bad_schedule")
        /// A request is not the JSON form of the method's input type.
        public static let badRequest = Code("bad_request")
        /// The method is not one of `Protos/`.
        public static let unknownMethod = Code("unknown_method")
        /// A threshold does not parse.
        public static let badThreshold = Code("bad_threshold")
        /// Any other option out of range.
        public static let badOption = Code("bad_option")
    }

    /// The kind of refusal.
    public var code: Code
    /// Where the input came from (`--steps`, `requests.json[3]`), and why it was refused.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
