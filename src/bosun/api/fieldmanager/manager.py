"""Who owns which fields (``metadata.managedFields``), kept on every write, and server-side apply.

Every write records its manager (``fieldManager``, or the client's User-Agent as upstream
derives it): an *Update* takes ownership of the fields it changed from whoever had them; an
*Apply* declares the whole set of fields its manager wants, merges them into the object,
removes the fields that manager alone had and no longer wants, and is refused with a
conflict when it would change a field another manager set to something else (unless
forced, which takes the field over). Status writes are tracked apart (``subresource:
status``), so a controller's status never conflicts with a user's spec.
"""

from __future__ import annotations

import copy
from typing import Any

from bosun.api.fieldmanager.fields import MISSING, diff, fields_of, leaves, merge, remove, value_at
from bosun.api.fieldmanager.paths import ITEM, Path, from_fields, render, to_fields, trie_has, trie_with, trie_without
from bosun.api.objects import now_rfc3339
from bosun.api.patch.schema import FieldMeta, Schema

APPLY, UPDATE = "Apply", "Update"
# Fields nobody owns: identity and what the server sets.
_SERVER_META = frozenset({"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                          "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"})


class Entry:
    """One manager's fields, read lazily: an update that changes a few fields edits the
    stored FieldsV1 trie in place of parsing it into paths and writing it back."""

    __slots__ = ("_fields", "_paths", "api_version", "manager", "operation", "subresource", "time")

    def __init__(self, manager: str, operation: str, api_version: str, subresource: str = "", time: str = "",
                 paths: set[Path] | None = None, fields: dict[str, Any] | None = None) -> None:
        self.manager, self.operation, self.api_version = manager, operation, api_version
        self.subresource, self.time = subresource, time
        self._paths = paths if paths is not None or fields is not None else set()
        self._fields = fields if paths is None else None

    @property
    def paths(self) -> set[Path]:
        if self._paths is None:
            self._paths = from_fields(self._fields)
        return self._paths

    @paths.setter
    def paths(self, value: set[Path]) -> None:
        self._paths, self._fields = value, None

    def fields(self) -> dict[str, Any]:
        if self._fields is None:
            self._fields = to_fields(self._paths or set())
        return self._fields

    def empty(self) -> bool:
        return not self._fields if self._paths is None else not self._paths

    def discard(self, paths: set[Path]) -> None:
        if self._paths is not None:
            self.paths = self._paths - paths
        elif self._fields and any(trie_has(self._fields, p) for p in paths):
            self._fields = trie_without(self._fields, paths)

    def take(self, paths: set[Path]) -> None:
        if self._paths is not None:
            self.paths = self._paths | paths
        else:
            self._fields = trie_with(self._fields or {}, paths)

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version,
                               "time": self.time, "fieldsType": "FieldsV1", "fieldsV1": self.fields()}
        if self.subresource:
            out["subresource"] = self.subresource
        return out


class Conflicts(Exception):
    """An apply would change fields other managers own: (manager as messages name it, api
    version, path) each."""

    def __init__(self, found: list[tuple[str, str, Path]]) -> None:
        self.found = found
        by_manager: dict[tuple[str, str], list[str]] = {}
        for manager, version, path in found:
            by_manager.setdefault((manager, version), []).append(render(path))
        parts = []
        for (manager, version), paths in by_manager.items():
            if len(paths) == 1:
                parts.append(f"conflict with {manager} using {version}: {paths[0]}")
            else:
                parts.append(f"conflicts with {manager} using {version}:\n" + "\n".join(f"- {p}" for p in paths))
        n = len(found)
        super().__init__(f"Apply failed with {n} conflict{'s' if n > 1 else ''}: " + "\n".join(parts))

    def causes(self) -> list[dict[str, str]]:
        return [{"reason": "FieldManagerConflict", "message": f"conflict with {m} using {v}", "field": render(p)}
                for m, v, p in self.found]


def now() -> str:
    return now_rfc3339()


def parse(obj: dict[str, Any]) -> list[Entry]:
    return parse_entries((obj.get("metadata") or {}).get("managedFields"))


def parse_entries(raw_entries: Any) -> list[Entry]:
    out = []
    for raw in raw_entries if isinstance(raw_entries, list) else []:
        if isinstance(raw, dict) and raw.get("manager") is not None:
            fields = raw.get("fieldsV1")
            out.append(Entry(str(raw["manager"]), str(raw.get("operation") or UPDATE), str(raw.get("apiVersion") or ""),
                             str(raw.get("subresource") or ""), str(raw.get("time") or ""),
                             fields=fields if isinstance(fields, dict) else {}))
    return out


def store(obj: dict[str, Any], entries: list[Entry]) -> None:
    meta = obj.setdefault("metadata", {})
    kept = [e.dump() for e in entries if not e.empty()]
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)


def owned(obj: dict[str, Any] | None, schema: Schema, subresource: str) -> set[Path]:
    """The paths an operation on ``subresource`` ("" for the object) can own."""
    return leaves(_ownable(obj, subresource), schema)


def _ownable(obj: dict[str, Any] | None, subresource: str) -> dict[str, Any]:
    """The part of ``obj`` an operation on ``subresource`` can own fields of."""
    if not obj:
        return {}
    top: dict[str, Any] = {}
    for name, value in obj.items():
        if name in ("apiVersion", "kind"):
            continue
        if (name == "status") != (subresource == "status"):
            continue
        if name == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in _SERVER_META}
            if not value:
                continue
        top[name] = value
    return top


def _entry(entries: list[Entry], manager: str, operation: str, subresource: str, api_version: str) -> Entry:
    for e in entries:
        if (e.manager, e.operation, e.subresource) == (manager, operation, subresource):
            e.api_version = api_version
            return e
    e = Entry(manager, operation, api_version, subresource)
    entries.append(e)
    return e


def track_update(old: dict[str, Any] | None, new: dict[str, Any], schema: Schema, manager: str,
                 subresource: str = "", sent: Any = None) -> None:
    """Record a create or update by ``manager`` in ``new``'s managedFields. ``sent``: the
    managedFields the client wrote, which replace the stored ones when it sent any (how
    kubectl moves fields from client-side to server-side apply; ``[{}]`` clears them all)."""
    old_fields = (old or {}).get("metadata", {}).get("managedFields")
    if isinstance(sent, list) and sent and sent != old_fields:
        entries = parse_entries(sent)
        if not entries:  # upstream's reset: a list of one empty entry
            new.setdefault("metadata", {}).pop("managedFields", None)
            return
    elif old is None:
        # A create owns everything it wrote: build the trie in one walk.
        fields = fields_of(_ownable(new, subresource), schema)
        store(new, [Entry(manager, UPDATE, str(new.get("apiVersion") or ""), subresource, now(), fields=fields)])
        return
    else:
        entries = parse_entries(old_fields)
    changed, removed = diff(_ownable(old, subresource), _ownable(new, subresource), schema)
    if not changed and not removed:
        store(new, entries)  # nothing changed hands: keep what the client may have sent
        return
    gone = changed | removed
    for e in entries:
        e.discard(gone)
    mine = _entry(entries, manager, UPDATE, subresource, str(new.get("apiVersion") or ""))
    mine.take(changed)
    mine.time = now()
    store(new, entries)


def apply(live: dict[str, Any] | None, config: dict[str, Any], schema: Schema, manager: str, *,
          force: bool, subresource: str = "") -> dict[str, Any]:
    """The object after ``manager`` applies ``config`` (managedFields included); raises
    :class:`Conflicts` when another manager owns a field it would change."""
    base = copy.deepcopy(live) if live is not None else {}
    entries = parse(base)
    wanted = owned(config, schema, subresource)
    mine = _entry(entries, manager, APPLY, subresource, str(config.get("apiVersion") or ""))
    found: list[tuple[str, str, Path]] = []
    for e in entries:
        if e is mine:
            continue
        for path in e.paths & wanted:
            if path[-1] != ITEM and value_at(base, path) != value_at(config, path):
                label = f'"{e.manager}"' + (f' with subresource "{e.subresource}"' if e.subresource else "")
                found.append((label, e.api_version, path))
    if found and not force:
        raise Conflicts(sorted(found, key=lambda f: (f[0], render(f[2]))))
    for e in entries:
        if e is not mine:
            e.paths -= {p for _m, _v, p in found}
    others = set().union(*(e.paths for e in entries if e is not mine))
    dropped = mine.paths - wanted - others
    merged = merge(base, {k: v for k, v in config.items() if k != "metadata"} | {
        "metadata": _config_meta(config)}, FieldMeta(sub=schema))
    for path in sorted(dropped, key=len, reverse=True):
        remove(merged, path)
        _prune_empty(merged, path)
    mine.paths = wanted
    mine.time = now()
    # Fields other Update managers set that this apply changed are now the applier's alone.
    for e in entries:
        if e is not mine and e.operation == UPDATE:
            e.paths -= {p for p in wanted if p[-1] != ITEM and value_at(base, p) is not MISSING
                        and value_at(base, p) != value_at(merged, p)}
    store(merged, entries)
    return merged


def _prune_empty(obj: dict[str, Any], path: Path) -> None:
    """Maps emptied by a removal go too (Kubernetes' types omit empty maps when written)."""
    for end in range(len(path) - 1, 0, -1):
        parent = path[:end]
        if parent[-1][0] != "f":
            return
        if value_at(obj, parent) != {}:
            return
        remove(obj, parent)


def _config_meta(config: dict[str, Any]) -> dict[str, Any]:
    meta = config.get("metadata") or {}
    return {k: v for k, v in meta.items() if k not in _SERVER_META or k in ("name", "namespace")}
