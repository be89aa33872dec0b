"""Usage of the PersistentVolumeClaims this node's pods mount, for the Summary API's
``pods[].volume[]`` (kubelet's shape: ``name``, ``pvcRef``, ``usedBytes``, ``capacityBytes``,
``availableBytes``), which the control plane's history records as
``kubelet_volume_stats_used_bytes`` and ``kubelet_volume_stats_capacity_bytes``.

A local-path volume is a directory on the node's disk, not a filesystem of its own: its
*used* bytes are what the directory takes (as ``du``, what a claim's user has written) and
its *capacity* is what the claim asked for (the PersistentVolume's ``capacity.storage``), so
"almost full" means what its user thinks it means. Claims are resolved to their volume
through the API once a minute at most; directories are measured at most once per interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bosun.agent.volumes import PVCS, PVS, disk_usage
from bosun.api.quantity import parse_quantity
from bosun.client.errors import ApiError
from bosun.client.rest import Client

log = logging.getLogger(__name__)
Pod = dict[str, Any]
RESOLVE_EVERY = 60.0


class VolumeStats:
    def __init__(self, client: Client, find_pod: Callable[[str, str], Pod | None], *, interval: float = 10.0) -> None:
        self.client = client
        self.find_pod = find_pod
        self.interval = interval
        self._claims: dict[tuple[str, str], tuple[float, Path | None, int]] = {}  # -> (when, path, capacity)
        self._used: dict[Path, tuple[float, int]] = {}
        self._pruned = 0.0

    def _prune(self, now: float) -> None:
        """Forget claims and directories nobody asked about for a while (pods gone)."""
        if now - self._pruned < RESOLVE_EVERY:
            return
        self._pruned = now
        self._claims = {k: v for k, v in self._claims.items() if now - v[0] < RESOLVE_EVERY}
        self._used = {k: v for k, v in self._used.items() if now - v[0] < RESOLVE_EVERY}

    async def _resolve(self, namespace: str, claim: str, now: float) -> tuple[Path | None, int]:
        have = self._claims.get((namespace, claim))
        if have is not None and now - have[0] < RESOLVE_EVERY:
            return have[1], have[2]
        path: Path | None = None
        capacity = 0
        try:
            pvc = await self.client.get(PVCS, claim, namespace)
            volume = str((pvc.get("spec") or {}).get("volumeName") or "")
            if volume:
                spec = (await self.client.get(PVS, volume)).get("spec") or {}
                where = (spec.get("local") or {}).get("path") or (spec.get("hostPath") or {}).get("path")
                path = Path(str(where)) if where else None
                capacity = int(parse_quantity(str((spec.get("capacity") or {}).get("storage") or "0")))
        except (ApiError, OSError, ValueError) as e:
            log.debug("volume stats: claim %s/%s: %s", namespace, claim, e)
        self._claims[(namespace, claim)] = (now, path, capacity)
        return path, capacity

    async def _usage(self, path: Path, now: float) -> int:
        have = self._used.get(path)
        if have is not None and now - have[0] < self.interval:
            return have[1]
        used = await asyncio.to_thread(disk_usage, path)  # 0 for a directory not made yet
        self._used[path] = (now, used)
        return used

    async def for_pod(self, namespace: str, name: str, ts: str) -> list[dict[str, Any]]:
        """The pod's claims' usage (an empty list for a pod without claims, or one not known)."""
        pod = self.find_pod(namespace, name)
        out: list[dict[str, Any]] = []
        now = time.time()
        self._prune(now)
        for vol in ((pod or {}).get("spec") or {}).get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim:
                continue
            path, capacity = await self._resolve(namespace, str(claim), now)
            if path is None or capacity <= 0:
                continue
            used = await self._usage(path, now)
            out.append({"time": ts, "name": str(vol.get("name")), "pvcRef": {"name": claim, "namespace": namespace},
                        "usedBytes": used, "capacityBytes": capacity, "availableBytes": max(capacity - used, 0)})
        return out
