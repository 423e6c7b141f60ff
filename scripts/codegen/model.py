"""The descriptor set turned into what the Swift emitter needs: Swift and C names
for every message and enum, and each field classified by how it is bridged."""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf import descriptor_pb2

import naming

FDP = descriptor_pb2.FieldDescriptorProto

# source_code_info paths (field numbers in descriptor.proto).
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MSG_FIELD, _MSG_NESTED, _MSG_ENUM, _MSG_ONEOF = 2, 3, 4, 8
_ENUM_VALUE = 2
_SERVICE_METHOD = 2


class GeneratorError(Exception):
    """A .proto construct the glue cannot represent; the message says which."""


@dataclass
class EnumValue:
    proto_name: str
    number: int
    case_name: str
    comment: str


@dataclass
class EnumInfo:
    full_name: str
    local_name: str
    swift_name: str
    c_type: str
    values: list[EnumValue]  # distinct numbers only, in declaration order
    aliases: list[EnumValue]  # allow_alias extras: same number as an earlier value
    comment: str
    zero_case: str


@dataclass
class MessageInfo:
    full_name: str
    local_name: str
    swift_name: str
    c_type: str
    c_prefix: str
    top_level: bool
    descriptor: descriptor_pb2.DescriptorProto
    file: descriptor_pb2.FileDescriptorProto
    path: tuple[int, ...]
    comment: str
    map_entry: bool
    nested_messages: list["MessageInfo"] = field(default_factory=list)
    nested_enums: list[EnumInfo] = field(default_factory=list)


@dataclass
class ServiceInfo:
    full_name: str
    swift_name: str
    comment: str
    methods: list[tuple[str, str, str, str, str, str]]  # (proto name, swift name, request, response, kind, comment)


@dataclass
class FileInfo:
    proto: descriptor_pb2.FileDescriptorProto
    enums: list[EnumInfo]
    messages: list[MessageInfo]
    services: list[ServiceInfo]


class Model:
    """Indexes every file of the descriptor set by fully qualified name."""

    def __init__(self, fds: descriptor_pb2.FileDescriptorSet):
        self.messages: dict[str, MessageInfo] = {}
        self.enums: dict[str, EnumInfo] = {}
        self.files: dict[str, FileInfo] = {}
        self._comments: dict[tuple[str, tuple[int, ...]], str] = {}
        for f in fds.file:
            for loc in f.source_code_info.location:
                text = loc.leading_comments or loc.trailing_comments
                if text:
                    self._comments[(f.name, tuple(loc.path))] = text
        for f in fds.file:
            self._index_file(f)
        for f in fds.file:
            self.files[f.name].services = [self._service(f, i, s) for i, s in enumerate(f.service)]
        self._check_recursion()

    def comment(self, file: descriptor_pb2.FileDescriptorProto, path: tuple[int, ...]) -> str:
        return self._comments.get((file.name, path), "")

    # --- indexing -------------------------------------------------------------------

    def _index_file(self, f: descriptor_pb2.FileDescriptorProto) -> None:
        if f.syntax != "proto3":
            raise GeneratorError(
                f"{f.name}: syntax {f.syntax or 'proto2'!r} is not supported; the Swift glue handles proto3 only"
            )
        if f.extension:
            raise GeneratorError(f"{f.name}: extensions are not supported")
        prefix = naming.swift_type_prefix(
            f.package, f.options.swift_prefix if f.options.HasField("swift_prefix") else None
        )
        scope = "." + f.package if f.package else ""
        enums = [
            self._enum(f, (_FILE_ENUM, i), e, scope, prefix + naming.sanitize_type_name(e.name, "Enum"), None)
            for i, e in enumerate(f.enum_type)
        ]
        messages = [
            self._message(f, (_FILE_MESSAGE, i), m, scope, prefix + naming.sanitize_type_name(m.name, "Message"), True)
            for i, m in enumerate(f.message_type)
        ]
        self.files[f.name] = FileInfo(proto=f, enums=enums, messages=messages, services=[])

    def _enum(self, f, path, e, scope, swift_name, local_name) -> EnumInfo:
        full = f"{scope}.{e.name}"
        case_names = naming.swift_enum_case_names(e.name, [v.name for v in e.value])
        values, aliases, seen = [], [], set()
        for i, (v, case) in enumerate(zip(e.value, case_names)):
            ev = EnumValue(v.name, v.number, case, self.comment(f, path + (_ENUM_VALUE, i)))
            (aliases if v.number in seen else values).append(ev)
            seen.add(v.number)
        zero = next((v.case_name for v in values if v.number == 0), values[0].case_name)
        info = EnumInfo(
            full_name=full[1:],
            local_name=local_name or swift_name,
            swift_name=swift_name,
            c_type=naming.c_type_name(full[1:]),
            values=values,
            aliases=aliases,
            comment=self.comment(f, path),
            zero_case=zero,
        )
        self.enums[full] = info
        return info

    def _message(self, f, path, m, scope, swift_name, top_level, local_name=None) -> MessageInfo:
        full = f"{scope}.{m.name}"
        if m.extension or m.extension_range:
            raise GeneratorError(f"{full[1:]}: extensions are not supported")
        info = MessageInfo(
            full_name=full[1:],
            local_name=local_name or swift_name,
            swift_name=swift_name,
            c_type=naming.c_type_name(full[1:]),
            c_prefix=naming.c_function_prefix(full[1:]),
            top_level=top_level,
            descriptor=m,
            file=f,
            path=path,
            comment=self.comment(f, path),
            map_entry=m.options.map_entry,
        )
        self.messages[full] = info
        for i, e in enumerate(m.enum_type):
            local = naming.sanitize_type_name(e.name, "Enum")
            info.nested_enums.append(
                self._enum(f, path + (_MSG_ENUM, i), e, full, f"{swift_name}.{local}", local)
            )
        for i, n in enumerate(m.nested_type):
            local = naming.sanitize_type_name(n.name, "Message")
            info.nested_messages.append(
                self._message(f, path + (_MSG_NESTED, i), n, full, f"{swift_name}.{local}", False, local)
            )
        for fd in m.field:
            if fd.type == FDP.TYPE_GROUP:
                raise GeneratorError(f"{full[1:]}.{fd.name}: groups are not supported")
        return info

    def _service(self, f, index, s) -> ServiceInfo:
        prefix = naming.swift_type_prefix(
            f.package, f.options.swift_prefix if f.options.HasField("swift_prefix") else None
        )
        full = f"{f.package}.{s.name}" if f.package else s.name
        swift_name = prefix + naming.sanitize_type_name(s.name, "Service")
        if "." + full in self.messages or "." + full in self.enums:
            raise GeneratorError(f"service {full} has the same name as a message or enum")
        methods = []
        seen = set()
        for i, meth in enumerate(s.method):
            name = naming.swift_method_name(meth.name)
            if name in seen:
                raise GeneratorError(f"{full}: two methods map to the Swift name {name}")
            seen.add(name)
            kind = {
                (False, False): "unary",
                (False, True): "serverStreaming",
                (True, False): "clientStreaming",
                (True, True): "bidirectionalStreaming",
            }[(meth.client_streaming, meth.server_streaming)]
            methods.append((
                meth.name,
                name,
                self.messages[meth.input_type].swift_name,
                self.messages[meth.output_type].swift_name,
                kind,
                self.comment(f, (_FILE_SERVICE, index, _SERVICE_METHOD, i)),
            ))
        return ServiceInfo(full, swift_name, self.comment(f, (_FILE_SERVICE, index)), methods)

    # --- checks ---------------------------------------------------------------------

    def _check_recursion(self) -> None:
        """A Swift struct cannot hold itself through `Optional` or a oneof enum
        payload (it would have infinite size), so reject such messages with the
        field path instead of leaving Swift to report it. Through repeated and
        map fields recursion would be fine for Swift (arrays are indirect)."""

        def singular_edges(msg: MessageInfo):
            for fd in msg.descriptor.field:
                if fd.type == FDP.TYPE_MESSAGE and fd.label != FDP.LABEL_REPEATED:
                    yield fd.name, fd.type_name

        state: dict[str, int] = {}

        def visit(name: str, trail: list[tuple[str, str]]) -> None:
            state[name] = 1
            for field_name, target in singular_edges(self.messages[name]):
                step = trail + [(name, field_name)]
                if state.get(target) == 1:
                    start = next(i for i, (owner, _) in enumerate(step) if owner == target)
                    path = " -> ".join(f"{owner[1:]}.{f}" for owner, f in step[start:])
                    raise GeneratorError(
                        f"message {target[1:]} contains itself through {path}; "
                        "recursive messages are not supported yet"
                    )
                if state.get(target) is None:
                    visit(target, step)
            state[name] = 2

        for name in sorted(self.messages):
            if state.get(name) is None:
                visit(name, [])
