"""The OCI runtime spec (``config.json``) for one container: pure functions, no I/O but
reading the image's /etc/passwd to resolve a user name.

Defaults follow containerd's for Kubernetes: its default capability set, masked and
read-only /proc paths, a private /dev, and a read-only /sys; ``privileged`` lifts them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# containerd's default capabilities for a container.
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]

# Every capability, by number (linux/capability.h): bit i of a capability mask is ALL_CAPS[i].
ALL_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
            "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
            "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
            "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
            "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
            "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
            "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]

MASKED_PATHS = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/devices/virtual/powercap"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

# Top-level host directories the `host` image shares read-only.
HOST_DIRS = ("usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "opt")


def _cap(name: str) -> str:
    n = name.upper()
    return n if n.startswith("CAP_") else "CAP_" + n


def bounding_caps(status: str = "/proc/self/status") -> list[str]:
    """The capabilities this process may hand on (its bounding set): what "all" means for a
    privileged container, as containerd's WithAllCurrentCapabilities (a node that runs with
    fewer than the kernel knows, in a container itself, cannot give more)."""
    try:
        with open(status) as f:
            mask = int(next(line.split()[1] for line in f if line.startswith("CapBnd:")), 16)
    except (OSError, StopIteration, ValueError):
        return list(ALL_CAPS)
    return [c for i, c in enumerate(ALL_CAPS) if mask >> i & 1]


def capabilities(add: list[str], drop: list[str], privileged: bool, everything: list[str] | None = None) -> list[str]:
    """Kubernetes semantics: the default set, minus ``drop`` (``ALL`` empties it), plus ``add``
    (``ALL``: ``everything``, by default every capability there is)."""
    every = list(ALL_CAPS) if everything is None else list(everything)
    if privileged:
        return every
    dropped = {_cap(d) for d in drop}
    caps = [] if "CAP_ALL" in dropped else [c for c in DEFAULT_CAPS if c not in dropped]
    for a in add:
        c = _cap(a)
        if c == "CAP_ALL":
            return every
        if c not in caps:
            caps.append(c)
    return caps


def merge_command(command: list[str], args: list[str], entrypoint: list[str], cmd: list[str]) -> list[str]:
    """Kubernetes' rule: command replaces ENTRYPOINT (and drops CMD), args replace CMD."""
    if command:
        return command + args
    return entrypoint + (args if args else cmd)


def merge_env(image_env: list[tuple[str, str]], env: list[tuple[str, str]], hostname: str) -> list[str]:
    merged: dict[str, str] = {"PATH": DEFAULT_PATH}
    merged.update(dict(image_env))
    merged["HOSTNAME"] = hostname
    merged.update(dict(env))
    return [f"{k}={v}" for k, v in merged.items()]


def _passwd(rootfs: Path, name: str) -> tuple[int, int] | None:
    try:
        lines = (rootfs / "etc" / "passwd").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        f = line.split(":")
        if len(f) >= 4 and (f[0] == name or f[2] == name):
            return int(f[2]), int(f[3])
    return None


def _group(rootfs: Path, name: str) -> int | None:
    try:
        lines = (rootfs / "etc" / "group").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        f = line.split(":")
        if len(f) >= 3 and f[0] == name:
            return int(f[2])
    return None


def resolve_user(image_user: str, run_as_user: int | None, run_as_group: int | None,
                 rootfs: Path) -> tuple[int, int]:
    """(uid, gid): the pod's securityContext first, then the image's USER (name or number)."""
    uid, gid = 0, 0
    if image_user:
        u, _, g = image_user.partition(":")
        if u.isdigit():
            uid = int(u)
            found = _passwd(rootfs, u)
            gid = found[1] if found else 0
        else:
            found = _passwd(rootfs, u)
            if found is None:
                raise ValueError(f"image user {u!r} not found in the image's /etc/passwd")
            uid, gid = found
        if g:
            gg = int(g) if g.isdigit() else _group(rootfs, g)
            if gg is None:
                raise ValueError(f"image group {g!r} not found in the image's /etc/group")
            gid = gg
    if run_as_user is not None:
        uid = run_as_user
        found = _passwd(rootfs, str(run_as_user))
        gid = found[1] if found else 0
    if run_as_group is not None:
        gid = run_as_group
    return uid, gid


@dataclass
class BindMount:
    source: str
    destination: str
    read_only: bool = False


@dataclass
class BundleInput:
    args: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    rootfs: str
    additional_gids: list[int] = field(default_factory=list)
    hostname: str = ""
    read_only_root: bool = False
    privileged: bool = False
    no_new_privileges: bool = False
    caps: list[str] = field(default_factory=list)
    binds: list[BindMount] = field(default_factory=list)
    host_image: bool = False
    namespaces: list[dict[str, str]] = field(default_factory=list)
    cgroups_path: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    tty: bool = False
    unmasked_proc: bool = False  # procMount: Unmasked (no masked or read-only /proc paths)
    sysctls: dict[str, str] = field(default_factory=dict)
    seccomp: dict[str, Any] | None = None  # linux.seccomp; None: unconfined
    devices: list[dict[str, Any]] = field(default_factory=list)  # linux.devices
    device_rules: list[dict[str, Any]] = field(default_factory=list)  # allowed in the device cgroup


def host_image_rootfs(rootfs: Path) -> list[BindMount]:
    """Prepare the `host` image's empty root: top-level host symlinks (merged /usr: /bin ->
    usr/bin) are recreated, real directories become read-only bind mounts, and the writable
    directories a program of the host expects (see ``writable_skeleton``) exist, empty."""
    rootfs.mkdir(parents=True, exist_ok=True)
    for name in HOST_DIRS:
        host = Path("/") / name
        if host.is_symlink():
            link = rootfs / name
            if not link.is_symlink():
                os.symlink(os.readlink(host), link)
    writable_skeleton(rootfs)
    return host_binds()


def host_binds() -> list[BindMount]:
    """The host's real top-level directories, shared read-only with a `host` image container."""
    return [BindMount(f"/{name}", f"/{name}", True) for name in HOST_DIRS
            if not os.path.islink(f"/{name}") and os.path.isdir(f"/{name}")]


def host_image_template(parent: Path) -> Path:
    """A finished `host` image root (:func:`host_image_rootfs`) under ``parent``, made once and
    again only when the host's skeleton changes, to be the read-only lower layer of each
    container's overlay root: one mount per container instead of ~60 mkdir/chmod calls, each
    of which gave up and took back the GIL while 100 containers were being made."""
    plan = _skeleton_plan("/")
    links = [(n, os.readlink(f"/{n}")) for n in HOST_DIRS if os.path.islink(f"/{n}")]
    digest = hashlib.sha256(repr((plan, links)).encode()).hexdigest()[:16]
    final = parent / digest
    if final.is_dir():
        return final
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{digest}.{os.getpid()}.{threading.get_native_id()}"
    shutil.rmtree(tmp, ignore_errors=True)
    host_image_rootfs(tmp)
    try:
        os.rename(tmp, final)
    except OSError:  # another thread finished the same template first
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# Host directories whose own subdirectories are recreated (empty) in the `host` image: the
# places packages keep logs, state and caches (/var/log/nginx, /var/lib/nginx, ...).
SKELETON_PARENTS = ("var/log", "var/lib", "var/cache", "var/spool")

_Entry = tuple[str, str, int, int, int]  # relative path, symlink target ("": a directory), mode, uid, gid
_plans: dict[str, tuple[tuple[float, ...], list[_Entry]]] = {}


def writable_skeleton(rootfs: Path, host: Path = Path("/")) -> None:
    """Give the `host` image what an image built from this host would have: /run, /root, /home
    and /var's directory tree (two levels, as on the host, with the host's owners and modes)
    in the container's own writable root, empty. Programs installed on the host (nginx needs
    /var/log/nginx, /var/lib/nginx and /run) then start with no volume, and nothing of the
    host's /var (its data) is shared.

    The list of what to make is read from the host once and again only when one of the
    scanned directories changed (their mtimes): with 100 containers starting at once,
    scanning and the pathlib calls per entry were most of the agent's file work."""
    root = os.fspath(rootfs)
    for rel, target, mode, uid, gid in _skeleton_plan(os.fspath(host)):
        dest = f"{root}/{rel}"
        try:
            if target:
                os.symlink(target, dest)
                continue
            os.mkdir(dest)
        except FileExistsError:
            continue
        if uid or gid:
            try:
                os.chown(dest, uid, gid)
            except PermissionError:  # not root (the process driver's tests): keep our own
                pass
        os.chmod(dest, mode)


def _skeleton_plan(host: str) -> list[_Entry]:
    scanned = [f"{host}/var", *(f"{host}/{p}" for p in SKELETON_PARENTS)]
    stamp = tuple(_mtime(d) for d in scanned)
    cached = _plans.get(host)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    plan: list[_Entry] = [("run", "", 0o755, 0, 0), ("run/lock", "", 0o1777, 0, 0), ("root", "", 0o700, 0, 0),
                          ("home", "", 0o755, 0, 0), ("var", "", 0o755, 0, 0)]
    made = {e[0] for e in plan}
    for parent, links in (("var", True), *((p, False) for p in SKELETON_PARENTS)):
        if parent not in made:  # /var/lib is made by the /var level unless it is missing there
            plan.append((parent, "", 0o755, 0, 0))
            made.add(parent)
        for entry in _subdirs(f"{host}/{parent}", links):
            rel = f"{parent}/{entry.name}"
            if rel in made:
                continue
            made.add(rel)
            if entry.is_symlink():
                plan.append((rel, os.readlink(entry.path), 0, 0, 0))
            else:
                st = entry.stat(follow_symlinks=False)
                plan.append((rel, "", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid))
    _plans[host] = (stamp, plan)
    return plan


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _subdirs(path: str, links: bool) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted((e for e in it if (links and e.is_symlink()) or e.is_dir(follow_symlinks=False)),
                          key=lambda e: e.name)
    except OSError:
        return []


def build_spec(b: BundleInput) -> dict[str, Any]:
    caps = list(b.caps)
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "rw" if b.privileged else "ro"]},
    ]
    if b.host_image:
        mounts.append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "mode=1777"]})
    for m in b.binds:
        mounts.append({"destination": m.destination, "type": "bind", "source": m.source,
                       "options": ["rbind", "rprivate", "ro" if m.read_only else "rw"]})
    process: dict[str, Any] = {
        "terminal": b.tty,
        "user": {"uid": b.uid, "gid": b.gid, **({"additionalGids": b.additional_gids} if b.additional_gids else {})},
        "args": b.args,
        "env": b.env,
        "cwd": b.cwd or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": b.no_new_privileges,
    }
    linux: dict[str, Any] = {
        "namespaces": b.namespaces,
        "resources": {"devices": [{"allow": False, "access": "rwm"}, *b.device_rules] if not b.privileged else
                      [{"allow": True, "access": "rwm"}]},
    }
    if b.cgroups_path:
        linux["cgroupsPath"] = b.cgroups_path
    if not b.privileged and not b.unmasked_proc:
        linux["maskedPaths"] = MASKED_PATHS
        linux["readonlyPaths"] = READONLY_PATHS
    if b.devices:
        linux["devices"] = b.devices
    if b.sysctls:
        linux["sysctl"] = dict(b.sysctls)
    if b.seccomp is not None:
        linux["seccomp"] = b.seccomp
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": b.rootfs, "readonly": b.read_only_root},
        "mounts": mounts,
        "linux": linux,
        "annotations": b.annotations,
    }
    if b.hostname:
        spec["hostname"] = b.hostname
    return spec
