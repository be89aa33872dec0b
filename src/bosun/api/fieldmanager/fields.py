"""An object's fields as paths, by the merge rules of its kind, and the edits on them.

The rules are the strategic-merge metadata (:mod:`bosun.api.patch.schema`), read as
server-side apply reads ``x-kubernetes-list-type``: a list merged by a key is an
associative list whose items are owned one by one, a list merged without a key is a set,
any other list is atomic (owned whole); maps and structs are owned key by key.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from bosun.api.fieldmanager.paths import ITEM, Path, item_key, set_value
from bosun.api.patch.schema import FieldMeta, Schema

MISSING = object()
_EMPTY: Schema = {}


def _meta(schema: Schema, name: str) -> FieldMeta | None:
    return schema.get(name)


def leaves(obj: dict[str, Any], schema: Schema, prefix: Path = ()) -> set[Path]:
    """Every owned path of ``obj``: its leaves, and the items of its associative lists."""
    out: set[Path] = set()
    for name, value in obj.items():
        if value is None:
            continue
        path = (*prefix, ("f", name))
        meta = _meta(schema, name)
        if isinstance(value, dict) and value:
            out |= leaves(value, meta.sub if meta else _EMPTY, path)
        elif isinstance(value, list) and value and meta is not None and meta.merge:
            if meta.key and all(isinstance(i, dict) and meta.key in i for i in value):
                for item in value:
                    item_path = (*path, ("k", item_key(item, (meta.key,))))
                    out.add((*item_path, ITEM))
                    out |= leaves(item, meta.sub, item_path)
            elif not meta.key:
                out.update((*path, ("v", set_value(item))) for item in value)
            else:
                out.add(path)
        else:
            out.add(path)
    return out


def _shape(value: Any, meta: FieldMeta | None) -> str:
    """How :func:`leaves` reads a value: absent, a map of fields, a keyed (associative)
    list, a set list, or one owned leaf."""
    if value is None:
        return "none"
    if isinstance(value, dict) and value:
        return "map"
    if isinstance(value, list) and value and meta is not None and meta.merge:
        if meta.key and all(isinstance(i, dict) and meta.key in i for i in value):
            return "keyed"
        if not meta.key:
            return "set"
    return "leaf"


def _value_leaves(value: Any, meta: FieldMeta | None, path: Path) -> set[Path]:
    return leaves({path[-1][1]: value}, {path[-1][1]: meta} if meta else _EMPTY, path[:-1])


def diff(old: dict[str, Any], new: dict[str, Any], schema: Schema) -> tuple[set[Path], set[Path]]:
    """(paths ``new`` sets or changes, paths it no longer has), as comparing
    ``leaves(old)`` with ``leaves(new)`` leaf by leaf would say; equal subtrees are skipped
    with one comparison, so a write costs what it changes, not the size of the object."""
    changed: set[Path] = set()
    removed: set[Path] = set()
    _diff_map(old, new, schema, (), changed, removed)
    return changed, removed


def _diff_map(old: dict[str, Any], new: dict[str, Any], schema: Schema, prefix: Path,
              changed: set[Path], removed: set[Path]) -> None:
    for name in old.keys() | new.keys():
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        _diff_value(before, after, _meta(schema, name), (*prefix, ("f", name)), changed, removed)


def _diff_value(before: Any, after: Any, meta: FieldMeta | None, path: Path,
                changed: set[Path], removed: set[Path]) -> None:
    shape = _shape(before, meta)
    if shape != _shape(after, meta):  # different shapes own disjoint paths
        removed |= _value_leaves(before, meta, path)
        changed |= _value_leaves(after, meta, path)
    elif shape == "map":
        _diff_map(before, after, meta.sub if meta else _EMPTY, path, changed, removed)
    elif shape == "keyed":
        assert meta is not None and meta.key is not None
        keys = (meta.key,)
        olds: dict[str, Any] = {}
        news: dict[str, Any] = {}
        for item in before:
            olds.setdefault(item_key(item, keys), item)
        for item in after:
            news.setdefault(item_key(item, keys), item)
        for key in olds.keys() | news.keys():
            item_path = (*path, ("k", key))
            if key not in olds:
                changed.add((*item_path, ITEM))
                changed |= leaves(news[key], meta.sub, item_path)
            elif key not in news:
                removed.add((*item_path, ITEM))
                removed |= leaves(olds[key], meta.sub, item_path)
            elif olds[key] != news[key]:
                _diff_map(olds[key], news[key], meta.sub, item_path, changed, removed)
    elif shape == "set":
        was_set = {set_value(i) for i in before}
        now_set = {set_value(i) for i in after}
        changed.update((*path, ("v", v)) for v in now_set - was_set)
        removed.update((*path, ("v", v)) for v in was_set - now_set)
    elif shape == "leaf":
        changed.add(path)


def fields_of(obj: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """The FieldsV1 trie of ``leaves(obj)``, built in one walk (a create owns everything);
    names are visited sorted, so each level comes out in the order :func:`to_fields` writes."""
    out: dict[str, Any] = {}
    _fill(out, obj, schema)
    return out


# The trie's keys, one string object per distinct key however many stored tries hold it
# (a create's trie holds a couple of hundred): the memory is paid once, and the collector,
# which visits every key of every trie it scans, finds the same few strings in its cache
# instead of a fresh copy per object (measured: about half the time of a young collection
# of new pods' tries). Bounded, as names come from clients (label and annotation keys).
_KEYS: dict[str, str] = {}
_KEYS_MAX = 16384


def _shared(prefix: str, text: str) -> str:
    """``prefix + text``, the one kept in :data:`_KEYS` while there is room."""
    k = prefix + text
    if len(_KEYS) < _KEYS_MAX:
        return _KEYS.setdefault(k, k)
    return _KEYS.get(k, k)


def _fill(out: dict[str, Any], obj: dict[str, Any], schema: Schema) -> None:
    """:func:`fields_of` into ``out``: each node is built where it goes, never copied."""
    known = _FIELD_KEYS.get
    for name in sorted(obj):
        value = obj[name]
        fkey = known(name) or _field_key(name)
        t = type(value)
        if t is str or t is int or t is bool:  # most fields: a leaf, decided without isinstance
            out[fkey] = {}
            continue
        if value is None:
            continue
        if isinstance(value, dict):
            if not value:
                out[fkey] = {}
                continue
            meta = schema.get(name)
            sub: dict[str, Any] = {}
            _fill(sub, value, meta.sub if meta is not None else _EMPTY)
            if sub:  # a map of only nulls owns nothing
                out[fkey] = sub
            continue
        if isinstance(value, list) and value:
            meta = schema.get(name)
            if meta is not None and meta.merge:
                key = meta.key
                if not key:
                    out[fkey] = {_shared("v:", v): {} for v in sorted({set_value(i) for i in value})}
                    continue
                if _keyed(value, key):
                    item_schema = meta.sub
                    items: dict[str, Any] = {}
                    for item in value:
                        node: dict[str, Any] = {".": {}}
                        _fill(node, item, item_schema)
                        items[_item_key(key, item[key])] = node
                    out[fkey] = dict(sorted(items.items())) if len(items) > 1 else items
                    continue
        out[fkey] = {}


def _keyed(items: list[Any], key: str) -> bool:
    """Every item a map holding ``key`` (an associative list's items are owned one by one)."""
    for i in items:
        if not isinstance(i, dict) or key not in i:
            return False
    return True


# An associative list's ``k:`` keys by (key field, value): the same container names, env
# names, ports and mount paths come back in every pod, and building the compact JSON of
# each costs more than the walk of the item itself. Only str and int values are kept
# (True == 1 and 1.0 == 1 as dict keys, but not in JSON); bounded like _KEYS.
_ITEM_KEYS: dict[tuple[str, str | int], str] = {}


def _item_key(key: str, value: Any) -> str:
    t = type(value)
    if t is not str and t is not int:
        return _shared("k:", item_key({key: value}, (key,)))
    k = _ITEM_KEYS.get((key, value))
    if k is None:
        k = _shared("k:", item_key({key: value}, (key,)))
        if len(_ITEM_KEYS) < _KEYS_MAX:
            _ITEM_KEYS[(key, value)] = k
    return k


# ``"f:" + name`` by name, for the walk's commonest key (looked up by the bare name: no
# string is built to find it).
_FIELD_KEYS: dict[str, str] = {}


def _field_key(name: str) -> str:
    k = _shared("f:", name)
    if len(_FIELD_KEYS) < _KEYS_MAX:
        _FIELD_KEYS[name] = k
    return k


def value_at(obj: Any, path: Path) -> Any:
    """The value at ``path`` (an item for an item path), or MISSING."""
    node = obj
    for kind, value in path:
        if kind == "f":
            if not isinstance(node, dict) or value not in node:
                return MISSING
            node = node[value]
        elif kind == ".":
            return node
        elif kind == "k":
            if not isinstance(node, list):
                return MISSING
            found = _find_keyed(node, value)
            if found is None:
                return MISSING
            node = found
        elif kind == "v":
            if not isinstance(node, list) or not any(set_value(i) == value for i in node):
                return MISSING
            return value
        else:
            return MISSING
    return node


def _find_keyed(items: list[Any], key_json: str) -> dict[str, Any] | None:
    keys = json.loads(key_json)
    for item in items:
        if isinstance(item, dict) and all(item.get(k) == v for k, v in keys.items()):
            return item
    return None


def merge(live: Any, config: Any, meta: FieldMeta | None) -> Any:
    """``config`` applied onto ``live``: structs and maps merge field by field, associative
    lists item by item (new items appended), sets by union, anything else is replaced."""
    if isinstance(live, dict) and isinstance(config, dict):
        sub = meta.sub if meta else _EMPTY
        out = dict(live)
        for name, value in config.items():
            if value is None:
                continue
            out[name] = merge(live.get(name), value, _meta(sub, name))
        return out
    if isinstance(live, list) and isinstance(config, list) and meta is not None and meta.merge:
        if meta.key and all(isinstance(i, dict) and meta.key in i for i in [*live, *config]):
            merged = list(live)
            for item in config:
                for i, have in enumerate(merged):
                    if have.get(meta.key) == item.get(meta.key):
                        merged[i] = merge(have, item, FieldMeta(sub=meta.sub))
                        break
                else:
                    merged.append(copy.deepcopy(item))
            return merged
        if not meta.key:
            seen = {set_value(i) for i in live}
            return [*live, *(i for i in config if set_value(i) not in seen)]
    return copy.deepcopy(config)


def remove(obj: dict[str, Any], path: Path) -> None:
    """Delete the field or item at ``path`` in place (nothing if it is not there)."""
    if not path:
        return
    parent = value_at(obj, path[:-1]) if len(path) > 1 else obj
    if path[-1] == ITEM:
        container = value_at(obj, path[:-2]) if len(path) > 2 else obj
        item = value_at(obj, path[:-1])
        if isinstance(container, list) and item is not MISSING:
            container[:] = [i for i in container if i is not item]
        return
    kind, value = path[-1]
    if kind == "f" and isinstance(parent, dict):
        parent.pop(value, None)
    elif kind == "v" and isinstance(parent, list):
        parent[:] = [i for i in parent if set_value(i) != value]
