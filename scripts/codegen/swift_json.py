"""Emits the proto3 JSON mapping of every message and enum: a conformance to the
runtime's `_ProtoJSONCodable` / `_ProtoJSONEnum` (Sources/STBMessages/Runtime/ProtoJSON*),
with the field names as one byte table and a line per field that calls the shared,
generic reader and writer; and the table of message types `google.protobuf.Any`
can hold."""

from __future__ import annotations

import naming
from model import FDP, EnumInfo, GeneratorError, MessageInfo, Model

# Well-known types whose JSON form is not an object of their fields: the runtime
# functions that read and write them.
_SPECIAL_FORMS = {
    "google.protobuf.Duration": (
        "w.duration(seconds: self.seconds, nanos: self.nanos)",
        "(self.seconds, self.nanos) = try r.duration()",
    ),
    "google.protobuf.Any": (
        "w.any(typeURL: self.typeURL, value: self.value)",
        "(self.typeURL, self.value) = try r.any()",
    ),
}

# Well-known types with a special JSON form the runtime does not implement yet; a
# message of one of them must not silently get the plain object form.
_UNSUPPORTED = {
    "google.protobuf.Timestamp", "google.protobuf.FieldMask", "google.protobuf.Struct",
    "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.NullValue",
    "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue",
}

# The runtime tracks seen fields in 128 bits.
_MAX_FIELDS = 128


def _names_literal(names: list[str]) -> str:
    return '"' + " ".join(names) + '"'


class JSONEmitter:
    def __init__(self, model: Model, glue):
        self.model = model
        self.glue = glue  # the SwiftEmitter: value types, members, oneof names

    # --- enums ----------------------------------------------------------------------

    def emit_enum(self, e: EnumInfo) -> list[str]:
        if e.full_name in _UNSUPPORTED:
            raise GeneratorError(f"{e.full_name}: its JSON form is not supported yet")
        values = e.values + e.aliases
        numbers = ", ".join(str(v.number) for v in values)
        return [
            f"extension {e.swift_name}: _ProtoJSONEnum {{",
            f'    static let _jsonNames = _ProtoJSONNames("{e.full_name}", '
            f"{_names_literal([v.proto_name for v in values])}, numbers: [{numbers}])",
            "}",
        ]

    # --- messages -------------------------------------------------------------------

    def emit_message(self, msg: MessageInfo) -> list[str]:
        if msg.full_name in _UNSUPPORTED:
            raise GeneratorError(f"{msg.full_name}: its JSON form is not supported yet")
        d = msg.descriptor
        if len(d.field) > _MAX_FIELDS:
            raise GeneratorError(f"{msg.full_name}: more than {_MAX_FIELDS} fields")
        out = [
            f"extension {msg.swift_name}: _ProtoJSONCodable {{",
            "    /// Decodes the proto3 JSON form; throws, naming the field path, on anything else.",
            "    public init(jsonUTF8 bytes: UnsafeRawBufferPointer) throws(ProtoJSONError) {",
            "        self = try _ProtoJSONReader.decode(bytes)",
            "    }",
            "",
            "    /// Appends the compact proto3 JSON form to `buffer`.",
            "    public func serializeJSON(into buffer: inout [UInt8]) {",
            "        _ProtoJSONWriter.encode(self, into: &buffer)",
            "    }",
            "",
        ]
        special = _SPECIAL_FORMS.get(msg.full_name)
        if special is not None:
            write, read = special
            out += [
                "    static var _jsonHasSpecialForm: Bool { true }",
                "",
                "    func _jsonWrite(_ w: inout _ProtoJSONWriter) {",
                f"        {write}",
                "    }",
                "",
                "    mutating func _jsonRead(_ r: inout _ProtoJSONReader) throws(ProtoJSONError) {",
                f"        {read}",
                "    }",
                "}",
            ]
            return out
        names = []
        for fd in d.field:
            names += [fd.json_name, fd.name]
        out.append(f'    private static let _jsonFields = _ProtoJSONNames("{msg.full_name}", {_names_literal(names)})')
        out.append("")
        out.append("    func _jsonWrite(_ w: inout _ProtoJSONWriter) {")
        out.append("        w.beginObject()")
        for member in self.glue.members(msg):
            out += ["        " + line for line in self._write_member(msg, member)]
        out.append("        w.endObject()")
        out.append("    }")
        out.append("")
        out.append("    mutating func _jsonRead(_ r: inout _ProtoJSONReader) throws(ProtoJSONError) {")
        out.append("        var object = try r.beginObject(Self._jsonFields)")
        if d.field:
            out.append("        while let field = try r.nextField(&object) {")
            out.append("            switch field {")
            for index, fd in enumerate(d.field):
                out.append(f"            case {index}: {self._read_field(msg, fd)}")
            out.append("            default: break")
            out.append("            }")
            out.append("        }")
        else:
            out.append("        while try r.nextField(&object) != nil {}")
        out.append("    }")
        out.append("}")
        return out

    def _write_member(self, msg: MessageInfo, member) -> list[str]:
        if member[0] == "oneof":
            _, idx, fields = member
            prop, _ = self.glue.oneof_names(msg, idx)
            lines = [f"switch self.{prop} {{"]
            for fd in fields:
                case = naming.unquoted(naming.swift_field_name(fd.name))
                lines.append(f'case .{case}(let value)?: w.field(#""{fd.json_name}":"#, value)')
            lines.append("case nil: break")
            lines.append("}")
            return lines
        fd = member[1]
        name = naming.swift_field_name(fd.name)
        if self.glue.map_entry(fd) is not None:
            return [f'w.map(#""{fd.json_name}":"#, self.{name})']
        if fd.label == FDP.LABEL_REPEATED:
            return [f'w.repeated(#""{fd.json_name}":"#, self.{name})']
        if fd.proto3_optional or fd.type == FDP.TYPE_MESSAGE:
            return [f'w.optional(#""{fd.json_name}":"#, self.{name})']
        return [f'w.scalar(#""{fd.json_name}":"#, self.{name})']

    def _read_field(self, msg: MessageInfo, fd) -> str:
        name = naming.swift_field_name(fd.name)
        if fd.HasField("oneof_index") and not fd.proto3_optional:
            prop, _ = self.glue.oneof_names(msg, fd.oneof_index)
            oneof = msg.descriptor.oneof_decl[fd.oneof_index].name
            case = naming.unquoted(name)
            swift = self.glue.value_type(fd).swift
            return (f"if let value: {swift} = try r.optional() {{ "
                    f'try r.oneof(unset: self.{prop} == nil, "{oneof}"); self.{prop} = .{case}(value) }} '
                    f"else if case .{case}? = self.{prop} {{ self.{prop} = nil }}")
        if self.glue.map_entry(fd) is not None:
            return f"self.{name} = try r.map()"
        if fd.label == FDP.LABEL_REPEATED:
            return f"self.{name} = try r.repeated()"
        if fd.proto3_optional or fd.type == FDP.TYPE_MESSAGE:
            return f"self.{name} = try r.optional()"
        return f"self.{name} = try r.scalar()"


def emit_any_registry(model: Model, banner: str) -> str:
    """The function that maps a fully qualified message name to its Swift type."""
    out = [
        banner,
        "//",
        "// The message types a google.protobuf.Any can hold in its JSON form: every message",
        "// of Protos/ and the well-known types they import.",
        "",
        "/// The message type with the fully qualified proto name `name`, if this package has it.",
        "internal func _protoJSONAnyType(named name: String) -> (any _ProtoJSONCodable.Type)? {",
        "    switch name {",
    ]
    for full in sorted(model.messages):
        msg = model.messages[full]
        if msg.map_entry:
            continue
        out.append(f'    case "{msg.full_name}": {msg.swift_name}.self')
    out += ["    default: nil", "    }", "}", ""]
    return "\n".join(out)
