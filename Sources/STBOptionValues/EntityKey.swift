/// Whether `value` is a valid key of a catalog entity or rule: lowercase letters, digits,
/// '_', '.' and '-', starting with a letter or digit, at most 64 characters.
public func isValidKey(_ value: String) -> Bool {
    let bytes = Array(value.utf8)
    guard let first = bytes.first, bytes.count <= 64, isLowercaseLetterOrDigit(first) else { return false }
    return bytes.allSatisfy { isLowercaseLetterOrDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
}

private func isLowercaseLetterOrDigit(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
}
