import Glibc
import STBRPC
import STBService

/// The gateway's plain HTTP routes, for the browser dashboard: `/auth/*` (`WebSessions`),
/// `/events` (`EventStream`) and, at `/`, the files of `GATEWAY_WEB_DIR` (`StaticFiles`).
public enum WebRoutes {
    /// The directory served at `/`: `GATEWAY_WEB_DIR`, else `services/gateway/web` under
    /// the working directory when it exists; nil: no static files (every other path 404).
    public static func webDirectory(environment: [String: String]) -> String? {
        if let directory = environment["GATEWAY_WEB_DIR"], !directory.isEmpty { return directory }
        let fallback = "services/gateway/web"
        return StaticFiles.isDirectory(fallback) ? fallback : nil
    }

    /// The routes; `webDirectory` nil or missing serves no files.
    public static func make(
        gateway: GatewayService, realtime: RealtimeService, webDirectory: String?
    ) -> HTTPRoutes {
        var routes = HTTPRoutes()
        WebSessions(gateway: gateway, authenticator: realtime.authenticator).register(in: &routes)
        EventStream(realtime: realtime).register(in: &routes)
        if let files = webDirectory.flatMap(StaticFiles.init(directory:)) {
            routes.add(prefix: "/") { files.respond(to: $0) }
        } else {
            routes.add(prefix: "/") { _ in WebResponses.notFound() }
        }
        return routes
    }
}
