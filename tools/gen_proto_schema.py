#!/usr/bin/env python3
"""Generate ``src/bosun/api/schemas/proto.json`` from Kubernetes' published protobuf definitions.

kubectl sends protobuf bodies, and a decoder can only turn them into the JSON a client meant
if it knows, per message, each field's number, wire type and JSON spelling. The ``.proto``
files give numbers and types; the Go structs next to them (``types.go``) give what the proto
cannot: the JSON name, ``omitempty``, pointer-ness and ``,inline`` embedding. Both are read
here so the committed schema never drifts from Kubernetes by hand.

Usage::

    tools/gen_proto_schema.py [-o OUT] [--source-version TAG] DIR [DIR ...]

Each DIR holds one ``generated.proto`` and that package's ``*.go`` files: the committed
schema comes from checkouts of kubernetes/api and kubernetes/apimachinery at v0.32.13 with
``{core,apps,batch,networking,autoscaling,coordination,policy,scheduling,rbac,authentication,
authorization,storage,discovery,events,certificates}/v1``, ``autoscaling/v2`` and apimachinery's
``pkg/apis/meta/v1``, ``pkg/api/resource``, ``pkg/util/intstr`` and ``pkg/runtime``.
Unknown kinds (a group not listed) are refused by the decoder, so add a group here first.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCALARS = {
    "string", "bool", "bytes", "int32", "int64", "uint32", "uint64", "sint32", "sint64",
    "double", "float", "fixed32", "fixed64", "sfixed32", "sfixed64",
}

# Messages whose JSON form is not an object: Go types with their own MarshalJSON.
META = "k8s.io.apimachinery.pkg.apis.meta.v1."
SPECIAL = {
    META + "Time": "time",
    META + "MicroTime": "microtime",
    META + "Duration": "duration",
    META + "FieldsV1": "rawjson",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "rawjson",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "intorstring",
}

# Field flags stored in the schema (kept in sync with bosun.api.protobuf).
REPEATED, OMIT_ZERO, NULL_ABSENT, INLINE = 1, 2, 4, 8


@dataclass
class ProtoField:
    name: str
    number: int
    type: str
    label: str  # optional | repeated | required | map
    map_key: str = ""


@dataclass
class ProtoMessage:
    package: str
    name: str
    nullable: bool
    fields: list[ProtoField] = field(default_factory=list)

    @property
    def full(self) -> str:
        return f"{self.package}.{self.name}"


@dataclass
class GoField:
    json_name: str
    omitempty: bool
    pointer: bool
    nilable: bool  # pointer, slice or map: JSON null when nil
    inline: bool
    skip: bool


_FIELD_RE = re.compile(r"^(optional|repeated|required)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*(\[.*\])?;$")
_MAP_RE = re.compile(r"^map\s*<\s*([\w.]+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)\s*(\[.*\])?;$")


def parse_proto(text: str) -> tuple[str, list[ProtoMessage]]:
    """A small parser for go-to-protobuf output: package, (nested) messages and their fields."""
    package = ""
    messages: list[ProtoMessage] = []
    stack: list[ProtoMessage | None] = []
    comment: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("//"):
            comment.append(line)
            continue
        if not line:
            comment = []
            continue
        if line.startswith("package "):
            package = line[len("package "):].rstrip(";").strip()
        elif line.startswith("message ") and line.endswith("{"):
            name = line.split()[1]
            outer = [m.name for m in stack if m is not None]
            msg = ProtoMessage(package, ".".join([*outer, name]), any("+protobuf.nullable=true" in c for c in comment))
            messages.append(msg)
            stack.append(msg)
        elif line.endswith("{"):  # enum, oneof, service: not used by Kubernetes, tracked for balance
            stack.append(None)
        elif line == "}":
            if not stack:
                raise SystemExit(f"unbalanced '}}' in package {package}")
            stack.pop()
        elif stack and stack[-1] is not None:
            cur = stack[-1]
            m = _FIELD_RE.match(line)
            if m:
                cur.fields.append(ProtoField(m.group(3), int(m.group(4)), m.group(2), m.group(1)))
            else:
                mm = _MAP_RE.match(line)
                if mm:
                    cur.fields.append(ProtoField(mm.group(3), int(mm.group(4)), mm.group(2), "map", mm.group(1)))
                elif not line.startswith(("option ", "reserved ", "extensions ")):
                    raise SystemExit(f"cannot parse line in {package}.{cur.name}: {line}")
        comment = []
    return package, messages


_STRUCT_RE = re.compile(r"^type\s+(\w+)\s+struct\s*\{\s*$")
_TAG_RE = re.compile(r'(\w+):"([^"]*)"')


def parse_go_structs(text: str) -> dict[str, dict[int, GoField]]:
    """Go struct fields keyed by protobuf field number, from their `json`/`protobuf` tags."""
    out: dict[str, dict[int, GoField]] = {}
    current: dict[int, GoField] | None = None
    depth = 0
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip() if "`" not in raw else raw.strip()
        if current is None:
            m = _STRUCT_RE.match(line)
            if m:
                current = out.setdefault(m.group(1), {})
                depth = 1
            continue
        if line.startswith("//"):
            continue
        depth += line.count("{") - line.count("}")
        if depth <= 0:
            current = None
            continue
        if depth > 1 or "`" not in line:
            continue
        decl, _, rest = line.partition("`")
        tags = dict(_TAG_RE.findall(rest.rsplit("`", 1)[0]))
        if "protobuf" not in tags or tags["protobuf"] == "-":
            continue
        parts = decl.split()
        if len(parts) == 1:
            go_name, go_type = parts[0].rsplit(".", 1)[-1], parts[0]
        elif len(parts) == 2:
            go_name, go_type = parts
        else:
            continue
        pb = tags["protobuf"].split(",")
        try:
            number = int(pb[1])
        except (IndexError, ValueError):
            continue
        jparts = tags.get("json", "").split(",")
        jname = jparts[0]
        opts = set(jparts[1:])
        inline = "inline" in opts
        skip = jname == "-" and not inline
        pointer = go_type.startswith("*")
        nilable = pointer or go_type.startswith(("[]", "map["))
        current[number] = GoField(jname or go_name, "omitempty" in opts, pointer, nilable, inline, skip)
    return out


def group_of(directory: Path) -> str | None:
    """The API group from ``const GroupName = "..."`` (register.go) or ``+groupName=`` (doc.go)."""
    for go in sorted(directory.glob("*.go")):
        text = go.read_text()
        m = re.search(r'^const GroupName\s*=\s*"([^"]*)"', text, re.M) or re.search(
            r"^//\s*\+groupName=(\S*)", text, re.M
        )
        if m:
            return m.group(1)
    return None


def resolve(type_name: str, package: str, known: set[str]) -> str:
    if type_name in SCALARS:
        return type_name
    name = type_name.lstrip(".")
    if "." not in name or f"{package}.{name}" in known:
        name = f"{package}.{name}"
    if name not in known:
        raise SystemExit(f"unknown message type {type_name!r} in package {package}")
    return name


def build(dirs: list[Path], source_version: str) -> dict[str, Any]:
    messages: dict[str, ProtoMessage] = {}
    go_info: dict[str, dict[str, dict[int, GoField]]] = {}
    versions: dict[str, str] = {}
    for d in dirs:
        proto = d / "generated.proto"
        if not proto.is_file():
            raise SystemExit(f"{proto}: not found")
        package, msgs = parse_proto(proto.read_text())
        for m in msgs:
            messages[m.full] = m
        structs: dict[str, dict[int, GoField]] = {}
        for gofile in sorted(d.glob("*.go")):
            if gofile.name.endswith("_test.go") or gofile.name == "generated.pb.go":
                continue
            structs.update(parse_go_structs(gofile.read_text()))
        go_info[package] = structs
        group = group_of(d)
        version = package.rsplit(".", 1)[-1]
        if group is not None and re.fullmatch(r"v\d+((alpha|beta)\d+)?", version):
            versions[f"{group}/{version}" if group else version] = package

    known = set(messages)
    out_msgs: dict[str, Any] = {}
    missing_go = 0
    for full, msg in sorted(messages.items()):
        if full in SPECIAL:
            continue
        tags = go_info.get(msg.package, {}).get(msg.name, {})
        fields: dict[str, list[Any]] = {}
        for f in msg.fields:
            go = tags.get(f.number)
            if go is None:
                missing_go += 1
                print(f"  no Go tag: {full}.{f.name} = {f.number}", file=sys.stderr)
                go = GoField(f.name, True, False, f.label in ("repeated", "map"), False, False)
            if go.skip:
                continue
            entry = field_entry(f, go, msg.package, known, messages)
            fields[str(f.number)] = entry
        out_msgs[full] = {"fields": fields, **({"wrapper": True} if msg.nullable else {})}
    if missing_go:
        print(f"warning: {missing_go} proto fields had no Go struct tag; assumed omitempty", file=sys.stderr)
    return {
        "source": source_version,
        "versions": dict(sorted(versions.items())),
        "messages": out_msgs,
    }


def kind_of(type_name: str, package: str, known: set[str]) -> tuple[str, str]:
    """(kind, message ref): a scalar type, a special JSON type, or ``message``."""
    ref = resolve(type_name, package, known)
    if ref in SCALARS:
        return ref, ""
    if ref in SPECIAL:
        return SPECIAL[ref], ""
    return "message", ref


def field_entry(
    f: ProtoField, go: GoField, package: str, known: set[str], messages: dict[str, ProtoMessage]
) -> list[Any]:
    flags = 0
    if f.label == "repeated":
        flags |= REPEATED
    if go.inline:
        flags |= INLINE
    if f.label == "map":
        kkind, _ = kind_of(f.map_key, package, known)
        vkind, vref = kind_of(f.type, package, known)
        if not go.omitempty:
            flags |= NULL_ABSENT
        return [go.json_name, "map", flags, vref, kkind, vkind]
    kind, ref = kind_of(f.type, package, known)
    wrapper = kind == "message" and messages[ref].nullable
    scalar = kind in SCALARS
    if scalar and f.label != "repeated" and go.omitempty and not go.pointer:
        flags |= OMIT_ZERO
    if (go.nilable or f.label == "repeated" or wrapper or kind == "bytes") and not go.omitempty and not go.inline:
        flags |= NULL_ABSENT
    return [go.json_name, kind, flags, ref]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", type=Path,
                    help="directories holding generated.proto (+ the package's .go files)")
    ap.add_argument("-o", "--output", type=Path,
                    default=Path(__file__).resolve().parent.parent / "src/bosun/api/schemas/proto.json")
    ap.add_argument("--source-version", default="",
                    help="the Kubernetes tag the files come from, recorded in the output")
    args = ap.parse_args(argv)
    schema = build(args.dirs, args.source_version)
    args.output.write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {args.output}: {len(schema['messages'])} messages, {len(schema['versions'])} group versions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
