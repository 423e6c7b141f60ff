/// What a caller may do. Users hold one of the ordered roles (each may do what the roles
/// before it may); service accounts hold `service`, outside that order.
public enum Role: String, Sendable, Hashable, CaseIterable, Comparable {
    case viewer
    case `operator`
    case engineer
    case admin
    /// A service account: another service calling as itself.
    case service

    /// The role named in a token's `role` claim, or nil for an unknown name.
    public init?(claim: String) {
        self.init(rawValue: claim)
    }

    /// The name in a token's `role` claim.
    public var claim: String { rawValue }

    /// Position in the user order; `service` sorts after `admin` but is compared with
    /// `permits(_:)`, never by rank alone.
    private var rank: Int {
        switch self {
        case .viewer: 0
        case .operator: 1
        case .engineer: 2
        case .admin: 3
        case .service: 4
        }
    }

    public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rank < rhs.rank }

    /// Whether a caller holding this role may call a method whose least role is `least`.
    /// A user role permits its own level and those below it. `service` permits only
    /// methods whose table entry names `service`, so a service account never rises to
    /// a user role's rights by rank.
    public func permits(_ least: Role) -> Bool {
        switch (self, least) {
        case (.service, .service): true
        case (.service, _), (_, .service): false
        default: self >= least
        }
    }
}
