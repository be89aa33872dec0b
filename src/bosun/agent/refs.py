"""Reading the ConfigMaps and Secrets a pod refers to, with the errors users see.

A missing object or key is the pod's problem, not the agent's: it becomes the waiting reason
``CreateContainerConfigError`` with a message naming what is missing, as in Kubernetes.
"""

from __future__ import annotations

import base64
from typing import Any

from bosun.api.registry import Resource, by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import Client

_cm = by_plural("", "v1", "configmaps")
_secret = by_plural("", "v1", "secrets")
assert _cm is not None and _secret is not None
CONFIGMAPS: Resource = _cm
SECRETS: Resource = _secret


class ConfigError(Exception):
    """Turns into waiting reason CreateContainerConfigError with this message."""


class RefFetcher:
    """One pod sync's view of its ConfigMaps and Secrets (each fetched once per sync)."""

    def __init__(self, client: Client, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._cache: dict[tuple[str, str], dict[str, bytes] | None] = {}

    async def _get(self, kind: str, name: str) -> dict[str, bytes] | None:
        key = (kind, name)
        if key in self._cache:
            return self._cache[key]
        res = CONFIGMAPS if kind == "configmap" else SECRETS
        try:
            obj = await self.client.get(res, name, self.namespace)
        except ApiError as e:
            if e.status != 404:
                raise
            self._cache[key] = None
            return None
        data: dict[str, bytes] = {}
        if kind == "configmap":
            data.update({k: str(v).encode() for k, v in (obj.get("data") or {}).items()})
            data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        else:
            data.update({k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()})
            data.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
        self._cache[key] = data
        return data

    async def all(self, kind: str, name: str, optional: bool) -> dict[str, bytes]:
        data = await self._get(kind, name)
        if data is None:
            if optional:
                return {}
            raise ConfigError(f'{kind} "{name}" not found')
        return data

    async def key(self, kind: str, ref: dict[str, Any]) -> bytes | None:
        name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
        optional = bool(ref.get("optional"))
        data = await self._get(kind, name)
        if data is None:
            if optional:
                return None
            raise ConfigError(f'{kind} "{name}" not found')
        if key not in data:
            if optional:
                return None
            label = "ConfigMap" if kind == "configmap" else "Secret"
            raise ConfigError(f"couldn't find key {key} in {label} {self.namespace}/{name}")
        return data[key]
