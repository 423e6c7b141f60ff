import Glibc
import STBRPC

/// The access token stbctl presents on every call: `STB_TOKEN` from the environment, sent
/// as `authorization: Bearer <token>`. Without one, services refuse all but health and
/// reflection (UNAUTHENTICATED).
func accessTokenMetadata() -> Metadata {
    guard let value = getenv("STB_TOKEN") else { return Metadata() }
    let token = String(cString: value).trimmingCharacters(in: " \t\r\n")
    return token.isEmpty ? Metadata() : Metadata.bearer(token)
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let drop: (Character) -> Bool = { set.contains($0) }
        return String(self.drop(while: drop).reversed().drop(while: drop).reversed())
    }
}
