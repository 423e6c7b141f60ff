"""Emits one `.pb.swift` per .proto file: public value types plus the internal
code that copies them to and from protobuf-c's C structs."""

from __future__ import annotations

from dataclasses import dataclass

import naming
from model import FDP, EnumInfo, FileInfo, GeneratorError, MessageInfo, Model, ServiceInfo
from swift_json import JSONEmitter

_MSG_FIELD, _MSG_ONEOF = 2, 8

_SCALARS = {
    # proto type: (Swift type, default literal)
    FDP.TYPE_DOUBLE: ("Double", "0"),
    FDP.TYPE_FLOAT: ("Float", "0"),
    FDP.TYPE_INT32: ("Int32", "0"),
    FDP.TYPE_SINT32: ("Int32", "0"),
    FDP.TYPE_SFIXED32: ("Int32", "0"),
    FDP.TYPE_INT64: ("Int64", "0"),
    FDP.TYPE_SINT64: ("Int64", "0"),
    FDP.TYPE_SFIXED64: ("Int64", "0"),
    FDP.TYPE_UINT32: ("UInt32", "0"),
    FDP.TYPE_FIXED32: ("UInt32", "0"),
    FDP.TYPE_UINT64: ("UInt64", "0"),
    FDP.TYPE_FIXED64: ("UInt64", "0"),
}


@dataclass
class ValueType:
    """How one proto value (not counting repetition) crosses the C boundary."""

    swift: str  # Swift type of the value
    default: str  # its zero value as a Swift literal
    c_element: str  # Swift spelling of the C type that holds it in an array
    is_message: bool
    message: MessageInfo | None = None
    # Whether decoding can fail (strings that are not valid UTF-8, or messages
    # holding such strings); such expressions need `try`.
    throws: bool = False

    def decode(self, expr: str) -> str:
        """Swift expression turning C value `expr` into the Swift value."""
        raise NotImplementedError

    def decode_field(self, expr: str, field: str) -> str:
        """Like `decode`, for the value of field `field`: a failure names it."""
        return self.decode(expr)

    def element_decoder(self) -> str:
        """A Swift function turning one C array element into the Swift value."""
        raise NotImplementedError

    def encode(self, expr: str) -> str:
        """Swift expression turning Swift value `expr` into the C value (may use `arena`)."""
        raise NotImplementedError


class _Plain(ValueType):
    def decode(self, expr: str) -> str:
        return expr

    def encode(self, expr: str) -> str:
        return expr


class _Bool(ValueType):
    def decode(self, expr: str) -> str:
        return f"{expr} != 0"

    def encode(self, expr: str) -> str:
        return f"{expr} ? 1 : 0"


class _String(ValueType):
    # protoc-c gets `string` fields as `bytes` (see gen_messages.py), so the C side
    # holds a length and the glue, not strlen, decides what the text is.
    def decode(self, expr: str) -> str:
        return f"_protoString({expr})"

    def decode_field(self, expr: str, field: str) -> str:
        return f'_protoString({expr}, field: "{field}")'

    def element_decoder(self) -> str:
        return "_protoString"

    def encode(self, expr: str) -> str:
        return f"arena.utf8({expr})"


class _Bytes(ValueType):
    def decode(self, expr: str) -> str:
        return f"_protoBytes({expr})"

    def encode(self, expr: str) -> str:
        return f"arena.binaryData({expr})"


class _Enum(ValueType):
    def decode(self, expr: str) -> str:
        # C enums import as structs whose rawValue is UInt32 or Int32 depending on
        # whether a value is negative; truncating keeps the 32 bits either way.
        return f"{self.swift}(rawValue: Int32(truncatingIfNeeded: {expr}.rawValue))"

    def encode(self, expr: str) -> str:
        return f".init(rawValue: .init(truncatingIfNeeded: {expr}.rawValue))"


class _Message(ValueType):
    def decode_field(self, expr: str, field: str) -> str:
        # protobuf-c never leaves these NULL after a successful unpack; the
        # fallback only keeps a corrupt graph from crashing the process.
        return f'_protoMessage({expr}, field: "{field}", {self.swift}.init(_c:)) ?? {self.swift}()'

    def element_decoder(self) -> str:
        return f"{self.swift}.init(_c:)"

    def encode(self, expr: str) -> str:
        return f"{expr}._makeC(&arena)"


def _doc(indent: str, comment: str, fallback: str) -> list[str]:
    text = comment.strip("\n") if comment.strip() else fallback
    lines = []
    for line in text.split("\n"):
        line = line[1:] if line.startswith(" ") else line
        lines.append(f"{indent}///{' ' if line.strip() else ''}{line.rstrip()}")
    return lines


def _field_doc(fd) -> str:
    return f"`{fd.name}` (field {fd.number})."


class SwiftEmitter:
    def __init__(self, model: Model):
        self.model = model

    # --- types ----------------------------------------------------------------------

    def value_type(self, fd) -> ValueType:
        if fd.type in _SCALARS:
            swift, default = _SCALARS[fd.type]
            return _Plain(swift, default, swift, False)
        if fd.type == FDP.TYPE_BOOL:
            return _Bool("Bool", "false", "Int32", False)
        if fd.type == FDP.TYPE_STRING:
            return _String("String", '""', "ProtobufCBinaryData", False, throws=True)
        if fd.type == FDP.TYPE_BYTES:
            return _Bytes("[UInt8]", "[]", "ProtobufCBinaryData", False)
        if fd.type == FDP.TYPE_ENUM:
            e = self.model.enums[fd.type_name]
            return _Enum(e.swift_name, f".{e.zero_case}", e.c_type, False)
        if fd.type == FDP.TYPE_MESSAGE:
            m = self.model.messages[fd.type_name]
            return _Message(m.swift_name, f"{m.swift_name}()", f"UnsafeMutablePointer<{m.c_type}>?", True, m, throws=True)
        raise GeneratorError(f"field {fd.name}: unsupported type {fd.type}")

    def map_entry(self, fd) -> MessageInfo | None:
        if fd.label == FDP.LABEL_REPEATED and fd.type == FDP.TYPE_MESSAGE:
            m = self.model.messages[fd.type_name]
            if m.map_entry:
                return m
        return None

    def members(self, msg: MessageInfo):
        """The Swift stored properties in proto order: ("field", fd) for plain,
        repeated, map and proto3-optional fields, ("oneof", index, [fd...]) once
        per real oneof at the position of its first member."""
        d = msg.descriptor
        out = []
        seen_oneofs = set()
        for fd in d.field:
            if fd.HasField("oneof_index") and not fd.proto3_optional:
                idx = fd.oneof_index
                if idx not in seen_oneofs:
                    seen_oneofs.add(idx)
                    out.append(("oneof", idx, [f for f in d.field if f.HasField("oneof_index")
                                                and f.oneof_index == idx and not f.proto3_optional]))
            else:
                out.append(("field", fd))
        return out

    def field_swift(self, fd) -> tuple[str, str, str]:
        """(property name, Swift type, default) for a non-oneof field."""
        name = naming.swift_field_name(fd.name)
        entry = self.map_entry(fd)
        if entry is not None:
            key = self.value_type(entry.descriptor.field[0])
            value = self.value_type(entry.descriptor.field[1])
            return name, f"[{key.swift}: {value.swift}]", "[:]"
        vt = self.value_type(fd)
        if fd.label == FDP.LABEL_REPEATED:
            return name, f"[{vt.swift}]", "[]"
        if fd.proto3_optional or vt.is_message:
            return name, f"{vt.swift}?", "nil"
        return name, vt.swift, vt.default

    def oneof_names(self, msg: MessageInfo, idx: int) -> tuple[str, str]:
        """(property name, nested enum name) for a oneof."""
        oneof = msg.descriptor.oneof_decl[idx]
        enum_name = "OneOf_" + naming.sanitize_type_name(naming.upper_camel(oneof.name), "Oneof")
        return naming.swift_field_name(oneof.name), enum_name

    # --- file -----------------------------------------------------------------------

    def emit_file(self, info: FileInfo) -> str:
        f = info.proto
        out: list[str] = [
            f"// Generated by scripts/gen-messages from Protos/{f.name}; do not edit.",
            "//",
            f"// Value types for the `{f.package}` package and the internal code that",
            "// copies them to and from the protoc-c structs in CSTBMessages.",
            "",
            "internal import CProtobufC",
            "internal import CSTBMessages",
        ]
        for e in info.enums:
            out.append("")
            out += self.emit_enum(e, "")
        for m in info.messages:
            out.append("")
            out += self.emit_message(m, "")
        for s in info.services:
            out.append("")
            out += self.emit_service(s)
        bridged = [m for m in self._all_messages(info.messages) if not m.map_entry]
        if bridged:
            out.append("")
            out.append("// MARK: - protobuf-c bridging")
            for m in bridged:
                out.append("")
                out += self.emit_bridge(m)
        enums = list(info.enums) + [e for m in self._all_messages(info.messages) for e in m.nested_enums]
        if bridged or enums:
            json = JSONEmitter(self.model, self)
            out.append("")
            out.append("// MARK: - proto3 JSON")
            for e in enums:
                out.append("")
                out += json.emit_enum(e)
            for m in bridged:
                out.append("")
                out += json.emit_message(m)
        return "\n".join(out) + "\n"

    def _all_messages(self, messages: list[MessageInfo]):
        for m in messages:
            yield m
            yield from self._all_messages(m.nested_messages)

    # --- enums ----------------------------------------------------------------------

    def emit_enum(self, e: EnumInfo, ind: str) -> list[str]:
        i2 = ind + "    "
        out = _doc(ind, e.comment, f"The `{e.full_name}` enum. Open: unknown values are kept as `unrecognized`.")
        out.append(f"{ind}public enum {e.local_name}: Sendable, Hashable {{")
        for v in e.values:
            out += _doc(i2, v.comment, f"`{v.proto_name}` = {v.number}.")
            out.append(f"{i2}case {v.case_name}")
        out.append(f"{i2}/// A value this build does not know; kept so it survives a round-trip.")
        out.append(f"{i2}case unrecognized(Int32)")
        for a in e.aliases:
            target = next(v for v in e.values if v.number == a.number)
            out.append("")
            out += _doc(i2, a.comment, f"`{a.proto_name}`, an alias of `{target.proto_name}` = {a.number}.")
            out.append(f"{i2}public static let {a.case_name}: Self = .{naming.unquoted(target.case_name)}")
        out.append("")
        out.append(f"{i2}/// The zero value, `{next(v.proto_name for v in e.values if v.case_name == e.zero_case)}`.")
        out.append(f"{i2}public init() {{")
        out.append(f"{i2}    self = .{e.zero_case}")
        out.append(f"{i2}}}")
        out.append("")
        out.append(f"{i2}/// The case for a wire value; unknown numbers become `unrecognized`.")
        out.append(f"{i2}public init(rawValue: Int32) {{")
        out.append(f"{i2}    switch rawValue {{")
        for v in e.values:
            out.append(f"{i2}    case {v.number}: self = .{v.case_name}")
        out.append(f"{i2}    default: self = .unrecognized(rawValue)")
        out.append(f"{i2}    }}")
        out.append(f"{i2}}}")
        out.append("")
        out.append(f"{i2}/// The number sent on the wire.")
        out.append(f"{i2}public var rawValue: Int32 {{")
        out.append(f"{i2}    switch self {{")
        for v in e.values:
            out.append(f"{i2}    case .{v.case_name}: {v.number}")
        out.append(f"{i2}    case .unrecognized(let value): value")
        out.append(f"{i2}    }}")
        out.append(f"{i2}}}")
        out.append(f"{ind}}}")
        return out

    # --- messages -------------------------------------------------------------------

    def emit_message(self, msg: MessageInfo, ind: str) -> list[str]:
        i2 = ind + "    "
        i3 = i2 + "    "
        d = msg.descriptor
        f = msg.file
        out = _doc(ind, msg.comment, f"The `{msg.full_name}` message.")
        out.append(f"{ind}public struct {msg.local_name}: ProtoMessage {{")

        params: list[tuple[str, str, str]] = []
        for member in self.members(msg):
            if member[0] == "field":
                fd = member[1]
                name, swift, default = self.field_swift(fd)
                index = list(d.field).index(fd)
                out += _doc(i2, self.model.comment(f, msg.path + (_MSG_FIELD, index)), _field_doc(fd))
                out.append(f"{i2}public var {name}: {swift} = {default}")
                params.append((name, swift, default))
            else:
                _, idx, fields = member
                prop, enum_name = self.oneof_names(msg, idx)
                oneof = d.oneof_decl[idx]
                out += _doc(i2, self.model.comment(f, msg.path + (_MSG_ONEOF, idx)),
                            f"Which field of the `{oneof.name}` oneof is set, if any.")
                out.append(f"{i2}public var {prop}: {msg.swift_name}.{enum_name}? = nil")
                params.append((prop, f"{msg.swift_name}.{enum_name}?", "nil"))

        for member in self.members(msg):
            if member[0] == "oneof":
                _, idx, fields = member
                _, enum_name = self.oneof_names(msg, idx)
                oneof = d.oneof_decl[idx]
                out.append("")
                out.append(f"{i2}/// The fields of the `{oneof.name}` oneof; at most one is set.")
                out.append(f"{i2}public enum {enum_name}: Sendable, Hashable {{")
                for fd in fields:
                    index = list(d.field).index(fd)
                    out += _doc(i3, self.model.comment(f, msg.path + (_MSG_FIELD, index)), _field_doc(fd))
                    out.append(f"{i3}case {naming.swift_field_name(fd.name)}({self.value_type(fd).swift})")
                out.append(f"{i2}}}")
        for e in msg.nested_enums:
            out.append("")
            out += self.emit_enum(e, i2)
        for nested in msg.nested_messages:
            if nested.map_entry:
                continue
            out.append("")
            out += self.emit_message(nested, i2)

        if not out[-1].endswith("{"):
            out.append("")
        out.append(f"{i2}/// The fully qualified proto name.")
        out.append(f'{i2}public static var protoMessageName: String {{ "{msg.full_name}" }}')
        out.append("")
        out.append(f"{i2}/// Creates a message with every field at its default (proto3 zero) value.")
        out.append(f"{i2}public init() {{}}")
        if params:
            out.append("")
            out.append(f"{i2}/// Creates a message from the given fields; the rest keep their defaults.")
            out.append(f"{i2}public init(")
            for n, (name, swift, default) in enumerate(params):
                comma = "," if n < len(params) - 1 else ""
                out.append(f"{i3}{name}: {swift} = {default}{comma}")
            out.append(f"{i2}) {{")
            for name, _, _ in params:
                out.append(f"{i3}self.{name} = {name}")
            out.append(f"{i2}}}")

        out.append("")
        out += self._emit_codec(msg, i2)
        out.append(f"{ind}}}")
        return out

    def _emit_codec(self, msg: MessageInfo, ind: str) -> list[str]:
        i2 = ind + "    "
        c, p = msg.c_type, msg.c_prefix
        data = "bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)"
        out = [f"{ind}/// Decodes wire bytes through protobuf-c; throws on malformed input and on a"]
        out.append(f"{ind}/// string field that is not valid UTF-8 or contains a NUL character.")
        out.append(f"{ind}public init(serializedBytes bytes: UnsafeRawBufferPointer) throws(ProtoDecodingError) {{")
        if msg.top_level:
            out.append(f"{i2}guard let c = {p}__unpack(nil, bytes.count, {data}) else {{")
            out.append(f"{i2}    throw ProtoDecodingError(messageName: Self.protoMessageName, byteCount: bytes.count)")
            out.append(f"{i2}}}")
            out.append(f"{i2}defer {{ {p}__free_unpacked(c, nil) }}")
            out.append(f"{i2}self = try _protoDecoded(c, byteCount: bytes.count, Self.init(_c:))")
        else:
            # protoc-c emits pack/unpack only for top-level messages; nested ones
            # go through the generic calls with the descriptor `__init` installs.
            out.append(f"{i2}let descriptor = _protoDescriptor(of: {c}.self, initializer: {p}__init)")
            out.append(f"{i2}guard let base = protobuf_c_message_unpack(descriptor, nil, bytes.count, {data}) else {{")
            out.append(f"{i2}    throw ProtoDecodingError(messageName: Self.protoMessageName, byteCount: bytes.count)")
            out.append(f"{i2}}}")
            out.append(f"{i2}defer {{ protobuf_c_message_free_unpacked(base, nil) }}")
            out.append(f"{i2}let c = UnsafeRawPointer(base).assumingMemoryBound(to: {c}.self)")
            out.append(f"{i2}self = try _protoDecoded(c, byteCount: bytes.count, Self.init(_c:))")
        out.append(f"{ind}}}")
        out.append("")
        out.append(f"{ind}/// Appends the wire encoding to `buffer`, packing straight into its storage.")
        out.append(f"{ind}public func serialize(into buffer: inout [UInt8]) {{")
        out.append(f"{i2}ProtoArena.with {{ arena in")
        out.append(f"{i2}    let c = _makeC(&arena)")
        if msg.top_level:
            out.append(f"{i2}    buffer._protoAppend(count: {p}__get_packed_size(c)) {{ {p}__pack(c, $0) }}")
        else:
            out.append(f"{i2}    let base = UnsafeRawPointer(c).assumingMemoryBound(to: ProtobufCMessage.self)")
            out.append(f"{i2}    buffer._protoAppend(count: protobuf_c_message_get_packed_size(base)) {{")
            out.append(f"{i2}        protobuf_c_message_pack(base, $0)")
            out.append(f"{i2}    }}")
        out.append(f"{i2}}}")
        out.append(f"{ind}}}")
        return out

    # --- bridging -------------------------------------------------------------------

    def emit_bridge(self, msg: MessageInfo) -> list[str]:
        c = msg.c_type
        out = [f"extension {msg.swift_name} {{"]
        out.append("    /// Copies a message protobuf-c decoded; `c` stays owned by the caller. Throws")
        out.append("    /// for a string field that is not valid UTF-8 or holds a NUL, naming the field.")
        out.append(f"    internal init(_c c: UnsafePointer<{c}>) throws(_ProtoFieldError) {{")
        decode = self._decode_body(msg)
        if decode:
            out.append("        let m = c.pointee")
            out += ["        " + line for line in decode]
        out.append("    }")
        out.append("")
        out.append("    /// Builds this value as a C struct graph in `arena`; valid until the arena ends.")
        out.append(f"    internal func _makeC(_ arena: inout ProtoArena) -> UnsafeMutablePointer<{c}> {{")
        out.append(f"        let c = arena.allocate({c}.self)")
        out.append(f"        {msg.c_prefix}__init(c)")
        out += ["        " + line for line in self._encode_body(msg)]
        out.append("        return c")
        out.append("    }")
        out.append("}")
        return out

    def _decode_body(self, msg: MessageInfo) -> list[str]:
        out: list[str] = []
        d = msg.descriptor

        def tried(vt: ValueType) -> str:
            return "try " if vt.throws else ""

        for member in self.members(msg):
            if member[0] == "oneof":
                _, idx, fields = member
                prop, enum_name = self.oneof_names(msg, idx)
                case_member = naming.c_oneof_case_member(d.oneof_decl[idx].name)
                out.append(f"switch m.{case_member}.rawValue {{")
                for fd in fields:
                    vt = self.value_type(fd)
                    value = vt.decode_field("m." + naming.c_member_name(fd.name), fd.name)
                    out.append(f"case {fd.number}: self.{prop} = {tried(vt)}"
                               f".{naming.unquoted(naming.swift_field_name(fd.name))}({value})")
                out.append(f"default: self.{prop} = nil")
                out.append("}")
                continue
            fd = member[1]
            name = naming.swift_field_name(fd.name)
            cm = "m." + naming.c_member_name(fd.name)
            entry = self.map_entry(fd)
            if entry is not None:
                key_fd, value_fd = entry.descriptor.field[0], entry.descriptor.field[1]
                key = self.value_type(key_fd)
                value = self.value_type(value_fd)
                # A map is a repeated entry message on the wire, so a bad key or
                # value is named like one: `labels[2].key`.
                pair = (f"({key.decode_field('e.key', key_fd.name)}, "
                        f"{value.decode_field('e.value', value_fd.name)})")
                either = "try " if key.throws or value.throws else ""
                out.append(f'self.{name} = try _protoDictionary({cm}, m.n_{naming.c_member_name(fd.name)}, '
                           f'field: "{fd.name}") {{ (e) throws(_ProtoFieldError) in')
                out.append(f"    {either}{pair}")
                out.append("}")
                continue
            vt = self.value_type(fd)
            if fd.label == FDP.LABEL_REPEATED:
                count = f"m.n_{naming.c_member_name(fd.name)}"
                if isinstance(vt, _Plain):
                    out.append(f"self.{name} = _protoArray({cm}, {count})")
                elif isinstance(vt, _Message):
                    out.append(f'self.{name} = try _protoMessages({cm}, {count}, field: "{fd.name}", '
                               f"{vt.element_decoder()})")
                elif vt.throws:
                    out.append(f'self.{name} = try _protoArray({cm}, {count}, field: "{fd.name}", '
                               f"{vt.element_decoder()})")
                else:
                    out.append(f"self.{name} = _protoArray({cm}, {count}) {{ {vt.decode('$0')} }}")
            elif fd.proto3_optional:
                case_member = naming.c_oneof_case_member(d.oneof_decl[fd.oneof_index].name)
                out.append(f"self.{name} = {tried(vt)}m.{case_member}.rawValue == {fd.number} "
                           f"? {vt.decode_field(cm, fd.name)} : nil")
            elif vt.is_message:
                out.append(f'self.{name} = try _protoMessage({cm}, field: "{fd.name}", {vt.element_decoder()})')
            else:
                out.append(f"self.{name} = {tried(vt)}{vt.decode_field(cm, fd.name)}")
        return out

    def _encode_body(self, msg: MessageInfo) -> list[str]:
        out: list[str] = []
        d = msg.descriptor
        for member in self.members(msg):
            if member[0] == "oneof":
                _, idx, fields = member
                prop, _ = self.oneof_names(msg, idx)
                case_member = naming.c_oneof_case_member(d.oneof_decl[idx].name)
                out.append(f"switch self.{prop} {{")
                for fd in fields:
                    vt = self.value_type(fd)
                    out.append(f"case .{naming.unquoted(naming.swift_field_name(fd.name))}(let value)?:")
                    out.append(f"    c.pointee.{case_member} = .init(rawValue: {fd.number})")
                    out.append(f"    c.pointee.{naming.c_member_name(fd.name)} = {vt.encode('value')}")
                out.append("case nil:")
                out.append("    break")
                out.append("}")
                continue
            fd = member[1]
            name = naming.swift_field_name(fd.name)
            cname = naming.c_member_name(fd.name)
            entry = self.map_entry(fd)
            if entry is not None:
                key = self.value_type(entry.descriptor.field[0])
                value = self.value_type(entry.descriptor.field[1])
                ec = entry.c_type
                out.append(f"if !self.{name}.isEmpty {{")
                out.append(f"    let entries = arena.allocate(UnsafeMutablePointer<{ec}>?.self, count: self.{name}.count)")
                out.append("    var index = 0")
                out.append(f"    for (key, value) in self.{name} {{")
                out.append(f"        let entry = arena.allocate({ec}.self)")
                out.append(f"        {entry.c_prefix}__init(entry)")
                out.append(f"        entry.pointee.key = {key.encode('key')}")
                out.append(f"        entry.pointee.value = {value.encode('value')}")
                out.append("        entries[index] = entry")
                out.append("        index += 1")
                out.append("    }")
                out.append(f"    c.pointee.n_{cname} = self.{name}.count")
                out.append(f"    c.pointee.{cname} = entries")
                out.append("}")
                continue
            vt = self.value_type(fd)
            if fd.label == FDP.LABEL_REPEATED:
                out.append(f"if !self.{name}.isEmpty {{")
                if isinstance(vt, _Plain):
                    out.append(f"    c.pointee.{cname} = arena.copy(self.{name})")
                else:
                    out.append(f"    let items = arena.allocate({vt.c_element}.self, count: self.{name}.count)")
                    out.append(f"    for (index, value) in self.{name}.enumerated() {{")
                    out.append(f"        items[index] = {vt.encode('value')}")
                    out.append("    }")
                    out.append(f"    c.pointee.{cname} = items")
                out.append(f"    c.pointee.n_{cname} = self.{name}.count")
                out.append("}")
            elif fd.proto3_optional:
                case_member = naming.c_oneof_case_member(d.oneof_decl[fd.oneof_index].name)
                out.append(f"if let value = self.{name} {{")
                out.append(f"    c.pointee.{case_member} = .init(rawValue: {fd.number})")
                out.append(f"    c.pointee.{cname} = {vt.encode('value')}")
                out.append("}")
            elif vt.is_message:
                out.append(f"if let value = self.{name} {{")
                out.append(f"    c.pointee.{cname} = {vt.encode('value')}")
                out.append("}")
            elif isinstance(vt, (_String, _Bytes)):
                # __init already points empty strings at protobuf-c's own empty
                # string and bytes at {0, NULL}; only non-empty ones need copies.
                out.append(f"if !self.{name}.isEmpty {{")
                out.append(f"    c.pointee.{cname} = {vt.encode('self.' + name)}")
                out.append("}")
            else:
                out.append(f"c.pointee.{cname} = {vt.encode('self.' + name)}")
        return out

    # --- services -------------------------------------------------------------------

    def emit_service(self, s: ServiceInfo) -> list[str]:
        out = _doc("", s.comment, f"The `{s.full_name}` service's methods, as the RPC layer routes them.")
        out.append(f"public enum {s.swift_name} {{")
        out.append("    /// The fully qualified service name.")
        out.append(f'    public static let serviceName = "{s.full_name}"')
        out.append("")
        out.append("    /// Every method's path, in the order the proto declares them.")
        out.append("    public static let methodPaths: [String] = [")
        for proto_name, *_ in s.methods:
            out.append(f'        "/{s.full_name}/{proto_name}",')
        out.append("    ]")
        for proto_name, swift_name, req, resp, kind, comment in s.methods:
            out.append("")
            out += _doc("    ", comment, f"`{proto_name}` ({kind}).")
            out.append(f"    public static let {swift_name} = ProtoMethod<{req}, {resp}>(")
            out.append(f'        path: "/{s.full_name}/{proto_name}",')
            out.append(f"        kind: .{kind}")
            out.append("    )")
        out.append("}")
        return out
