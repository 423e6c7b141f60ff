import Glibc

/// A file's whole text (a JWKS file); throws `AuthConfigurationError` naming why not.
func readTextFile(_ path: String, limit: Int = 1 << 20) throws -> String {
    guard let file = fopen(path, "rb") else {
        throw AuthConfigurationError(String(cString: strerror(errno)))
    }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while bytes.count <= limit {
        let count = fread(&chunk, 1, chunk.count, file)
        if count > 0 { bytes.append(contentsOf: chunk[0..<count]) }
        if count < chunk.count { break }
    }
    guard bytes.count <= limit else { throw AuthConfigurationError("larger than \(limit) bytes") }
    guard let text = String(validating: bytes, as: UTF8.self) else { throw AuthConfigurationError("not UTF-8") }
    return text
}
