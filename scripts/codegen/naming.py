"""Names: how protoc-c spells C identifiers and how swift-protobuf spells Swift ones.

The C side must match protoc-c 1.4.1 exactly (we reference its structs, members
and functions by name); gen_messages.py cross-checks every name against the
generated headers so a mismatch fails the generator, not the Swift build.
The Swift side follows swift-protobuf's NamingUtils so code reads the same as it
would with the stock plugin.
"""

from __future__ import annotations

# --- protoc-c (protobuf-c/protoc-c/c_helpers.cc) ---------------------------------

# protoc-c appends "_" to struct members that collide with these C/C++ keywords.
_C_KEYWORDS = frozenset(
    """and and_eq asm auto bitand bitor bool break case catch char class compl const
    const_cast continue default delete do double dynamic_cast else enum explicit extern
    false float for friend goto if inline int long mutable namespace new not not_eq
    operator or or_eq private protected public register reinterpret_cast return short
    signed sizeof static static_cast struct switch template this throw true try typedef
    typeid typename union unsigned using virtual void volatile wchar_t while xor
    xor_eq""".split()
)


def _camel_to_lower(name: str) -> str:
    out = []
    was_upper = True  # protoc-c suppresses a leading "_"
    for ch in name:
        is_upper = ch.isascii() and ch.isupper()
        if is_upper:
            if not was_upper:
                out.append("_")
            out.append(ch.lower())
        else:
            out.append(ch)
        was_upper = is_upper
    return "".join(out)


def _to_camel(name: str) -> str:
    out = []
    next_upper = True
    for ch in name:
        if ch == "_":
            next_upper = True
        elif next_upper:
            out.append(ch.upper())
            next_upper = False
        else:
            out.append(ch)
    return "".join(out)


def c_type_name(full_name: str) -> str:
    """`stb.testing.v1.AllKinds` -> `Stb__Testing__V1__AllKinds` (FullNameToC)."""
    return "__".join(_to_camel(p) for p in full_name.split(".") if p)


def c_function_prefix(full_name: str) -> str:
    """`stb.testing.v1.AllKinds` -> `stb__testing__v1__all_kinds` (FullNameToLower)."""
    return "__".join(_camel_to_lower(p) for p in full_name.split(".") if p)


def c_member_name(field_name: str) -> str:
    """The struct member protoc-c emits for a field (FieldName)."""
    result = field_name.lower()
    return result + "_" if result in _C_KEYWORDS else result


def c_oneof_case_member(oneof_name: str) -> str:
    """The `<oneof>_case` member protoc-c emits next to a oneof's union."""
    return _camel_to_lower(oneof_name) + "_case"


# --- Swift (swift-protobuf Sources/SwiftProtobufPluginLibrary/NamingUtils.swift) ---

_SWIFT_DECL_KEYWORDS = {
    "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func",
    "import", "init", "inout", "internal", "let", "open", "operator", "private",
    "precedencegroup", "protocol", "public", "rethrows", "static", "struct",
    "subscript", "typealias", "var",
}
_SWIFT_STMT_KEYWORDS = {
    "break", "case", "catch", "continue", "default", "defer", "do", "else",
    "fallthrough", "for", "guard", "if", "in", "repeat", "return", "throw", "switch",
    "where", "while",
}
_SWIFT_EXPR_KEYWORDS = {
    "Any", "as", "await", "false", "is", "nil", "self", "Self", "super", "throws",
    "true", "try", "some", "any", "consume", "copy", "borrowing", "consuming",
}
_SWIFT_COMMON_TYPES = {
    "Bool", "Character", "Double", "Float", "Int", "Int8", "Int16", "Int32", "Int64",
    "UInt", "UInt8", "UInt16", "UInt32", "UInt64", "String", "Array", "Dictionary",
    "Set", "Optional", "Result", "Error", "Never", "Void", "Sendable", "Hashable",
    "Equatable", "Codable",
}
_QUOTABLE = _SWIFT_DECL_KEYWORDS | _SWIFT_STMT_KEYWORDS | _SWIFT_EXPR_KEYWORDS

# Instance members every message has (or inherits); a field with one of these
# names gets swift-protobuf's "_p" suffix instead of shadowing it.
_RESERVED_FIELD_NAMES = {
    "debugDescription", "description", "dynamicType", "hashValue", "init", "self",
    "Type", "Protocol", "serialize", "serializedBytes", "hash",
} | _SWIFT_COMMON_TYPES

_RESERVED_TYPE_NAMES = (
    {"Type", "Protocol", "protoMessageName", "description", "debugDescription",
     "dynamicType", "hashValue"}
    | _QUOTABLE | _SWIFT_COMMON_TYPES
)

_RESERVED_ENUM_CASES = {
    "allCases", "debugDescription", "description", "dynamicType", "hashValue",
    "init", "rawValue", "self", "unrecognized",
}
_QUOTABLE_ENUM_CASES = _QUOTABLE | {"associativity", "optional", "required"}

_ABBREVIATIONS = {"url", "http", "https", "id"}


def _char_class(ch: str) -> str:
    if "0" <= ch <= "9":
        return "digit"
    if "a" <= ch <= "z":
        return "lower"
    if "A" <= ch <= "Z":
        return "upper"
    if ch == "_":
        return "underscore"
    return "other"


def _camel_case(name: str, initial_upper: bool) -> str:
    result = ""
    current = ""
    last = "start"

    def flush() -> None:
        nonlocal result, current
        if not current:
            return
        word = current
        if not result and not initial_upper:
            pass
        elif word in _ABBREVIATIONS:
            word = word.upper()
        else:
            word = word[0].upper() + word[1:]
        result += word
        current = ""

    for ch in name:
        cls = _char_class(ch)
        if cls == "digit":
            if last != "digit":
                flush()
            if not result:
                result += "_"
            current += ch
        elif cls == "upper":
            if last != "upper":
                flush()
            current += ch.lower()
        elif cls == "lower":
            if last not in ("lower", "upper"):
                flush()
            current += ch
        elif cls == "underscore":
            flush()
            if last == "underscore":
                result += "_"
        else:
            raise ValueError(f"unexpected character {ch!r} in proto identifier {name!r}")
        last = cls
    flush()
    if last == "underscore":
        result += "_"
    return result


def lower_camel(name: str) -> str:
    return _camel_case(name, initial_upper=False)


def upper_camel(name: str) -> str:
    return _camel_case(name, initial_upper=True)


def swift_type_prefix(package: str, swift_prefix: str | None) -> str:
    """`stb.testing.v1` -> `Stb_Testing_V1_` (or the file's `swift_prefix` option)."""
    if swift_prefix is not None:
        return swift_prefix
    if not package:
        return ""
    out = []
    make_upper = True
    for ch in package:
        if ch == "_":
            make_upper = True
        elif ch == ".":
            make_upper = True
            out.append("_")
        else:
            if not out and ch.isdigit():
                out.append("_")
            out.append(ch.upper() if make_upper else ch)
            make_upper = False
    return "".join(out) + "_"


def _all_underscore(s: str) -> bool:
    return bool(s) and set(s) == {"_"}


def sanitize_type_name(name: str, disambiguator: str) -> str:
    if name in _RESERVED_TYPE_NAMES or _all_underscore(name):
        return name + disambiguator
    if name.endswith(disambiguator) and name != disambiguator:
        return sanitize_type_name(name[: -len(disambiguator)], disambiguator) + disambiguator
    return name


def swift_field_name(proto_name: str) -> str:
    """A stored property or parameter name; keywords come back in backticks."""
    name = lower_camel(proto_name)
    if name in _RESERVED_FIELD_NAMES:
        return name + "_p"
    if name in _QUOTABLE:
        return f"`{name}`"
    if _all_underscore(name):
        return name + "__"
    return name


def swift_method_name(proto_name: str) -> str:
    """An RPC method's static property name in the generated service enum."""
    name = lower_camel(proto_name)
    if name in ("serviceName", "self", "init", "Type", "Protocol"):
        return name + "_p"
    if name in _QUOTABLE:
        return f"`{name}`"
    return name


def _sanitize_enum_case(name: str) -> str:
    if name in _RESERVED_ENUM_CASES:
        return name + "_"
    if name in _QUOTABLE_ENUM_CASES:
        return f"`{name}`"
    if _all_underscore(name):
        return name + "__"
    return name


def _strip_prefix(prefix: str, value: str) -> str | None:
    """swift-protobuf's PrefixStripper: drop the enum's name (ignoring case and
    underscores) from the front of a value name, or None when that would leave
    nothing or something that does not start with a letter."""
    want = prefix.lower().replace("_", "")
    have = value.lower()
    i = 0
    for ch in want:
        while i < len(have) and have[i] == "_":
            i += 1
        if i == len(have) or have[i] != ch:
            return None
        i += 1
    while i < len(have) and have[i] == "_":
        i += 1
    if i == len(have) or not ("a" <= have[i] <= "z"):
        return None
    return value[i:]


def swift_enum_case_names(enum_name: str, value_names: list[str]) -> list[str]:
    """Case names for an enum's values, prefix-stripped where that stays unique."""
    stripped = []
    for value in value_names:
        s = _strip_prefix(enum_name, value)
        stripped.append(lower_camel(s if s is not None else value))
    # Stripping may make two values collide (COLOR_RED and RED); then fall
    # back to the full names for every value, as swift-protobuf does.
    if len(set(stripped)) != len(stripped):
        stripped = [lower_camel(v) for v in value_names]
    return [_sanitize_enum_case(s) for s in stripped]


def unquoted(name: str) -> str:
    return name.strip("`")
