"""A pod's security settings as the node applies them: pure functions, no I/O.

- :func:`security_config`: a container's securityContext merged with the pod's (the
  container's own fields win), plus the devices Bosun's annotation asks for;
- :func:`non_root_error`: kubelet's ``runAsNonRoot`` check against the image's user;
- :func:`sysctl_rejection`: kubelet's sysctl admission (the safe set, plus what the node's
  ``--allowed-unsafe-sysctls`` allows).

Host devices have no field in the pod spec (Kubernetes hands them out through device plugins
or DRA), so Bosun takes them from an annotation per container,
``devices.bosun.io/<container name>: "/dev/fuse,/dev/sda:/dev/xvda:r"``, in Docker's
``HOST[:CONTAINER][:PERMISSIONS]`` syntax: what Compose's ``devices:`` turns into.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

from bosun.agent.runtime.base import DeviceMapping, SeccompMode, SecurityConfig
from bosun.api.validation import devices

DEVICES_ANNOTATION = devices.DEVICES_ANNOTATION  # + the container's name
SYSCTL_FORBIDDEN = "SysctlForbidden"

# kubelet's SafeSysctlAllowlist (Kubernetes 1.32): namespaced, and harmless to the node.
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"})
# Which namespace a sysctl belongs to (kubelet's namespacedSysctls): only these can be set
# per pod; ``*`` ends a prefix.
_IPC_SYSCTLS = ("kernel.sem", "kernel.shm*", "kernel.msg*", "fs.mqueue.*")
_NET_SYSCTLS = ("net.*",)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns)


def normalize_sysctl(name: str) -> str:
    """``net/ipv4/ip_forward`` -> ``net.ipv4.ip_forward`` (Kubernetes accepts either separator;
    with ``/`` first, dots are part of a name, e.g. an interface's)."""
    dot, slash = name.find("."), name.find("/")
    if slash == -1 or (dot != -1 and dot < slash):
        return name
    return name.translate(str.maketrans("./", "/."))


def namespaced(pattern: str) -> bool:
    """Whether a sysctl (or an allow-list pattern ending in ``*``) is set per pod."""
    return _matches(pattern.rstrip("*") if pattern.endswith("*") else pattern, _IPC_SYSCTLS + _NET_SYSCTLS)


def check_unsafe_allowlist(patterns: list[str]) -> None:
    """kubelet refuses to start with a pattern that is not a namespaced sysctl."""
    bad = [p for p in patterns if not namespaced(normalize_sysctl(p))]
    if bad:
        raise ValueError(f"the sysctls {bad} are not known to be namespaced: only kernel.sem, kernel.shm*, "
                         "kernel.msg*, fs.mqueue.* and net.* can be allowed")


def sysctl_rejection(pod: dict[str, Any], allowed_unsafe: list[str]) -> str | None:
    """The message a pod is rejected with (reason :data:`SYSCTL_FORBIDDEN`), or None."""
    spec = pod.get("spec") or {}
    for s in (spec.get("securityContext") or {}).get("sysctls") or []:
        name = normalize_sysctl(str(s.get("name") or ""))
        allowed = name in SAFE_SYSCTLS or any(fnmatch.fnmatchcase(name, normalize_sysctl(p)) if p.endswith("*")
                                              else name == normalize_sysctl(p) for p in allowed_unsafe)
        if not allowed:
            return f'forbidden sysctl: "{name}" not allowlisted'
        if spec.get("hostNetwork") and _matches(name, _NET_SYSCTLS):
            return f'forbidden sysctl: "{name}" not allowed with host net enabled'
        if spec.get("hostIPC") and _matches(name, _IPC_SYSCTLS):
            return f'forbidden sysctl: "{name}" not allowed with host ipc enabled'
    return None


def parse_devices(text: str) -> list[DeviceMapping]:
    """The devices annotation's value (syntax: :mod:`bosun.api.validation.devices`)."""
    return [DeviceMapping(*d) for d in devices.parse_devices(text)]


def _seccomp(sc: dict[str, Any], psc: dict[str, Any], seccomp_dir: Path) -> tuple[SeccompMode, Path | None]:
    profile = sc.get("seccompProfile") or psc.get("seccompProfile") or {}
    kind = str(profile.get("type") or "Unconfined")
    if kind == SeccompMode.RUNTIME_DEFAULT:
        return SeccompMode.RUNTIME_DEFAULT, None
    if kind == SeccompMode.LOCALHOST:
        rel = str(profile.get("localhostProfile") or "")
        path = (seccomp_dir / rel).resolve()
        if not rel or not path.is_relative_to(seccomp_dir.resolve()):
            raise ValueError(f"seccomp localhostProfile {rel!r} must name a file under {seccomp_dir}")
        return SeccompMode.LOCALHOST, path
    return SeccompMode.UNCONFINED, None


def security_config(c: dict[str, Any], pod: dict[str, Any], seccomp_dir: Path) -> SecurityConfig:
    """Raises ValueError for what cannot be honoured (a malformed devices annotation, a
    Localhost profile outside the node's seccomp directory): CreateContainerConfigError."""
    spec = pod.get("spec") or {}
    psc = spec.get("securityContext") or {}
    sc = c.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    mode, profile = _seccomp(sc, psc, seccomp_dir)
    return SecurityConfig(
        run_as_user=sc.get("runAsUser", psc.get("runAsUser")),
        run_as_group=sc.get("runAsGroup", psc.get("runAsGroup")),
        supplemental_groups=[int(g) for g in psc.get("supplementalGroups") or []],
        privileged=bool(sc.get("privileged")),
        read_only_root_filesystem=bool(sc.get("readOnlyRootFilesystem")),
        allow_privilege_escalation=sc.get("allowPrivilegeEscalation", True) is not False,
        capabilities_add=[str(x) for x in caps.get("add") or []],
        capabilities_drop=[str(x) for x in caps.get("drop") or []],
        seccomp=mode, seccomp_profile=profile,
        unmasked_proc=sc.get("procMount") == "Unmasked",
        sysctls={normalize_sysctl(str(s.get("name"))): str(s.get("value") or "")
                 for s in psc.get("sysctls") or [] if s.get("name")},
        devices=parse_devices(str(annotations.get(DEVICES_ANNOTATION + str(c.get("name")), ""))),
        host_pid=bool(spec.get("hostPID")))


def non_root_error(c: dict[str, Any], pod: dict[str, Any], image_user: str) -> str | None:
    """kubelet's verifyRunAsNonRoot: with ``runAsNonRoot`` a container must provably not run
    as uid 0; an image with no USER runs as root, a user name cannot be checked."""
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    sc = c.get("securityContext") or {}
    if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
        return None
    meta = pod.get("metadata") or {}
    where = f'(pod: "{meta.get("name")}_{meta.get("namespace")}({meta.get("uid")})", container: {c.get("name")})'
    run_as = sc.get("runAsUser", psc.get("runAsUser"))
    if run_as is not None:
        return f"container's runAsUser breaks non-root policy {where}" if int(run_as) == 0 else None
    user = image_user.partition(":")[0]
    if not user or user == "0":
        return f"container has runAsNonRoot and image will run as root {where}"
    if not user.isdigit():
        return f"container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root " \
               f"{where}"
    return None


def unapplied(sec: SecurityConfig) -> list[str]:
    """The securityContext fields asked for that a driver without the SecurityEnforcing
    ability (host processes) does not apply."""
    asked = {
        "privileged": sec.privileged, "capabilities": bool(sec.capabilities_add or sec.capabilities_drop),
        "runAsUser": sec.run_as_user is not None, "runAsGroup": sec.run_as_group is not None,
        "readOnlyRootFilesystem": sec.read_only_root_filesystem,
        "allowPrivilegeEscalation": not sec.allow_privilege_escalation,
        "seccompProfile": sec.seccomp != SeccompMode.UNCONFINED, "procMount": sec.unmasked_proc,
        "sysctls": bool(sec.sysctls), "devices": bool(sec.devices)}
    return [name for name, on in asked.items() if on]
