"""A container's securityContext as Docker's create options: what oci_security puts in an OCI
spec, said in the HostConfig and Config fields the Docker Engine turns into the same spec.

- capabilities: Kubernetes' set (oci_bundle.capabilities: the default one, ``drop``, then
  ``add``) given whole, as ``CapDrop: [ALL]`` and ``CapAdd`` of Docker's names (no ``CAP_``),
  so Docker's own default set never differs from Kubernetes'; ``add: [ALL]`` is Docker's
  ``ALL`` less what the node's bounding set lacks;
- seccomp: ``Unconfined`` (Kubernetes' default) is ``seccomp=unconfined``; ``RuntimeDefault`` is
  the engine's own default profile; a ``Localhost`` profile is handed over as its JSON text,
  as the docker CLI does with ``--security-opt seccomp=FILE``;
- ``procMount: Unmasked`` empties Docker's masked and read-only /proc paths;
- devices are checked on the node first (oci_devices), so a missing one says so as with oci.

``privileged`` is Docker's own where the engine can give every capability the kernel knows.
Where it cannot (a node that itself runs in a container with a smaller bounding set: Docker
asks for all and runc then fails with "unable to apply caps"), it is spelled out as containerd
does it (WithAllCurrentCapabilities): every capability of the bounding set, every host device
and any device rule, no seccomp or AppArmor, nothing masked. Only /sys stays read-only there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bosun.agent.runtime import oci_bundle as ob
from bosun.agent.runtime import seccomp
from bosun.agent.runtime.base import SeccompMode, SecurityConfig
from bosun.agent.runtime.oci_devices import device_spec, host_devices

# Nodes every container gets from the engine itself (runc's default devices): not mapped again.
_ENGINE_DEVICES = frozenset({"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
                             "/dev/ptmx", "/dev/console"})


@dataclass
class DockerSecurity:
    host: dict[str, Any] = field(default_factory=dict)  # create_host_config keyword arguments
    raw_host: dict[str, Any] = field(default_factory=dict)  # HostConfig keys the SDK has no argument for
    user: str | None = None


def _unheld(status: str = "/proc/self/status", last_cap: str = "/proc/sys/kernel/cap_last_cap") -> list[str]:
    """The capabilities the kernel knows that this node may not hand on (its bounding set lacks them)."""
    try:
        known = ob.ALL_CAPS[:int(Path(last_cap).read_text()) + 1]
    except (OSError, ValueError):
        return []
    held = set(ob.bounding_caps(status))
    return [c for c in known if c not in held]


def holds_every_capability() -> bool:
    """Whether this node may hand on every capability its kernel knows (the engine, started
    like the agent, then can too): what Docker's own ``privileged`` needs."""
    return not _unheld()


def _every_capability() -> dict[str, list[str]]:
    """All that may be given, in Docker's words: ``ALL`` (every capability the engine knows, a
    list older than the kernel's: Docker 20.10 has no PERFMON) but those the node lacks."""
    return {"cap_add": ["ALL"], "cap_drop": [c.removeprefix("CAP_") for c in _unheld()]}


def user_of(sec: SecurityConfig, image_user: str) -> str | None:
    """``runAsUser[:runAsGroup]``; a group alone applies to the image's user (root when it has none)."""
    if sec.run_as_user is None and sec.run_as_group is None:
        return image_user or None
    user = str(sec.run_as_user) if sec.run_as_user is not None else image_user.partition(":")[0] or "0"
    return user + (f":{sec.run_as_group}" if sec.run_as_group is not None else "")


def _seccomp_opt(sec: SecurityConfig) -> list[str]:
    if sec.seccomp == SeccompMode.RUNTIME_DEFAULT:
        return []
    if sec.seccomp == SeccompMode.LOCALHOST:
        if sec.seccomp_profile is None:
            raise ValueError("seccomp profile Localhost: no localhostProfile given")
        return ["seccomp=" + json.dumps(seccomp.load(sec.seccomp_profile))]
    return ["seccomp=unconfined"]


def docker_security(sec: SecurityConfig, image_user: str, *, full_privilege: bool) -> DockerSecurity:
    """Raises ValueError (the container cannot be created) for a missing device or seccomp profile."""
    out = DockerSecurity(user=user_of(sec, image_user))
    devices = [f"{m.host_path}:{device_spec(m).node['path']}:{m.permissions or 'rwm'}" for m in sec.devices]
    if sec.sysctls:
        out.host["sysctls"] = dict(sec.sysctls)
    if sec.supplemental_groups:
        out.host["group_add"] = [str(g) for g in sec.supplemental_groups]
    if sec.read_only_root_filesystem:
        out.host["read_only"] = True
    if sec.privileged and full_privilege:
        out.host.update(privileged=True, devices=devices or None)
        return out
    opts: list[str] = []
    if sec.privileged:
        caps = _every_capability()
        wanted = {d.split(":")[1] for d in devices}
        devices += [f"{m.host_path}:{m.container_path}:rwm" for m in host_devices()
                    if m.container_path not in wanted and m.container_path not in _ENGINE_DEVICES]
        out.host["device_cgroup_rules"] = ["a *:* rwm"]
        opts += ["seccomp=unconfined", "apparmor=unconfined"]
    else:
        if any(c.upper().removeprefix("CAP_") == "ALL" for c in sec.capabilities_add):
            caps = _every_capability()
        else:
            given = ob.capabilities(sec.capabilities_add, sec.capabilities_drop, False)
            caps = {"cap_drop": ["ALL"], "cap_add": [c.removeprefix("CAP_") for c in given]}
        opts += _seccomp_opt(sec)
        if not sec.allow_privilege_escalation:
            opts.append("no-new-privileges")
    out.host.update(caps, security_opt=opts or None, devices=devices or None)
    if sec.privileged or sec.unmasked_proc:
        out.raw_host.update(MaskedPaths=[], ReadonlyPaths=[])
    return out


def pid_mode(sec: SecurityConfig, shared_with: str) -> str | None:
    """The node's PID namespace, a debug target's, the pause container's (the pod's shared
    one, as Kubernetes does it), or the container's own (None)."""
    if sec.host_pid:
        return "host"
    if sec.pid_target:
        return f"container:{sec.pid_target}"
    return f"container:{shared_with}" if shared_with else None


__all__ = ["DockerSecurity", "docker_security", "holds_every_capability", "pid_mode", "user_of"]
