"""`--runtime auto|oci|process|docker`: which driver this node uses.

``auto`` never picks docker: a node runs pods through a Docker Engine only when asked to."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from typing import Any

from bosun.agent.runtime.base import RuntimeDriver
from bosun.agent.runtime.process import ProcessDriver


def oci_available() -> bool:
    """oci needs root, crun or runc, and the oci driver module (built separately)."""
    if os.geteuid() != 0 or not (shutil.which("crun") or shutil.which("runc")):
        return False
    try:
        importlib.import_module("bosun.agent.runtime.oci")
    except ImportError:
        return False
    return True


def preflight(name: str) -> None:
    """Raise :class:`DriverError` (one line for the CLI) when ``name`` cannot run on this node,
    before anything is started or registered: a docker node with no engine answering."""
    if name == "docker":
        importlib.import_module("bosun.agent.runtime.docker_engine").connect(None, 1).close()


def make_driver(name: str, root: Path, node_ip: str, **oci_options: Any) -> RuntimeDriver:
    if name == "auto":
        name = "oci" if oci_available() else "process"
    if name == "process":
        return ProcessDriver(root / "process", node_ip)
    if name == "oci":
        mod = importlib.import_module("bosun.agent.runtime.oci")
        factory = mod.OciDriver
        driver: RuntimeDriver = factory(root / "oci", node_ip, **oci_options)
        return driver
    if name == "docker":  # imported here only: the Docker SDK is loaded by the nodes that use it
        options = {k: v for k, v in oci_options.items() if k in ("ipam_dir", "bridge", "network_name", "pod_cidr")}
        docker_driver: RuntimeDriver = importlib.import_module("bosun.agent.runtime.docker").DockerDriver(
            root / "docker", node_ip, **options)
        return docker_driver
    raise ValueError(f"unknown runtime {name!r}: choose auto, oci, process or docker")
