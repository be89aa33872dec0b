"""What an oci container is made of before the runtime sees it: its root filesystem (an
overlay of the image's layers, or of the node's ``host`` template), the pod's files bound
into it, and the namespaces it joins (the sandbox's, a debug target's PID namespace, or the
pod's shared one).

Why a module: these are decisions from the pod and sandbox records alone, in plain
functions, apart from the driver's bookkeeping of container directories and shims.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bosun.agent.runtime import oci_bundle as ob
from bosun.agent.runtime import oci_security
from bosun.agent.runtime.base import ContainerConfig, SandboxStatus, SecurityConfig
from bosun.agent.runtime.oci_mounts import mount_overlay

log = logging.getLogger(__name__)


def make_root(d: Path, rootfs: Path, layers: list[Path] | None, host_template: Path) -> list[ob.BindMount]:
    """Mount the container's root on ``rootfs`` (work dirs under ``d``): the image's
    ``layers``, or for the `host` image (``None``) an overlay on the node's template; where
    overlay cannot be mounted (the driver root on overlayfs or tmpfs) its skeleton is made
    in place. Returns the bind mounts the root needs (the host's own directories)."""
    if layers is not None:
        (d / "upper").mkdir()
        (d / "work").mkdir()
        mount_overlay(layers, d / "upper", d / "work", rootfs)
        return []
    try:
        template = ob.host_image_template(host_template)
        (d / "upper").mkdir()
        (d / "work").mkdir()
        mount_overlay([template], d / "upper", d / "work", rootfs)
        return ob.host_binds()
    except OSError as e:
        log.debug("host image root without overlay: %s", e)
        return ob.host_image_rootfs(rootfs)


def pod_binds(sandbox: SandboxStatus, config: ContainerConfig) -> list[ob.BindMount]:
    """The pod's /etc/hosts, resolv.conf and hostname, then the container's volume mounts."""
    binds: list[ob.BindMount] = []
    for path, dest in ((sandbox.hosts_path, "/etc/hosts"), (sandbox.resolv_path, "/etc/resolv.conf")):
        if path:
            binds.append(ob.BindMount(str(path), dest))
    pod_dir = sandbox.hosts_path.parent if sandbox.hosts_path else None
    if pod_dir and (pod_dir / "hostname").exists():
        binds.append(ob.BindMount(str(pod_dir / "hostname"), "/etc/hostname"))
    for m in config.mounts:
        binds.append(ob.BindMount(str(m.host_path), m.container_path, m.read_only))
    return binds


def namespaces(sdata: dict[str, Any], sandbox: SandboxStatus, sec: SecurityConfig,
               target_pid: int) -> list[dict[str, str]]:
    """The namespaces of the OCI spec: PID (own, node's, target's or the pod's shared one),
    a mount namespace of its own, and the sandbox's IPC, network and UTS ones."""
    shared_pid = str((sdata.get("pid_holder") or {}).get("path") or "")
    out = [*oci_security.pid_namespace(sec, target_pid, shared_pid), {"type": "mount"}]
    if sdata.get("ipc_ns"):  # none: hostIPC
        out.append({"type": "ipc", "path": sdata["ipc_ns"]})
    if sandbox.netns_path:
        out.append({"type": "network", "path": sandbox.netns_path})
    if sdata.get("uts_ns"):
        out.append({"type": "uts", "path": sdata["uts_ns"]})
    return out
