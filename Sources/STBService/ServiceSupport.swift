import STBRPC

/// Throws INVALID_ARGUMENT listing every problem (the first `limit`), or returns.
///
/// Each problem reads `path: problem` (`option.default_value: "abc" is not an integer`);
/// the status's details give each listed one as a `BadRequest.FieldViolation` (`field`
/// the path, `description` the rest), so a program reads which field failed without
/// parsing the message. `preface` goes before the list in the message only.
public func check(_ problems: [String], limit: Int = 20, preface: String = "") throws {
    guard !problems.isEmpty else { return }
    throw invalidArgument(problems, limit: limit, preface: preface)
}

/// The INVALID_ARGUMENT status for `problems` (see `check`): the message lists the first
/// `limit` and counts the rest; the details hold a `BadRequest` with one field violation
/// per listed problem and an `ErrorInfo` (reason `INVALID_ARGUMENT`, the number of problems).
public func invalidArgument(_ problems: [String], limit: Int = 20, preface: String = "") -> RPCError {
    let listed = problems.prefix(limit)
    var message = preface + listed.joined(separator: "; ")
    if problems.count > limit { message += "; and \(problems.count - limit) more" }
    return RPCError(code: .invalidArgument, message: message, details: [
        .badRequest(fields: listed.map(fieldViolation)),
        .errorInfo(reason: "INVALID_ARGUMENT", metadata: ["problems": String(problems.count)]),
    ])
}

/// A problem's field path and what is wrong with it, split at the first ": " outside
/// double quotes (a quoted key may hold one): `modules[0].key: "a: b" is not a valid key`
/// gives `modules[0].key` and `"a: b" is not a valid key`. A problem without one, or
/// whose text before it has a space outside quotes (`invalid JSON at line 1, column 4:
/// …`), is about the request as a whole: an empty path.
func fieldViolation(_ problem: String) -> (field: String, description: String) {
    var inQuotes = false
    var escaped = false
    var index = problem.startIndex
    while index < problem.endIndex {
        let character = problem[index]
        if escaped {
            escaped = false
        } else if character == "\\" {
            escaped = inQuotes
        } else if character == "\"" {
            inQuotes.toggle()
        } else if character == " ", !inQuotes {
            break
        } else if character == ":", !inQuotes {
            let next = problem.index(after: index)
            if next < problem.endIndex, problem[next] == " " {
                return (String(problem[..<index]), String(problem[problem.index(after: next)...]))
            }
        }
        index = problem.index(after: index)
    }
    return ("", problem)
}
