"""``./dev docs``: write docs/rpc-reference.md from the proto files' comments.

The reference is generated, never edited by hand, so it cannot drift from the contract: the
services, RPCs, messages, fields and enums come from the descriptors ``protoc`` builds with
source info (which carry each element's comments), and each RPC's scope comes from
``billing_svc.api.auth.METHOD_SCOPES``, the table the server itself enforces. CI regenerates it
and fails when the committed file differs.

    python -m tools.rpc_reference [--output PATH]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from billing_svc.api.auth import METHOD_SCOPES

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
# google/api/annotations.proto and http.proto, for the google.api.http options (vendored).
VENDORED_ROOT = ROOT / "third_party" / "googleapis"
OUTPUT = ROOT / "docs" / "rpc-reference.md"

# Paths into FileDescriptorProto (descriptor.proto's field numbers), as SourceCodeInfo uses them.
_MESSAGE, _ENUM, _SERVICE = 4, 5, 6
_FIELD, _NESTED, _NESTED_ENUM = 2, 3, 4
_METHOD = 2
_VALUE = 2

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    _F.TYPE_DOUBLE: "double",
    _F.TYPE_FLOAT: "float",
    _F.TYPE_INT64: "int64",
    _F.TYPE_UINT64: "uint64",
    _F.TYPE_INT32: "int32",
    _F.TYPE_FIXED64: "fixed64",
    _F.TYPE_FIXED32: "fixed32",
    _F.TYPE_BOOL: "bool",
    _F.TYPE_STRING: "string",
    _F.TYPE_BYTES: "bytes",
    _F.TYPE_UINT32: "uint32",
    _F.TYPE_SFIXED32: "sfixed32",
    _F.TYPE_SFIXED64: "sfixed64",
    _F.TYPE_SINT32: "sint32",
    _F.TYPE_SINT64: "sint64",
}


_Locations = dict[tuple[int, ...], descriptor_pb2.SourceCodeInfo.Location]


class ContractError(Exception):
    """The proto files cannot be compiled, or an RPC has no scope."""


@dataclass(frozen=True)
class _Message:
    name: str  # within the package: "Money", or "Outer.Inner" for a nested message
    proto: descriptor_pb2.DescriptorProto
    comment: str
    field_comments: tuple[str, ...]


@dataclass(frozen=True)
class _Enum:
    name: str
    proto: descriptor_pb2.EnumDescriptorProto
    comment: str
    value_comments: tuple[str, ...]


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def descriptors() -> descriptor_pb2.FileDescriptorSet:
    """The project's proto files compiled with their comments (``--include_source_info``)."""
    well_known = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "descriptors.pb"
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"-I{VENDORED_ROOT}",
                f"-I{well_known}",
                "--include_source_info",
                f"--descriptor_set_out={out}",
                *(str(path.relative_to(PROTO_ROOT)) for path in proto_files()),
            ]
        )
        if status != 0:
            raise ContractError(f"protoc failed (exit {status}); its errors are above")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _comment(location: descriptor_pb2.SourceCodeInfo.Location | None) -> str:
    """A comment's text: protoc keeps what follows ``//``, so one leading space goes."""
    if location is None:
        return ""
    text = location.leading_comments
    if location.trailing_comments.strip():
        text = (
            f"{text}\n{location.trailing_comments}" if text.strip() else location.trailing_comments
        )
    lines = [line[1:] if line.startswith(" ") else line for line in text.splitlines()]
    return "\n".join(lines).strip()


class _Package:
    """Every service, message and enum of the proto files, with its comments."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.services: list[
            tuple[descriptor_pb2.ServiceDescriptorProto, str, tuple[str, ...], str]
        ] = []
        self.messages: dict[str, _Message] = {}
        self.enums: dict[str, _Enum] = {}
        self.package = ""
        for file in files.file:
            if self.package and file.package != self.package:
                raise ContractError(
                    f"{file.name} is in package {file.package}, not "
                    f"{self.package}: one reference per package"
                )
            self.package = file.package
            where = {tuple(loc.path): loc for loc in file.source_code_info.location}
            for index, service in enumerate(file.service):
                path = (_SERVICE, index)
                self.services.append(
                    (
                        service,
                        _comment(where.get(path)),
                        tuple(
                            _comment(where.get((*path, _METHOD, m)))
                            for m in range(len(service.method))
                        ),
                        f"{file.package}.{service.name}",
                    )
                )
            for index, message in enumerate(file.message_type):
                self._add_message(message, message.name, (_MESSAGE, index), where)
            for index, enum in enumerate(file.enum_type):
                self._add_enum(enum, enum.name, (_ENUM, index), where)

    def _add_message(
        self,
        message: descriptor_pb2.DescriptorProto,
        name: str,
        path: tuple[int, ...],
        where: _Locations,
    ) -> None:
        self.messages[name] = _Message(
            name,
            message,
            _comment(where.get(path)),
            tuple(_comment(where.get((*path, _FIELD, f))) for f in range(len(message.field))),
        )
        for index, nested in enumerate(message.nested_type):
            self._add_message(nested, f"{name}.{nested.name}", (*path, _NESTED, index), where)
        for index, enum in enumerate(message.enum_type):
            self._add_enum(enum, f"{name}.{enum.name}", (*path, _NESTED_ENUM, index), where)

    def _add_enum(
        self,
        enum: descriptor_pb2.EnumDescriptorProto,
        name: str,
        path: tuple[int, ...],
        where: _Locations,
    ) -> None:
        self.enums[name] = _Enum(
            name,
            enum,
            _comment(where.get(path)),
            tuple(_comment(where.get((*path, _VALUE, v))) for v in range(len(enum.value))),
        )

    def local(self, type_name: str) -> str | None:
        """``.as2aas.billing.v1.Money`` -> ``Money``; ``None`` for another package's type."""
        prefix = f".{self.package}."
        return type_name.removeprefix(prefix) if type_name.startswith(prefix) else None


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _link(name: str) -> str:
    return f"[{name}](#{_anchor(name)})"


def _cell(text: str) -> str:
    """A comment as one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _type(package: _Package, field: descriptor_pb2.FieldDescriptorProto) -> str:
    if field.type in (_F.TYPE_MESSAGE, _F.TYPE_ENUM):
        local = package.local(field.type_name)
        if local is None:
            shown = f"`{field.type_name.lstrip('.')}`"
        else:
            entry = package.messages.get(local)
            if entry is not None and entry.proto.options.map_entry:
                key, value = entry.proto.field
                return f"map<{_type(package, key)}, {_type(package, value)}>"
            shown = _link(local)
    else:
        shown = f"`{_SCALARS[field.type]}`"
    if field.label == _F.LABEL_REPEATED:
        return f"repeated {shown}"
    if field.proto3_optional:
        return f"optional {shown}"
    return shown


def _fields(package: _Package, message: _Message) -> Iterator[str]:
    if not message.proto.field:
        yield "No fields."
        return
    yield "| field | type | description |"
    yield "|---|---|---|"
    for field, comment in zip(message.proto.field, message.field_comments, strict=True):
        yield f"| `{field.name}` = {field.number} | {_type(package, field)} | {_cell(comment)} |"


def _message(package: _Package, message: _Message, level: str) -> Iterator[str]:
    yield f"{level} {message.name}"
    yield ""
    if message.comment:
        yield message.comment
        yield ""
    yield from _fields(package, message)
    yield ""


def _enum(enum: _Enum) -> Iterator[str]:
    yield f"### {enum.name}"
    yield ""
    if enum.comment:
        yield enum.comment
        yield ""
    yield "| value | number | description |"
    yield "|---|---|---|"
    for value, comment in zip(enum.proto.value, enum.value_comments, strict=True):
        yield f"| `{value.name}` | {value.number} | {_cell(comment)} |"
    yield ""


def scope_of(service: str, method: str) -> str:
    """The scope the server requires for ``service``'s ``method``."""
    scope = METHOD_SCOPES.get(f"/{service}/{method}")
    if scope is None:
        raise ContractError(
            f"{service}.{method} has no scope in "
            "billing_svc.api.auth.METHOD_SCOPES (the server refuses it)"
        )
    return scope


def _signature(method: descriptor_pb2.MethodDescriptorProto, package: _Package) -> str:
    def side(type_name: str, streaming: bool) -> str:
        return ("stream " if streaming else "") + (package.local(type_name) or type_name)

    return (
        f"rpc {method.name}({side(method.input_type, method.client_streaming)}) "
        f"returns ({side(method.output_type, method.server_streaming)})"
    )


def _http(method: descriptor_pb2.MethodDescriptorProto) -> str:
    """The method's ``google.api.http`` GET path, for a transcoder (docs/rest.md), if any."""
    if not method.options.HasExtension(annotations_pb2.http):
        return ""
    rule = method.options.Extensions[annotations_pb2.http]
    return f" · HTTP `GET {rule.get}` (via a transcoder)" if rule.get else ""


def render(files: descriptor_pb2.FileDescriptorSet | None = None) -> str:
    """The whole reference as Markdown."""
    package = _Package(files if files is not None else descriptors())
    shown_with_rpc: set[str] = set()
    for service, _, _, _ in package.services:
        for method in service.method:
            for type_name in (method.input_type, method.output_type):
                local = package.local(type_name)
                if local is not None:
                    shown_with_rpc.add(local)
    lines = [
        "# RPC reference",
        "",
        "<!-- Generated by `./dev docs` (tools/rpc_reference.py) from the comments in proto/ "
        "and the scopes in billing_svc.api.auth.METHOD_SCOPES. Do not edit: change the proto "
        "comments and run ./dev docs. -->",
        "",
        f"Package `{package.package}`, from `proto/`. Every RPC needs "
        "`authorization: Bearer <token>` metadata carrying the scope shown with it (`admin` "
        "implies every scope); health checking and reflection need none. How errors, "
        "idempotency (`request_id`), paging, money and time are handled everywhere is in "
        "[the domain rules](domain.md#conventions-of-the-api); what each rule means for "
        "billing is in the rest of [domain.md](domain.md).",
        "",
        "Types outside the package: `google.protobuf.Timestamp` (UTC; RFC 3339 text in gRPC-JSON).",
        "",
        "## Contents",
        "",
    ]
    for service, _, _, _ in package.services:
        lines.append(
            f"- {_link(service.name)}: "
            + ", ".join(_link(method.name) for method in service.method)
        )
    lines += ["- [Messages](#messages)", "- [Enums](#enums)", ""]
    rendered: set[str] = set()
    for service, comment, method_comments, full_name in package.services:
        lines += [f"## {service.name}", ""]
        if comment:
            lines += [comment, ""]
        lines += ["| RPC | scope | request | response |", "|---|---|---|---|"]
        for method in service.method:
            lines.append(
                f"| {_link(method.name)} | `{scope_of(full_name, method.name)}` | "
                f"{_link(package.local(method.input_type) or method.input_type)} | "
                f"{_link(package.local(method.output_type) or method.output_type)} |"
            )
        lines.append("")
        for method, method_comment in zip(service.method, method_comments, strict=True):
            lines += [
                f"### {method.name}",
                "",
                f"`{_signature(method, package)}` · scope "
                f"`{scope_of(full_name, method.name)}`{_http(method)}",
                "",
            ]
            if method_comment:
                lines += [method_comment, ""]
            for type_name in (method.input_type, method.output_type):
                local = package.local(type_name)
                if local is None or local in rendered:
                    continue
                rendered.add(local)
                lines += list(_message(package, package.messages[local], "####"))
    lines += ["## Messages", ""]
    for name, message in package.messages.items():
        if name not in shown_with_rpc and not message.proto.options.map_entry:
            lines += list(_message(package, message, "###"))
    lines += ["## Enums", ""]
    for enum in package.enums.values():
        lines += list(_enum(enum))
    _check_anchors(lines)
    return "\n".join(lines).rstrip("\n") + "\n"


def _check_anchors(lines: list[str]) -> None:
    """Every heading's anchor is unique, so every generated link goes where it says."""
    seen: set[str] = set()
    for line in lines:
        if line.startswith("#"):
            anchor = _anchor(line.lstrip("#").strip())
            if anchor in seen:
                raise ContractError(f"two headings would share the anchor #{anchor}")
            seen.add(anchor)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev docs", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=OUTPUT,
        help=f"where to write it (default: {OUTPUT.relative_to(ROOT)})",
    )
    args = parser.parse_args(argv)
    try:
        text = render()
    except ContractError as exc:
        print(f"rpc reference: {exc}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    output = args.output.resolve()
    print(f"wrote {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
