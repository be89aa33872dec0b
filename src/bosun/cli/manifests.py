"""Read manifests the way ``kubectl -f`` does: files, directories, stdin; YAML streams, JSON, Lists."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from bosun.cli.common import fail

_EXTENSIONS = (".yaml", ".yml", ".json")
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader when built


@dataclass(slots=True)
class Manifest:
    source: str  # file name (or "STDIN") for messages
    obj: dict[str, Any]


def _files(path: str, recursive: bool) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        pattern = "**/*" if recursive else "*"
        return sorted(f for f in p.glob(pattern) if f.is_file() and f.suffix in _EXTENSIONS)
    if not p.exists():
        fail(f'error: the path "{path}" does not exist')
    return [p]


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def parse_text(text: str, source: str) -> list[dict[str, Any]]:
    """Every object in a YAML stream or JSON document, with ``List`` kinds flattened."""
    docs: list[Any]
    stripped = text.lstrip()
    try:
        if stripped.startswith(("{", "[")):
            try:
                docs = [orjson.loads(text)]
            except orjson.JSONDecodeError:
                docs = list(yaml.load_all(text, Loader=_Loader))
        else:
            docs = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as e:
        fail(f"error: error parsing {source}: {_one_line(e)}")
    out: list[dict[str, Any]] = []
    for doc in docs:
        _flatten(doc, source, out)
    return out


def _flatten(doc: Any, source: str, out: list[dict[str, Any]]) -> None:
    if doc is None:
        return
    if isinstance(doc, list):
        for d in doc:
            _flatten(d, source, out)
        return
    if not isinstance(doc, dict):
        fail(f"error: error parsing {source}: expected an object, got {type(doc).__name__}")
    kind = str(doc.get("kind") or "")
    if kind.endswith("List") and isinstance(doc.get("items"), list):
        for item in doc["items"]:
            _flatten(item, source, out)
        return
    if not doc.get("apiVersion") or not kind:
        missing = "apiVersion" if not doc.get("apiVersion") else "kind"
        fail(f'error: error validating "{source}": error validating data: {missing} not set')
    out.append(doc)


def load(paths: tuple[str, ...] | list[str], recursive: bool = False, verb: str = "apply") -> list[Manifest]:
    if not paths:
        fail("error: must specify one of -f and -k")
    out: list[Manifest] = []
    for path in paths:
        if path == "-":
            text, source = sys.stdin.read(), "STDIN"
            out.extend(Manifest(source, o) for o in parse_text(text, source))
            continue
        for f in _files(path, recursive):
            try:
                text = f.read_text()
            except (OSError, UnicodeDecodeError) as e:
                fail(f"error: error reading {f}: {_one_line(e)}")
            out.extend(Manifest(str(f), o) for o in parse_text(text, str(f)))
    if not out:
        fail(f"error: no objects passed to {verb}")
    return out

