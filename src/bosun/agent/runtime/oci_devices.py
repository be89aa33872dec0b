"""Host device nodes in a container: the OCI ``linux.devices`` entries (the runtime makes the
node in the container's private /dev) and the device cgroup rules that let it be opened.

A container is given a device by a :class:`~bosun.agent.runtime.base.DeviceMapping` (Bosun's
devices annotation, or Compose's ``devices:``); a privileged one gets every device of the
host, as containerd does (runc's ``HostDevices``).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Any

from bosun.agent.runtime.base import DeviceMapping

# Directories of /dev that hold no device the container should get (runc's list).
_SKIPPED = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}


@dataclass
class DeviceSpec:
    node: dict[str, Any]  # linux.devices entry
    rule: dict[str, Any]  # linux.resources.devices entry


def device_spec(mapping: DeviceMapping) -> DeviceSpec:
    """Raise ValueError (the container cannot be created) for a path that is missing or not
    a device node, with a message for the pod's status."""
    perms = mapping.permissions or "rwm"
    if not perms or set(perms) - set("rwm"):
        raise ValueError(f"device {mapping.host_path}: permissions {perms!r} must be made of r, w and m")
    try:
        st = os.stat(mapping.host_path)
    except FileNotFoundError:
        raise ValueError(f"device {mapping.host_path} not found on the node") from None
    except OSError as e:
        raise ValueError(f"device {mapping.host_path}: {e.strerror or e}") from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise ValueError(f"{mapping.host_path} on the node is not a device node")
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    node = {"path": mapping.container_path or mapping.host_path, "type": kind, "major": major, "minor": minor,
            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
    return DeviceSpec(node, {"allow": True, "type": kind, "major": major, "minor": minor, "access": perms})


def host_devices(root: str = "/dev") -> list[DeviceMapping]:
    """Every character and block device under ``root`` (for a privileged container)."""
    out: list[DeviceMapping] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            dirnames[:] = [d for d in dirnames if d not in _SKIPPED]
        for name in sorted(filenames):
            if name == "console":  # the runtime's own (the container's terminal), as runc skips it
                continue
            path = os.path.join(dirpath, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                out.append(DeviceMapping(path, path))
    return out

