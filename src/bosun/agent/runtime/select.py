"""`--runtime auto|oci|process`: which driver this node uses."""

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
    raise ValueError(f"unknown runtime {name!r}: choose auto, oci or process")
