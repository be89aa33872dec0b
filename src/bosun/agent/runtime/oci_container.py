"""What an oci container is made of before the runtime sees it: its root filesystem (an
overlay of the image's layers, or of the node's ``host`` template), the pod's files bound
into it, the namespaces it joins (the sandbox's, a debug target's PID namespace, or the
pod's shared one), and the directory :func:`prepare` writes for the shim and the runtime
(bundle, spec.json, meta.json) with the container's cgroup.

Why a module: these are decisions from the pod and sandbox records alone, in plain
functions, apart from the driver's bookkeeping of container directories and shims.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bosun.agent import cgroups
from bosun.agent.runtime import oci_bundle as ob
from bosun.agent.runtime import oci_security
from bosun.agent.runtime.base import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    ContainerConfig,
    ImageInfo,
    SandboxStatus,
    SecurityConfig,
)
from bosun.agent.runtime.disk_state import write_json
from bosun.agent.runtime.oci_mounts import mount_overlay
from bosun.agent.runtime.shim_attach import CONSOLE, interactive_spec

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


@dataclass
class Runtime:
    """The OCI runtime a container is run with."""

    name: str  # recorded in meta.json (see OciDriver._rt_of)
    argv: list[str]  # what is executed, with its --root
    is_crun: bool
    hide_mount: str  # see oci_runtime.hidden_mount


@dataclass
class Sources:
    """Where the container's root and PID namespace come from."""

    layers: list[Path] | None  # the image's layers; None: the `host` image
    host_template: Path
    target_pid: int  # a debug target's running command, whose PID namespace it joins; 0: none


def prepare(d: Path, cid: str, cg: str, sdata: dict[str, Any], sandbox: SandboxStatus, config: ContainerConfig,
            image: ImageInfo, args: list[str], src: Sources, runtime: Runtime, cgroup_tree: cgroups.Cgroups) -> None:
    """The container's directory ``d``: its root, bundle, the shim's spec, meta.json, and our
    cgroup ``cg`` with its limits (file work: run it in a thread). Raises ValueError for a
    securityContext that cannot be honoured, OSError for the rest."""
    bundle = d / "bundle"
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True)
    binds = make_root(d, rootfs, src.layers, src.host_template)
    sec = config.security
    uid, gid = ob.resolve_user(image.user, sec.run_as_user, sec.run_as_group, rootfs)
    binds += pod_binds(sandbox, config)
    labels = dict(config.labels)
    labels.update({LABEL_POD_UID: config.pod_uid, LABEL_CONTAINER_NAME: config.name,
                   LABEL_ATTEMPT: str(config.attempt)})
    spec = ob.build_spec(ob.BundleInput(
        args=args, env=ob.merge_env(image.env, config.env, sandbox.hostname),
        cwd=config.working_dir or image.working_dir or "/", uid=uid, gid=gid, rootfs=str(rootfs),
        additional_gids=list(sec.supplemental_groups),
        hostname=sandbox.hostname if sdata.get("uts_ns") else "", **oci_security.bundle_fields(sec),
        binds=binds, host_image=src.layers is None, namespaces=namespaces(sdata, sandbox, sec, src.target_pid),
        cgroups_path=f"/{cg}/ctr", annotations=labels, tty=config.tty))
    write_json(bundle / "config.json", spec)
    r = config.resources
    cgroup_tree.create(cg, cgroups.Limits(
        cpu_quota_us=r.cpu_quota_us, cpu_period_us=r.cpu_period_us, cpu_shares=r.cpu_shares,
        memory_bytes=r.memory_limit_bytes, pids=r.pids_limit))
    runtime_log = d / "runtime.log"
    log_opt = f"file:{runtime_log}" if runtime.is_crun else str(runtime_log)
    write_json(d / "spec.json", {
        "command": [*runtime.argv, "--log", log_opt, "--log-format", "json", "run", "--detach",
                    "--bundle", str(bundle), "--pid-file", str(d / "container.pid"),
                    # relative to the bundle, where the runtime runs: short whatever the data dir
                    *(["--console-socket", f"../{CONSOLE}"] if config.tty else []), cid],
        "detached_pid_file": str(d / "container.pid"), "hide_mount": runtime.hide_mount,
        "env": {"PATH": os.environ.get("PATH") or ob.DEFAULT_PATH}, "working_dir": str(d),
        "log_path": str(config.log_path), "log_max_bytes": config.log_max_bytes,
        "log_max_files": config.log_max_files, **interactive_spec(config, console=True)})
    write_json(d / "meta.json", {
        "id": cid, "pod_uid": config.pod_uid, "sandbox_id": sandbox.id, "name": config.name,
        "attempt": config.attempt, "image": config.image, "image_id": image.id, "created_at": time.time(),
        "log_path": str(config.log_path), "labels": labels, "cgroup": cg, "runtime": runtime.name})
