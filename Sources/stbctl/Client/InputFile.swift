import Foundation

/// A text file named on the command line, or standard input for `-`.
enum InputFile {
    /// The UTF-8 text of `path` (`-`: standard input); `what` names the expected content
    /// in messages ("a rules document").
    static func read(_ path: String, what: String) throws -> String {
        let data: Data
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw CommandFailure("no such file: \(path)")
            }
            guard !isDirectory.boolValue else { throw CommandFailure("\(path) is a directory, not \(what)") }
            guard let contents = FileManager.default.contents(atPath: path) else {
                throw CommandFailure("cannot read \(path)")
            }
            data = contents
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CommandFailure("\(path == "-" ? "standard input" : path) is not UTF-8 text")
        }
        return text
    }

    /// The name sent to a service along with the document: the file's last component.
    static func displayName(_ path: String) -> String {
        path == "-" ? "stdin" : URL(fileURLWithPath: path).lastPathComponent
    }
}
