import STBAuth
import STBRPC
import Synchronization

/// The gateway's own service-account token (`service:gateway`, role `service`) for its
/// outgoing calls (the project feed, memberships): signed with its current key, no
/// sign-in needed, renewed when less than a fifth of its life is left.
public final class GatewayCredentials: CallCredentials {
    /// The service account the gateway calls as.
    public static let account = "gateway"

    private let service: GatewayService
    private let token = Mutex<(value: String, renewAtMs: Int64)?>(nil)

    public init(service: GatewayService) {
        self.service = service
    }

    public func metadata() async throws -> Metadata {
        let now = GatewayService.nowSeconds() * 1000
        if let current = token.withLock({ $0 }), now < current.renewAtMs { return Metadata.bearer(current.value) }
        let signed = service.accessToken(subject: "service:\(Self.account)", name: Self.account, role: .service)
        let renewAt = now + (signed.expiresAtMs - now) * 4 / 5
        token.withLock { $0 = (signed.token, renewAt) }
        return Metadata.bearer(signed.token)
    }
}
