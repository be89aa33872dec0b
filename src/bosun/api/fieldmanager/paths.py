"""Field paths and sets, in the form ``managedFields`` carries them (FieldsV1).

A path is a tuple of elements, each ``("f", name)`` (a struct field or map key),
``("k", keys_json)`` (an item of a list keyed by some of its fields), ``("v", value_json)``
(an item of a list treated as a set) or ``("i", index)``; ``(".",)`` after an item path
means "the item itself". A set of paths is what one manager owns: it is stored as the
trie FieldsV1 describes (``{"f:spec": {"f:replicas": {}}}``) and compared and diffed as a
plain Python set of tuples, which is all the apply and update logic needs.
"""

from __future__ import annotations

import json
from typing import Any

Element = tuple[str, str]
Path = tuple[Element, ...]
ITEM: Element = (".", "")


def to_fields(paths: set[Path]) -> dict[str, Any]:
    """The FieldsV1 trie of a set of paths."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for kind, value in path:
            key = "." if kind == "." else f"{kind}:{value}"
            node = node.setdefault(key, {})
    return root


def from_fields(fields: Any) -> set[Path]:
    """The paths of a FieldsV1 trie (the leaves, and the items marked with ``.``)."""
    out: set[Path] = set()

    def walk(node: dict[str, Any], prefix: Path) -> None:
        for key, child in node.items():
            if key == ".":
                out.add((*prefix, ITEM))
                continue
            kind, _, value = key.partition(":")
            path = (*prefix, (kind, value))
            if isinstance(child, dict) and child:
                walk(child, path)
            else:
                out.add(path)

    if isinstance(fields, dict):
        walk(fields, ())
    return out


def render(path: Path) -> str:
    """A path as upstream's conflict messages print it: ``.spec.containers[name="c"].image``."""
    out = ""
    for kind, value in path:
        if kind == "f":
            out += f".{value}"
        elif kind == "k":
            keys = json.loads(value)
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        elif kind == "v":
            out += f"[={value}]"
        elif kind == "i":
            out += f"[{value}]"
    return out or "."


_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode  # one encoder, not one per call


def _json_scalar(value: Any) -> str:
    """``_JSON(value)``, without the encoder for what list keys hold: names, paths, ports."""
    if type(value) is str and value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return '"' + value + '"'
    if type(value) is int:
        return str(value)
    return _JSON(value)


def item_key(item: dict[str, Any], keys: tuple[str, ...]) -> str:
    """The ``k:`` element of an item of a keyed list (compact JSON, keys sorted)."""
    if len(keys) == 1:
        key = keys[0]
        return "{" + _json_scalar(key) + ":" + _json_scalar(item[key]) + "}" if key in item else "{}"
    return _JSON({k: item.get(k) for k in sorted(keys) if k in item})


def set_value(value: Any) -> str:
    """The ``v:`` element of an item of a set list."""
    return _JSON(value)


def overlaps(a: Path, b: Path) -> bool:
    """One path is the other or lies under it (owning a struct's field and the struct)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


# The stored trie itself, edited without turning it into a set of paths: most writes touch
# a few fields of an entry that owns hundreds, and the trie they read is shared with the
# stored object (and the watch cache), so edits copy only the nodes along the path.

def _key(element: Element) -> str:
    kind, value = element
    return "." if kind == "." else f"{kind}:{value}"


def trie_has(fields: dict[str, Any], path: Path) -> bool:
    """``path`` is owned: it ends on an empty node of the trie."""
    node: Any = fields
    for element in path:
        if not isinstance(node, dict):
            return False
        node = node.get(_key(element))
        if node is None:
            return False
    return not node


def trie_without(fields: dict[str, Any], paths: Any) -> dict[str, Any]:
    """A copy of the trie without ``paths``; inner nodes left empty go too (an empty node
    would read as an owned leaf)."""
    for path in paths:
        fields = _remove(fields, path, 0)
    return fields


def _remove(node: dict[str, Any], path: Path, i: int) -> dict[str, Any]:
    key = _key(path[i])
    child = node.get(key)
    if child is None:
        return node
    if i == len(path) - 1:
        if isinstance(child, dict) and child:
            return node  # an inner node: the path is not owned as a leaf
        out = dict(node)
        del out[key]
        return out
    out = dict(node)
    if not isinstance(child, dict) or not child:
        return node  # a leaf above the path: the path itself is not owned
    rest = _remove(child, path, i + 1)
    if rest:
        out[key] = rest
    else:
        del out[key]
    return out


def trie_with(fields: dict[str, Any], paths: Any) -> dict[str, Any]:
    """A copy of the trie owning ``paths`` too, each level kept in sorted order (as
    :func:`to_fields` writes it and upstream serializes it)."""
    for path in paths:
        fields = _add(fields, path, 0)
    return fields


def _add(node: dict[str, Any], path: Path, i: int) -> dict[str, Any]:
    key = _key(path[i])
    child = node.get(key)
    if i == len(path) - 1:
        if child is not None:
            return node
        return dict(sorted({**node, key: {}}.items()))
    added = _add(child if isinstance(child, dict) else {}, path, i + 1)
    if child is None:
        return dict(sorted({**node, key: added}.items()))
    return {**node, key: added}
