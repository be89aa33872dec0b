"""Pod volumes as directories under the pod's directory on the node.

configMap, secret, downwardAPI and projected volumes are rewritten on every pod sync, file
by file with atomic renames, so a running container sees updated ConfigMaps in place (and
never a half-written file). emptyDir lives as long as the pod; hostPath is the host's own.

emptyDir ``medium: Memory`` is a tmpfs whose size is the sizeLimit (or the pod's memory
limit), so the kernel enforces it; a disk emptyDir's sizeLimit can only be checked after the
fact, which :meth:`VolumeManager.over_limit` does for the agent's periodic eviction check.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from bosun.agent import podspec
from bosun.agent.env import field_value, resource_value
from bosun.agent.refs import ConfigError, RefFetcher
from bosun.agent.runtime.base import Mount
from bosun.agent.runtime.oci_mounts import is_mounted, mount_tmpfs, mounts_under, unmount
from bosun.agent.satoken import PodTokens
from bosun.api.quantity import to_bytes
from bosun.api.registry import must_by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import Client

log = logging.getLogger(__name__)
RESYNC_S = 5.0
"""A configMap, secret, downwardAPI or projected volume whose content did not change since
it was written is compared with the disk again only this long after: a pod syncs on every
status change of a burst (each sync read back, compared and walked every file, a fifteenth of
the node's event loop while 100 pods started), while a changed file is still put back by the
next periodic refresh (every 10 s)."""


PVCS, PVS = must_by_plural("", "v1", "persistentvolumeclaims"), must_by_plural("", "v1", "persistentvolumes")


async def claim_path(client: Client, namespace: str, claim: str) -> Path:
    """The node directory behind a bound claim (its PersistentVolume's local or hostPath path)."""
    try:
        pvc = await client.get(PVCS, claim, namespace)
    except ApiError as e:
        if e.status == 404:
            raise ConfigError(f'persistentvolumeclaim "{claim}" not found') from e
        raise
    volume = str((pvc.get("spec") or {}).get("volumeName") or "")
    if not volume or (pvc.get("status") or {}).get("phase") != "Bound":
        raise ConfigError(f'persistentvolumeclaim "{claim}" is not bound yet')
    try:
        pv = await client.get(PVS, volume)
    except ApiError as e:
        if e.status == 404:
            raise ConfigError(f'persistentvolume "{volume}" of claim "{claim}" not found') from e
        raise
    spec = pv.get("spec") or {}
    path = str((spec.get("local") or {}).get("path") or (spec.get("hostPath") or {}).get("path") or "")
    if not path:
        raise ConfigError(f'persistentvolume "{volume}": only local and hostPath volumes can be mounted here')
    return Path(path)

Pod = dict[str, Any]


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _sync_dir(root: Path, files: dict[str, tuple[bytes, int]]) -> None:
    """Make ``root`` hold exactly ``files`` (relative path -> (content, mode))."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, (data, mode) in files.items():
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise ConfigError(f"invalid volume item path {rel!r}")
        _write_atomic(root / rel, data, mode)
    wanted = {root / rel for rel in files}
    for dirpath, _dirs, names in os.walk(root, topdown=False):
        for n in names:
            p = Path(dirpath) / n
            if p not in wanted and not n.startswith("."):
                p.unlink(missing_ok=True)


async def _keyed(refs: RefFetcher, kind: str, src: dict[str, Any], default_mode: int) -> dict[str, tuple[bytes, int]]:
    name = str(src.get("name") or src.get("secretName") or "")
    data = await refs.all(kind, name, bool(src.get("optional")))
    mode = int(src.get("defaultMode", default_mode))
    items = src.get("items")
    if not items:
        return {k: (v, mode) for k, v in data.items()}
    out = {}
    for item in items:
        key = str(item.get("key"))
        if key not in data:
            if src.get("optional"):
                continue
            label = "configmap" if kind == "configmap" else "secret"
            raise ConfigError(f"configmap references non-existent config key: {key}" if label == "configmap"
                              else f"references non-existent secret key: {key}")
        out[str(item.get("path") or key)] = (data[key], int(item.get("mode", mode)))
    return out


Files = dict[str, tuple[bytes, int]]


def _downward(pod: Pod, src: dict[str, Any], allocatable: dict[str, str], default_mode: int) -> Files:
    out = {}
    mode = int(src.get("defaultMode", default_mode))
    for item in src.get("items") or []:
        if "fieldRef" in item:
            value = field_value(pod, str(item["fieldRef"].get("fieldPath")))
        elif "resourceFieldRef" in item:
            value = resource_value(pod, "", item["resourceFieldRef"], allocatable)
        else:
            continue
        out[str(item["path"])] = (value.encode(), int(item.get("mode", mode)))
    return out


class VolumeManager:
    def __init__(self, pod_dir: Path, allocatable: dict[str, str], tokens: PodTokens | None = None) -> None:
        self.pod_dir = pod_dir
        self.allocatable = allocatable
        # The pod's ServiceAccount tokens (None: projections of tokens cannot be served).
        self.tokens = tokens
        self.read_only: set[str] = set()  # volumes mounted read-only whatever the volumeMount says
        self._synced: dict[Path, tuple[float, Files]] = {}  # path -> (when, what) it was last made to hold

    def _sync(self, path: Path, files: Files) -> None:
        now = time.monotonic()
        last = self._synced.get(path)
        if last is not None and now - last[0] < RESYNC_S and last[1] == files:
            return
        _sync_dir(path, files)
        self._synced[path] = (now, files)

    def path(self, volume: dict[str, Any]) -> Path:
        name = str(volume.get("name"))
        if "hostPath" in volume:
            return Path(str(volume["hostPath"].get("path")))
        kind = next((k for k in volume if k != "name"), "unknown")
        return self.pod_dir / "volumes" / kind / name

    async def prepare(self, pod: Pod, refs: RefFetcher) -> dict[str, Path]:
        """Create or refresh every volume; name -> host path. Raises ConfigError for a
        missing ConfigMap/Secret or an unsupported volume type."""
        out: dict[str, Path] = {}
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            path = self.path(vol)
            out[str(vol.get("name"))] = path
            if "persistentVolumeClaim" in vol:
                src = vol["persistentVolumeClaim"] or {}
                path = await claim_path(refs.client, refs.namespace, str(src.get("claimName") or ""))
                path.mkdir(parents=True, exist_ok=True)
                out[str(vol.get("name"))] = path
                if src.get("readOnly"):
                    self.read_only.add(str(vol.get("name")))
            elif "emptyDir" in vol:
                path.mkdir(parents=True, exist_ok=True)
                if (vol["emptyDir"] or {}).get("medium") == "Memory":
                    _ensure_tmpfs(path, pod, vol["emptyDir"] or {})
            elif "hostPath" in vol:
                kind = vol["hostPath"].get("type") or ""
                if kind == "DirectoryOrCreate":
                    path.mkdir(parents=True, exist_ok=True)
                elif kind == "FileOrCreate" and not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
                elif kind in ("Directory", "File") and not path.exists():
                    raise ConfigError(f"hostPath type check failed: {path} does not exist")
            elif "configMap" in vol:
                self._sync(path, await _keyed(refs, "configmap", vol["configMap"], 0o644))
            elif "secret" in vol:
                self._sync(path, await _keyed(refs, "secret", vol["secret"], 0o644))
            elif "downwardAPI" in vol:
                self._sync(path, _downward(pod, vol["downwardAPI"], self.allocatable, 0o644))
            elif "projected" in vol:
                proj = vol["projected"]
                mode = int(proj.get("defaultMode", 0o644))
                files: dict[str, tuple[bytes, int]] = {}
                for src in proj.get("sources") or []:
                    if "configMap" in src:
                        files.update(await _keyed(refs, "configmap", {"defaultMode": mode, **src["configMap"]}, mode))
                    elif "secret" in src:
                        files.update(await _keyed(refs, "secret", {"defaultMode": mode, **src["secret"]}, mode))
                    elif "downwardAPI" in src:
                        files.update(_downward(pod, src["downwardAPI"], self.allocatable, mode))
                    elif "serviceAccountToken" in src:
                        files.update(await self._token(src["serviceAccountToken"], mode))
                self._sync(path, files)
            else:
                kind = next((k for k in vol if k != "name"), "?")
                raise ConfigError(f"volume {vol.get('name')!r}: {kind} volumes are not supported on this node")
        return out

    async def _token(self, src: dict[str, Any], mode: int) -> Files:
        if self.tokens is None:
            raise ConfigError("serviceAccountToken projections are not served by this node")
        expiration = int(src.get("expirationSeconds") or 3600)
        token = await self.tokens.token(src.get("audience") or None, expiration)
        return {str(src.get("path") or "token"): (token, mode)}

    def mounts(self, container: dict[str, Any], paths: dict[str, Path]) -> list[Mount]:
        out = []
        for vm in container.get("volumeMounts") or []:
            name = str(vm.get("name"))
            if name not in paths:
                raise ConfigError(f"volumeMount {name!r} refers to no volume")
            host = paths[name]
            sub = str(vm.get("subPath") or "")
            if sub:
                if sub.startswith("/") or ".." in Path(sub).parts:
                    raise ConfigError(f"invalid subPath {sub!r}")
                host = host / sub
                if not host.exists():
                    host.mkdir(parents=True, exist_ok=True)
            out.append(Mount(host_path=host, container_path=str(vm.get("mountPath")),
                             read_only=bool(vm.get("readOnly")) or name in self.read_only))
        return out

    def over_limit(self, pod: Pod) -> str:
        """The eviction message when a disk emptyDir holds more than its sizeLimit, else ""."""
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            src = vol.get("emptyDir") if "emptyDir" in vol else None
            if src is None or not src.get("sizeLimit") or src.get("medium") == "Memory":
                continue
            limit = to_bytes(src["sizeLimit"])
            if disk_usage(self.path(vol)) > limit:
                return f'Usage of EmptyDir volume "{vol.get("name")}" exceeds the limit "{src["sizeLimit"]}".'
        return ""

    def unmount(self, pod: Pod) -> None:
        """Unmount what :meth:`prepare` mounted below the pod's directory: its tmpfs emptyDirs
        (nothing else is mounted there). A pod without one has nothing to look for, and
        looking means reading every mount of the node (hundreds with 100 pods)."""
        if any(((vol.get("emptyDir") or {}).get("medium") == "Memory")
               for vol in (pod.get("spec") or {}).get("volumes") or [] if "emptyDir" in vol):
            unmount_pod_volumes(self.pod_dir)


def unmount_pod_volumes(pod_dir: Path) -> None:
    """Unmount a pod's tmpfs emptyDirs (and whatever else is mounted below its volumes)."""
    for mp in mounts_under(pod_dir / "volumes"):
        try:
            unmount(mp)
        except OSError as e:
            log.warning("cannot unmount %s: %s", mp, e)


def remove_pod_volumes(pod_dir: Path) -> None:
    """Unmount (tmpfs emptyDirs) and delete a pod's volumes."""
    unmount_pod_volumes(pod_dir)
    shutil.rmtree(pod_dir / "volumes", ignore_errors=True)


def _ensure_tmpfs(path: Path, pod: Pod, src: dict[str, Any]) -> None:
    if is_mounted(str(path)):
        return
    size = to_bytes(src["sizeLimit"]) if src.get("sizeLimit") else podspec.pod_resources(pod).memory_limit_bytes
    try:
        mount_tmpfs(path, size)
    except OSError as e:
        if e.errno != errno.EPERM:
            raise ConfigError(f"emptyDir {path.name!r}: {e}") from e
        # Without root (the process driver in development) a plain directory has to do.
        log.warning("emptyDir %s: no tmpfs without privileges, using a directory", path)


def disk_usage(path: Path) -> int:
    """Bytes allocated under ``path`` (like du): what a sizeLimit is measured against."""
    total = 0
    for dirpath, dirs, files in os.walk(path):
        for n in files + dirs:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
            except OSError:
                continue
    return total
