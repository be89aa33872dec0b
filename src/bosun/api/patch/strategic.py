"""Kubernetes' strategic merge patch, applied on the server side.

This follows apimachinery's strategicpatch with the options the API server uses
(``MergeParallelList`` and ``IgnoreUnmatchedNulls``), because ``kubectl apply``, ``kubectl
edit``, ``kubectl set image`` and controllers all send patches computed by that code and
expect that exact result: lists of containers merged by name, ``$patch: delete`` items
removing entries, ``$setElementOrder`` fixing order, ``$deleteFromPrimitiveList`` trimming
finalizers, ``$retainKeys`` clearing a union's other members, ``null`` deleting a key.

Both arguments are owned by the caller of :func:`strategic_merge` and are modified in place.
"""

from __future__ import annotations

from typing import Any

from bosun.api.patch.errors import PatchError
from bosun.api.patch.schema import FieldMeta, Schema

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"

_ATOMIC = FieldMeta()


def strategic_merge(original: dict[str, Any], patch: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """Merge ``patch`` into ``original`` (both plain JSON values) and return the result."""
    return _merge_map(original, patch, schema)


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: Schema) -> dict[str, Any]:
    if DIRECTIVE in patch:
        directive = patch[DIRECTIVE]
        if directive == "replace":
            del patch[DIRECTIVE]
            return _merge_map({}, patch, schema)
        if directive == "delete":
            return {}
        raise PatchError(f"unknown patch type: {directive} in map: {patch}")

    if RETAIN_KEYS in patch:
        keep = patch.pop(RETAIN_KEYS)
        if not isinstance(keep, list):
            raise PatchError(f"invalid patch: {RETAIN_KEYS} must be a list of field names, got {keep!r}")
        kept = {str(k) for k in keep}
        for k in list(original):
            if k not in kept:
                del original[k]

    _apply_set_element_order(original, patch, schema)

    for key, value in patch.items():
        is_delete_list = False
        if key.startswith(SET_ORDER):
            continue
        if key.startswith(DELETE_PRIMITIVE):
            key = key[len(DELETE_PRIMITIVE):]
            is_delete_list = True
        elif key.startswith("$"):
            raise PatchError(f"unknown directive {key!r} in strategic merge patch")

        if value is None:
            original.pop(key, None)
            continue
        meta = schema.get(key, _ATOMIC)
        current = original.get(key)
        if current is None and key not in original:
            if not is_delete_list:
                original[key] = _fresh(value, meta)
            continue
        if isinstance(current, dict) and isinstance(value, dict):
            original[key] = _merge_map(current, value, meta.sub)
        elif isinstance(current, list) and isinstance(value, list):
            original[key] = _merge_list(current, value, meta, is_delete_list)
        elif not is_delete_list:
            original[key] = _fresh(value, meta)
    return original


def _fresh(value: Any, meta: FieldMeta) -> Any:
    """A value with nothing to merge into: drop its nulls and directives, as merging into empty does."""
    if isinstance(value, dict):
        return _merge_map({}, value, meta.sub)
    if isinstance(value, list):
        return _merge_list([], value, meta, False)
    return value


def _merge_list(original: list[Any], patch: list[Any], meta: FieldMeta, is_delete_list: bool) -> list[Any]:
    if not meta.merge:
        if is_delete_list:
            return _delete_primitives(original, patch)
        return [_fresh(v, FieldMeta(sub=meta.sub)) for v in patch]
    if not original and not patch:
        return original
    maps = _elements_are_maps(original, patch)
    if not maps:
        if is_delete_list:
            return _delete_primitives(original, patch)
        merged = _dedupe(original + patch)
        order_key = ""
    else:
        if not meta.key:
            raise PatchError("cannot merge lists without merge key")
        original, patch_items, replace = _special_elements(original, patch, meta.key)
        if replace:
            return [_fresh(v, FieldMeta(sub=meta.sub)) for v in patch_items]
        merged = _merge_by_key(original, patch_items, meta)
        order_key = meta.key
    in_patch, server_only = _partition(merged, patch, order_key)
    return _normalize_order(in_patch, server_only, patch, original, order_key)


def _elements_are_maps(original: list[Any], patch: list[Any]) -> bool:
    kinds = {isinstance(v, dict) for v in (*original, *patch) if v is not None}
    if len(kinds) > 1:
        raise PatchError("invalid patch: lists mix maps and primitive values")
    return kinds == {True}


def _delete_primitives(original: list[Any], patch: list[Any]) -> list[Any]:
    return [v for v in original if v not in patch]


def _dedupe(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _special_elements(
    original: list[Any], patch: list[Any], key: str
) -> tuple[list[Any], list[Any], bool]:
    """Apply ``$patch`` items (delete/replace) and return the remaining patch items."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if not isinstance(item, dict) or DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == "delete":
            if key not in item:
                raise PatchError(f"map: {item} does not contain declared merge key: {key}")
            original = [o for o in original if not (isinstance(o, dict) and o.get(key) == item[key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"unknown patch type: {directive} in map: {item}")
    return original, plain, replace


def _merge_by_key(original: list[Any], patch: list[Any], meta: FieldMeta) -> list[Any]:
    out = list(original)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"invalid patch: expected a map in list, got {item!r}")
        if meta.key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {meta.key}")
        want = item[meta.key]
        for i, o in enumerate(out):
            if isinstance(o, dict) and o.get(meta.key) == want:
                out[i] = _merge_map(o, item, meta.sub)
                break
        else:
            out.append(_merge_map({}, item, meta.sub))
    return out


def _ident(v: Any, key: str) -> Any:
    if key:
        return v.get(key) if isinstance(v, dict) else None
    return v


def _index(values: list[Any], item: Any, key: str) -> int:
    want = _ident(item, key)
    for i, v in enumerate(values):
        if isinstance(v, dict) and DIRECTIVE in v:
            continue
        if _ident(v, key) == want:
            return i
    return -1


def _partition(merged: list[Any], by: list[Any], key: str) -> tuple[list[Any], list[Any]]:
    """Split merged items into those named in ``by`` and those only the server has."""
    in_by: list[Any] = []
    only: list[Any] = []
    for v in merged:
        (in_by if _index(by, v, key) >= 0 else only).append(v)
    return in_by, only


def _sort_by(values: list[Any], order: list[Any], key: str) -> list[Any]:
    big = len(order)
    return sorted(values, key=lambda v: (i if (i := _index(order, v, key)) >= 0 else big))


def _normalize_order(
    in_patch: list[Any], server_only: list[Any], patch_order: list[Any], server_order: list[Any], key: str
) -> list[Any]:
    """Interleave patch items (in patch order) with server-only items (in live order).

    The patch's relative order wins; a server-only item goes before the first patch item
    that comes after it in the live list, so unrelated entries keep their place.
    """
    right = _sort_by(in_patch, patch_order, key)
    left = _sort_by(server_only, server_order, key)
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], key)
            ri = _index(server_order, right[j], key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _apply_set_element_order(original: dict[str, Any], patch: dict[str, Any], schema: Schema) -> None:
    """Process every ``$setElementOrder/<field>`` with its list, then drop that list from the patch."""
    for directive_key in [k for k in patch if k.startswith(SET_ORDER)]:
        order = patch[directive_key]
        if not isinstance(order, list):
            raise PatchError(f"invalid patch: {directive_key} must be a list")
        name = directive_key[len(SET_ORDER):]
        meta = schema.get(name, _ATOMIC)
        found_original = isinstance(original.get(name), list)
        found_patch = isinstance(patch.get(name), list)
        live: list[Any] = original[name] if found_original else []
        patch_list: list[Any] = patch[name] if found_patch else []
        _check_order(patch_list, order, meta.key)
        if found_original and not found_patch:
            merged = live
        elif found_patch and not found_original:
            merged = _fresh(patch_list, meta)
        elif found_original and found_patch:
            merged = _merge_list(list(live), patch_list, meta, False)
        else:
            continue
        key = meta.key if meta.merge else ""
        if key or not merged or not isinstance(merged[0], dict):
            in_order, server_only = _partition(merged, order, key)
            merged = _normalize_order(in_order, server_only, order, live, key)
        original[name] = merged
        patch.pop(name, None)


def _check_order(patch_list: list[Any], order: list[Any], key: str) -> None:
    """Reject a patch list whose items disagree with the order list (apimachinery's check)."""
    if not order or not patch_list:
        return
    items = [v for v in patch_list if not (isinstance(v, dict) and DIRECTIVE in v)]
    pi = oi = 0
    while pi < len(items) and oi < len(order):
        if _ident(items[pi], key) == _ident(order[oi], key):
            pi += 1
        oi += 1
    if pi < len(items):
        raise PatchError(
            f"The order in patch list:\n{patch_list}\n doesn't match {SET_ORDER} list:\n{order}\n"
        )


__all__ = ["strategic_merge"]
