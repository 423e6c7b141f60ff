"""The descriptor set as Swift: the serialized FileDescriptorProto of every file
(imports included) with the names each file defines, for server reflection.

protobuf-c keeps no descriptor pool a server could answer reflection from, so the
generator hands over what protoc gave it. Each file's descriptor is embedded as
base64 (a byte-array literal of this size is slow to type-check) without
source_code_info, so a file's bytes do not change when only a comment does. The
symbols are listed here rather than decoded at run time: the names a
DescriptorPool would find the file by (messages, enums and their values, fields,
oneofs, services, methods, extensions)."""

from __future__ import annotations

import base64

from google.protobuf import descriptor_pb2

BASE64_LINE = 100


def _swift_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _string_array(items: list[str], indent: str) -> list[str]:
    if not items:
        return ["[]"]
    return ["["] + [f"{indent}    {_swift_string(s)}," for s in items] + [f"{indent}]"]


class _Symbols:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.others: list[str] = []
        self.extensions: list[tuple[str, int]] = []

    def add_enum(self, scope: str, enum: descriptor_pb2.EnumDescriptorProto) -> None:
        self.others.append(f"{scope}{enum.name}")
        # Enum values are siblings of their enum (C++ scoping), as in DescriptorPool.
        self.others.extend(f"{scope}{value.name}" for value in enum.value)

    def add_extensions(self, scope: str, extensions) -> None:
        for ext in extensions:
            self.others.append(f"{scope}{ext.name}")
            self.extensions.append((ext.extendee.lstrip("."), ext.number))

    def add_message(self, scope: str, message: descriptor_pb2.DescriptorProto) -> None:
        name = f"{scope}{message.name}"
        self.messages.append(name)
        inner = name + "."
        self.others.extend(inner + f.name for f in message.field)
        self.others.extend(inner + o.name for o in message.oneof_decl)
        self.add_extensions(inner, message.extension)
        for enum in message.enum_type:
            self.add_enum(inner, enum)
        for nested in message.nested_type:
            self.add_message(inner, nested)


def symbols_of(f: descriptor_pb2.FileDescriptorProto) -> _Symbols:
    scope = f"{f.package}." if f.package else ""
    symbols = _Symbols()
    for message in f.message_type:
        symbols.add_message(scope, message)
    for enum in f.enum_type:
        symbols.add_enum(scope, enum)
    symbols.add_extensions(scope, f.extension)
    for service in f.service:
        name = f"{scope}{service.name}"
        symbols.others.append(name)
        symbols.others.extend(f"{name}.{m.name}" for m in service.method)
    return symbols


def emit_descriptors_file(fds: descriptor_pb2.FileDescriptorSet, banner: str) -> str:
    """`fds` lists files dependencies-first (protoc --include_imports)."""
    out = [
        banner,
        "//",
        "// The serialized google.protobuf.FileDescriptorProto of every .proto file, imports",
        "// included, with the names each defines: what server reflection answers from.",
        "",
        "extension ProtoFileDescriptor {",
        "    /// Every file the messages come from, each after the files it imports.",
        "    public static let generated: [ProtoFileDescriptor] = [",
    ]
    for f in fds.file:
        proto = descriptor_pb2.FileDescriptorProto()
        proto.CopyFrom(f)
        proto.ClearField("source_code_info")
        symbols = symbols_of(proto)
        encoded = base64.b64encode(proto.SerializeToString(deterministic=True)).decode("ascii")
        i = "            "
        out.append("        ProtoFileDescriptor(")
        out.append(f"{i}name: {_swift_string(proto.name)},")
        deps = _string_array(list(proto.dependency), i)
        out.append(f"{i}dependencies: {deps[0]}")
        out += deps[1:]
        out[-1] += ","
        messages = _string_array(symbols.messages, i)
        out.append(f"{i}messageTypes: {messages[0]}")
        out += messages[1:]
        out[-1] += ","
        others = _string_array(symbols.others, i)
        out.append(f"{i}otherSymbols: {others[0]}")
        out += others[1:]
        out[-1] += ","
        if symbols.extensions:
            out.append(f"{i}extensions: [")
            for extendee, number in symbols.extensions:
                out.append(f"{i}    ProtoFileDescriptor.Extension(extendee: {_swift_string(extendee)}, number: {number}),")
            out.append(f"{i}],")
        else:
            out.append(f"{i}extensions: [],")
        out.append(f'{i}base64: """')
        for start in range(0, len(encoded), BASE64_LINE):
            out.append(f"{i}{encoded[start:start + BASE64_LINE]}")
        out.append(f'{i}"""')
        out.append("        ),")
    out += ["    ]", "}", ""]
    return "\n".join(out)
