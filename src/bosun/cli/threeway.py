"""kubectl's client-side apply: a three-way merge patch from last-applied, desired and live.

Fields the user removed from the manifest since the last apply become ``null`` (deleted);
fields the user sets are sent only when the live object differs, so re-applying an
unchanged manifest sends nothing and reports ``unchanged``. Lists are atomic in a merge
patch, so a list is sent whole when the user changed it or the live copy no longer carries
what the user asked for; values the server filled in (defaults) do not count as drift.
"""

from __future__ import annotations

import json
from typing import Any

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def last_applied_json(obj: dict[str, Any]) -> str:
    """The annotation's value: the manifest as applied, without the annotation itself.

    Byte-for-byte what kubectl writes (sorted keys, ``"annotations":{}`` kept, trailing
    newline), so that kubectl and bosun each see the other's apply as up to date.
    """
    clean = json.loads(json.dumps(obj))
    meta = clean.setdefault("metadata", {})
    annotations = meta.get("annotations")
    annotations = dict(annotations) if isinstance(annotations, dict) else {}
    annotations.pop(LAST_APPLIED, None)
    meta["annotations"] = annotations
    return json.dumps(clean, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def with_last_applied(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` carrying the last-applied annotation, ready to create or diff."""
    out = json.loads(json.dumps(obj))
    meta = out.setdefault("metadata", {})
    annotations = meta.get("annotations") or {}
    annotations[LAST_APPLIED] = last_applied_json(obj)
    meta["annotations"] = annotations
    return out


def read_last_applied(live: dict[str, Any]) -> dict[str, Any]:
    raw = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not raw:
        return {}
    try:
        out = json.loads(raw)
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def covers(desired: Any, live: Any) -> bool:
    """True when ``live`` holds everything ``desired`` says (extra live fields are defaults)."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        return all(covers(v, live.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        return all(covers(d, item) for d, item in zip(desired, live, strict=True))
    if isinstance(desired, float) and isinstance(live, int) and not isinstance(live, bool):
        return desired == live
    return bool(desired == live and type(desired) is type(live))


def three_way_patch(
    original: dict[str, Any] | None, modified: dict[str, Any], current: dict[str, Any] | None
) -> dict[str, Any]:
    """A JSON merge patch turning ``current`` into ``modified``, deleting what left ``original``."""
    original = original if isinstance(original, dict) else {}
    current = current if isinstance(current, dict) else {}
    patch: dict[str, Any] = {}
    for key in original:
        if key not in modified and key in current:
            patch[key] = None
    for key, want in modified.items():
        have = current.get(key)
        before = original.get(key)
        if isinstance(want, dict) and isinstance(have, dict):
            sub = three_way_patch(before if isinstance(before, dict) else {}, want, have)
            if sub:
                patch[key] = sub
        elif isinstance(want, list):
            if want != before or not covers(want, have):
                patch[key] = want
        elif key not in current or not covers(want, have):
            patch[key] = want
    return patch
