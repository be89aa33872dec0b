"""Seccomp profiles for the OCI spec: the runtime's default one and Localhost files.

``RuntimeDefault`` is not written here: it is the profile the containers project maintains
for Podman and CRI-O (itself derived from Docker's), which Debian ships in
``golang-github-containers-common`` as ``/usr/share/containers/seccomp.json`` (an
administrator's ``/etc/containers/seccomp.json`` wins, as for Podman). That file is in
Docker's format, whose rules depend on the container: a rule applies only on the
architectures, kernel versions and capabilities it ``includes`` and not on those it
``excludes`` (so a container given CAP_SYS_ADMIN may call ``mount``). :func:`oci_profile`
resolves them for one container into the ``linux.seccomp`` section crun and runc read,
as containerd and Podman do when they load the same file.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

DEFAULT_PROFILES = (Path("/etc/containers/seccomp.json"), Path("/usr/share/containers/seccomp.json"))

# Go's architecture names (the profile's "arches") for the machine's, and libseccomp's.
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "x86", "i386": "x86", "armv7l": "arm",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "mips64": "mips64"}
_SCMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "x86": "SCMP_ARCH_X86",
              "arm": "SCMP_ARCH_ARM", "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X",
              "riscv64": "SCMP_ARCH_RISCV64", "mips64": "SCMP_ARCH_MIPS64"}


class SeccompError(ValueError):
    """A profile that cannot be found or read (the container cannot be created)."""


def host_arch() -> str:
    machine = platform.machine()
    return _GO_ARCH.get(machine, machine)


def kernel_version() -> tuple[int, int]:
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return 0, 0


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise SeccompError(f"cannot read seccomp profile {path}: {e.strerror or e}") from e
    except ValueError as e:
        raise SeccompError(f"seccomp profile {path} is not valid JSON: {e}") from e
    if not isinstance(data, dict) or "defaultAction" not in data:
        raise SeccompError(f"seccomp profile {path} has no defaultAction")
    return data


def runtime_default() -> dict[str, Any]:
    """The node's default profile, in Docker's format (resolve it with :func:`oci_profile`)."""
    for path in DEFAULT_PROFILES:
        if path.is_file():
            return load(path)
    raise SeccompError("seccomp profile RuntimeDefault: no default profile on this node "
                       f"({' or '.join(map(str, DEFAULT_PROFILES))}; apt-get install golang-github-containers-common)")


def _applies(rule: dict[str, Any], caps: set[str], arch: str, kernel: tuple[int, int]) -> bool:
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if exc.get("arches") and arch in exc["arches"]:
        return False
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if exc.get("caps") and set(exc["caps"]) & caps:
        return False
    if inc.get("minKernel"):
        major, _, minor = str(inc["minKernel"]).partition(".")
        if kernel < (int(major), int(minor or 0)):
            return False
    return True


def oci_profile(profile: dict[str, Any], caps: list[str], arch: str | None = None,
                kernel: tuple[int, int] | None = None) -> dict[str, Any]:
    """The ``linux.seccomp`` of a container with capabilities ``caps`` (a profile already in
    the OCI format passes through with its rules unchanged)."""
    arch = arch or host_arch()
    kernel = kernel or kernel_version()
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = int(profile["defaultErrnoRet"])
    if profile.get("architectures"):
        out["architectures"] = list(profile["architectures"])
    else:
        for entry in profile.get("archMap") or []:
            if entry.get("architecture") == _SCMP_ARCH.get(arch):
                out["architectures"] = [entry["architecture"], *(entry.get("subArchitectures") or [])]
    if profile.get("flags"):
        out["flags"] = list(profile["flags"])
    syscalls = []
    capset = set(caps)
    for rule in profile.get("syscalls") or []:
        if not _applies(rule, capset, arch, kernel):
            continue
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        if not names:
            continue
        call: dict[str, Any] = {"names": names, "action": rule["action"]}
        if rule.get("args"):
            call["args"] = rule["args"]
        if rule.get("errnoRet") is not None:
            call["errnoRet"] = int(rule["errnoRet"])
        syscalls.append(call)
    out["syscalls"] = syscalls
    return out
