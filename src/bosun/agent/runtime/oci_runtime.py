"""Which OCI runtime the oci driver runs, and how: crun or runc, the hybrid-cgroups
workaround, the sealed in-memory copy of the binary, and reading the runtime's own errors.

Why a module: these are facts about the runtime binary and the host it runs on, settled once
at driver start, apart from what the driver does with containers.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

from bosun.agent import cgroups
from bosun.agent.runtime.base import DriverError

HYBRID_UNIFIED = Path("/sys/fs/cgroup/unified")
"""crun 1.8 refuses to create any container on a hybrid layout whose cgroup v2 hierarchy
holds a controller (here hugetlb, which no v1 hierarchy mounts), even with
--cgroup-manager=disabled: libcrun_cgroup_enter reads /sys/fs/cgroup/unified/cgroup.controllers
and fails when it is not empty. It decides "hybrid" by statfs() of that directory, though: in a
private mount namespace where it is unmounted crun sees the legacy (v1 only) layout and places
the container in the v1 controllers and name=systemd, as runc does. So the shim starts
``crun run`` in such a namespace (spec ``hide_mount``, see shim._hide_mount); it lives only as
long as that command, the container's own mount namespace being pivoted away from it. Only
creation checks the layout: ``crun exec``, ``kill`` and ``delete`` work as they are."""


def hybrid_cgroups_busy() -> bool:
    """Hybrid cgroups whose v2 hierarchy has controllers: what crun refuses to create on."""
    if cgroups.is_v2():
        return False
    try:
        return bool((HYBRID_UNIFIED / "cgroup.controllers").read_text().strip())
    except OSError:
        return False


def pick_runtime(preferred: str = "auto") -> str:
    """crun (much faster to start than runc: ~5 ms of CPU against ~20, and no Go runtime)
    unless it is not installed; runc otherwise. Busy hybrid cgroups: see HYBRID_UNIFIED."""
    if preferred != "auto":
        path = shutil.which(preferred)
        if not path:
            raise DriverError("RuntimeMissing", f"OCI runtime {preferred!r} not found (apt-get install {preferred})")
        return path
    runtime = shutil.which("crun") or shutil.which("runc")
    if runtime:
        return runtime
    raise DriverError("RuntimeMissing", "neither crun nor runc is installed (apt-get install crun)")


def hidden_mount(runtime: str) -> str:
    """The mount ``<runtime> run`` must not see (empty: none)."""
    return str(HYBRID_UNIFIED) if os.path.basename(runtime) == "crun" and hybrid_cgroups_busy() else ""


SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
MFD_EXEC = 0x0010  # Linux 6.3+: say that the memfd is meant to be executed (vm.memfd_noexec)


def sealed_copy(runtime: str, link: Path) -> int:
    """A sealed in-memory copy of ``runtime`` (an fd of ours) and ``link`` to it; returns the fd.

    Why: against CVE-2019-5736 (a container overwriting the runtime binary through
    /proc/self/exe), crun re-executes itself at every start unless /proc/self/exe is already a
    sealed memfd: a read-only bind mount of its binary in /tmp, mounted and unmounted, then
    the binary and its ten libraries loaded a second time. That is 1.3 of crun exec's 4.4 ms
    of CPU here, paid by every container start, probe, kill and delete. Executed from this
    copy, crun finds itself sealed (its own check: the exact seals it would set) and goes
    straight to work; the protection is the same, since a sealed memfd cannot be written."""
    try:
        fd = os.memfd_create("crun", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING | MFD_EXEC)
    except OSError:  # older kernels know no MFD_EXEC (and execute memfds anyway)
        fd = os.memfd_create("crun", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        with open(runtime, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            sent = 0
            while sent < size:
                n = os.sendfile(fd, f.fileno(), sent, size - sent)
                if n <= 0:
                    raise OSError(f"short copy of {runtime}")
                sent += n
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".{link.name}.{os.getpid()}.{fd}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(f"/proc/{os.getpid()}/fd/{fd}")
        os.replace(tmp, link)
    except BaseException:
        os.close(fd)
        raise
    return fd


def runtime_error(path: Path) -> str:
    """The runtime's last error from its JSON log (crun and runc both write ``msg``)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ""
    msg = ""
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            if line.strip():
                msg = line.strip()
            continue
        if isinstance(rec, dict) and rec.get("level") in ("error", "fatal"):
            msg = str(rec.get("msg") or "")
    for prefix in ("runc run failed: ", "runc create failed: "):
        msg = msg.removeprefix(prefix)
    return msg
