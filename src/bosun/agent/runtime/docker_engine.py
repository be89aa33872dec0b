"""Talking to the node's Docker Engine for the ``docker`` driver: the connection (one line
when no engine answers), the pause image, and a container's inspect record read as a
:class:`ContainerStatus`.

Why a module of its own: these are the parts that know Docker's wire shapes (inspect JSON,
its nanosecond timestamps, image archives), kept apart from the driver's pod logic so
that each can be read alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from bosun.agent.images.archive import host_arch
from bosun.agent.runtime.base import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    ContainerState,
    ContainerStatus,
    DriverError,
)

# The driver's own labels, beside the pod ones of base.py.
LABEL_ROOT = "io.bosun.docker.root"  # which driver root (node) made it: agents may share an engine
LABEL_SANDBOX = "io.bosun.docker.sandbox"  # "1" on pause containers
LABEL_LOG_PATH = "io.bosun.docker.log-path"
LABEL_LOG_MAX = "io.bosun.docker.log-max"  # "<bytes>:<files>": the CRI log's rotation
LABEL_IMAGE = "io.bosun.docker.image"  # the image as the pod spec names it

T = TypeVar("T")
PAUSE_IMAGE = "bosun.local/pause:busybox"
BUSYBOX = Path("/bin/busybox")
PAUSE_SECONDS = "2147483647"
_NO_TIME = "0001-01-01T00:00:00Z"


class Engine:
    """The SDK client and the driver's own threads for its blocking calls (100 pods starting
    at once must not queue behind the loop's default executor of a few threads)."""

    def __init__(self, client: docker.APIClient, pool: ThreadPoolExecutor) -> None:
        self.client, self.pool = client, pool

    async def call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn)

    async def remove(self, cid: str) -> None:
        """Remove the container, running or not; gone already is fine."""
        def remove() -> None:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.remove_container(cid, force=True)

        await self.call(remove)


def connect(base_url: str | None, pool: int) -> docker.APIClient:
    """A client of the engine at ``base_url`` (None: ``DOCKER_HOST`` or the default socket);
    :class:`DriverError` with one line when nothing answers there."""
    where = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        if base_url:
            client = docker.APIClient(base_url=base_url, version="auto", max_pool_size=pool, timeout=120)
        else:
            client = docker.from_env(version="auto", max_pool_size=pool, timeout=120).api
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
        raise DriverError("RuntimeMissing", f"no Docker Engine answers at {where}: "
                          f"{_short(e)} (start dockerd, or set DOCKER_HOST)") from None
    return client


def _short(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    for cause in ("No such file or directory", "Connection refused", "Permission denied"):
        if cause in text:
            return cause.lower()
    return text[:160]


def api_message(e: docker.errors.APIError) -> str:
    """What the engine said, without the HTTP frame around it."""
    return str(e.explanation or e).strip()


def pause_archive() -> bytes:
    """A ``docker load`` archive of the pause image: busybox's ``sleep`` (a static binary
    from Debian's busybox-static), which owns the pod's namespaces and does nothing else."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        d = tarfile.TarInfo("bin")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(d)
        data = BUSYBOX.read_bytes()
        info = tarfile.TarInfo("bin/sleep")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({"architecture": host_arch(), "os": "linux",
                         "config": {"Entrypoint": ["/bin/sleep", PAUSE_SECONDS], "Env": ["PATH=/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, blob in (("layer/layer.tar", layer_bytes), ("config.json", config),
                           ("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": [PAUSE_IMAGE],
                                                          "Layers": ["layer/layer.tar"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return out.getvalue()


def ensure_pause_image(client: docker.APIClient) -> None:
    try:
        client.inspect_image(PAUSE_IMAGE)
        return
    except docker.errors.ImageNotFound:
        pass
    if not BUSYBOX.exists():
        raise DriverError("RuntimeMissing", f"the docker driver's pause image needs {BUSYBOX} "
                          "(apt-get install busybox-static)")
    for _ in client.load_image(pause_archive()):
        pass


def docker_time(text: str | None) -> float:
    """Docker's RFC 3339 times (nanoseconds, ``Z``) as unix seconds; 0 for its zero time."""
    if not text or text.startswith("0001-"):
        return 0.0
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        return 0.0
    base = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + float(m.group(2) or 0)


def status_from_inspect(data: dict[str, Any]) -> ContainerStatus:
    """A container's inspect record as the driver contract's status."""
    labels = dict(data["Config"].get("Labels") or {})
    state = data["State"]
    st = ContainerStatus(
        id=data["Id"], pod_uid=labels.get(LABEL_POD_UID, ""), name=labels.get(LABEL_CONTAINER_NAME, ""),
        attempt=int(labels.get(LABEL_ATTEMPT) or 0), state=ContainerState.UNKNOWN,
        image=labels.get(LABEL_IMAGE) or data["Config"].get("Image", ""), image_id=data.get("Image", ""),
        created_at=docker_time(data.get("Created")), started_at=docker_time(state.get("StartedAt")),
        log_path=Path(labels[LABEL_LOG_PATH]) if labels.get(LABEL_LOG_PATH) else None, labels=labels)
    status = state.get("Status")
    if status in ("running", "paused", "restarting"):
        st.state = ContainerState.RUNNING
    elif status == "created" and not state.get("Error"):
        st.state = ContainerState.CREATED
    elif status in ("exited", "dead", "created", "removing"):
        st.state = ContainerState.EXITED
        st.exit_code = int(state.get("ExitCode") or 0)
        st.finished_at = docker_time(state.get("FinishedAt"))
        if state.get("Error") and not st.started_at:
            st.reason, st.exit_code, st.message = "StartError", 128, str(state["Error"])
            st.finished_at = st.finished_at or st.created_at
        elif state.get("OOMKilled"):
            st.reason, st.message = "OOMKilled", "the container exceeded its memory limit"
        else:
            st.reason = "Completed" if st.exit_code == 0 else "Error"
    return st


__all__ = ["LABEL_LOG_MAX", "LABEL_LOG_PATH", "LABEL_ROOT", "LABEL_SANDBOX", "PAUSE_IMAGE", "api_message", "connect",
           "docker_time", "ensure_pause_image", "status_from_inspect"]
