"""What a container's securityContext puts in its OCI spec: capabilities, no_new_privs, the
read-only root, /proc masking, sysctls, the seccomp filter, device nodes and the PID
namespace, as containerd's CRI plugin decides them for Kubernetes.

A privileged container gets every capability and host device, an unmasked /proc, a
writable /sys and no seccomp filter (containerd's rule); everything else follows the fields.
"""

from __future__ import annotations

from typing import Any

from bosun.agent.runtime import oci_bundle as ob
from bosun.agent.runtime import seccomp
from bosun.agent.runtime.base import SeccompMode, SecurityConfig
from bosun.agent.runtime.oci_devices import device_spec, host_devices


def bundle_fields(sec: SecurityConfig) -> dict[str, Any]:
    """Keyword arguments of :class:`~bosun.agent.runtime.oci_bundle.BundleInput`; raises
    ValueError (the container cannot be created) for a missing device or seccomp profile."""
    caps = ob.capabilities(sec.capabilities_add, sec.capabilities_drop, sec.privileged, ob.bounding_caps())
    specs = [device_spec(m) for m in sec.devices]
    if sec.privileged:
        wanted = {s.node["path"] for s in specs}
        for m in host_devices():
            if m.container_path not in wanted:
                try:
                    specs.append(device_spec(m))
                except ValueError:
                    continue  # went away while /dev was read
    profile: dict[str, Any] | None = None
    if not sec.privileged and sec.seccomp == SeccompMode.RUNTIME_DEFAULT:
        profile = seccomp.oci_profile(seccomp.runtime_default(), caps)
    elif not sec.privileged and sec.seccomp == SeccompMode.LOCALHOST:
        if sec.seccomp_profile is None:
            raise ValueError("seccomp profile Localhost: no localhostProfile given")
        profile = seccomp.oci_profile(seccomp.load(sec.seccomp_profile), caps)
    return {
        "privileged": sec.privileged,
        "caps": caps,
        "no_new_privileges": not sec.allow_privilege_escalation and not sec.privileged,
        "read_only_root": sec.read_only_root_filesystem,
        "unmasked_proc": sec.unmasked_proc,
        "sysctls": dict(sec.sysctls),
        "seccomp": profile,
        "devices": [s.node for s in specs],
        "device_rules": [] if sec.privileged else [s.rule for s in specs],
    }


def pid_namespace(sec: SecurityConfig, target_pid: int, shared: str = "") -> list[dict[str, str]]:
    """The container's PID namespace entry: its own, the node's (none), the target's, or the
    pod's ``shared`` one (shareProcessNamespace)."""
    if sec.host_pid:
        return []
    if sec.pid_target:
        if target_pid <= 0:
            raise ValueError(f"target container {sec.pid_target} is not running: its process namespace "
                             "cannot be shared")
        return [{"type": "pid", "path": f"/proc/{target_pid}/ns/pid"}]
    return [{"type": "pid", "path": shared}] if shared else [{"type": "pid"}]
