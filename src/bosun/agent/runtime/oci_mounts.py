"""mount(2)/umount2(2) through libc: overlay roots and namespace files, without a process each."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
MNT_DETACH = 2


def is_mounted(path: str) -> bool:
    real = os.path.realpath(path)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return False
    return any(line.split()[4] == real for line in lines)


def mount_overlay(lower: list[Path], upper: Path, work: Path, target: Path) -> None:
    """Stack ``lower`` (bottom first, as in the image config) under a writable ``upper``."""
    if not lower:
        raise ValueError("an image needs at least one layer")
    opts = f"lowerdir={':'.join(str(p) for p in reversed(lower))},upperdir={upper},workdir={work}"
    if len(opts) >= 4096:
        raise ValueError(f"image has too many layers ({len(lower)}) for one overlay mount")
    if _libc.mount(b"overlay", str(target).encode(), b"overlay", 0, opts.encode()) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"overlay mount on {target} failed: {os.strerror(e)}")


def mount_tmpfs(target: Path, size_bytes: int | None) -> None:
    """A memory-backed directory (emptyDir medium Memory); ``size_bytes`` caps it."""
    opts = "mode=0777" + (f",size={size_bytes}" if size_bytes else "")
    if _libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", 0, opts.encode()) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"tmpfs mount on {target} failed: {os.strerror(e)}")


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first (the order to unmount them in)."""
    root = os.path.realpath(path)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    found = {mp for mp in (line.split()[4] for line in lines) if mp == root or mp.startswith(root + "/")}
    return sorted(found, key=len, reverse=True)


def unmount(path: str) -> None:
    """Detach every mount stacked on ``path``; nothing mounted there is fine."""
    for _ in range(16):
        if _libc.umount2(path.encode(), MNT_DETACH) != 0:
            e = ctypes.get_errno()
            if e in (errno.EINVAL, errno.ENOENT):
                return
            raise OSError(e, f"umount {path}: {os.strerror(e)}")
