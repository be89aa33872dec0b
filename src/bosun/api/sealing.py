"""Encryption at rest, per resource: what the store holds of a sealed resource (Secrets) is
sealed on the way in and opened on the way out; every other resource passes untouched at
the cost of one set lookup on its plural."""

from __future__ import annotations

from typing import Any

from bosun.api import errors
from bosun.api.objects import decode, decode_kv, encode
from bosun.api.registry import Resource
from bosun.security.encryption import DecryptError, ResourceTransformer
from bosun.store.base import KeyValue


class Sealer:
    def __init__(self, sealed: dict[str, ResourceTransformer]) -> None:
        # group_plural -> transformer for the sealed resources.
        self.sealed = sealed
        self._plurals = frozenset(gp.split(".", 1)[0] for gp in sealed)

    def transformer(self, res: Resource) -> ResourceTransformer | None:
        if res.plural not in self._plurals:
            return None
        return self.sealed.get(res.group_plural)

    def load(self, res: Resource, kv: KeyValue) -> dict[str, Any]:
        """decode_kv, opening sealed values."""
        t = self.transformer(res)
        return decode_kv(kv) if t is None else _open(t, kv)

    def stale(self, res: Resource, kv: KeyValue) -> bool:
        """The stored value is not sealed the way this server would write it now."""
        t = self.transformer(res)
        return t is not None and t.is_stale(kv.value)

    def dump(self, res: Resource, key: str, obj: dict[str, Any]) -> bytes:
        """encode, sealing the resources the encryption configuration names."""
        data = encode(obj)
        t = self.transformer(res)
        return data if t is None else t.to_store(key, data)


def _open(t: ResourceTransformer, kv: KeyValue) -> dict[str, Any]:
    """A sealed value as an object; a key that cannot open it is a 500 naming both keys
    (the fix is in the encryption configuration), never an empty object."""
    try:
        plain = t.from_store(kv.key, kv.value)
    except DecryptError as exc:
        raise errors.internal(str(exc)) from exc
    return decode(plain, kv.mod_revision)
