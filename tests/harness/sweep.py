"""Removing a harness's traces: its own teardown, and a sweep of what crashed runs left.

A harness first writes ``/tmp/bosun-harness/ID/owner`` (pid and start time of the process
running it) and only then creates namespaces, links, cgroups and processes; it deletes that
directory last. So at any moment everything named ``bnhID*`` either has a directory whose
owner is alive (a running harness, maybe another helper's: left alone) or belongs to a dead
run and is removed by :func:`sweep`, which every harness runs before it starts.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from types import FrameType

from tests.harness import cgroups
from tests.harness.netns import PREFIX, ip, leftover_links, netns_list

ROOT = Path("/tmp/bosun-harness")
_HID = re.compile(rf"^{PREFIX}([0-9a-f]{{5}})")


def _start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: starttime


def claim(base: Path) -> None:
    """Mark ``base`` as this process's harness (before anything else is created)."""
    tmp = base.with_name(f".{base.name}")
    tmp.mkdir(parents=True)
    (tmp / "owner").write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
    tmp.rename(base)  # appears with its owner already written: a sweep never sees it ownerless


def owner_alive(hid: str) -> bool:
    try:
        pid, started = (ROOT / hid / "owner").read_text().split()
    except (OSError, ValueError):
        return False
    return _start_time(int(pid)) == started


def mounts_under(path: Path) -> list[str]:
    """Mount points in this mount namespace at or below ``path``."""
    out = []
    prefix = str(path).rstrip("/")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point == prefix or point.startswith(prefix + "/"):
            out.append(point)
    return out


def teardown(hid: str) -> None:
    """Remove everything of harness ``hid``: processes and cgroups, namespaces (with their
    links and nft tables), the root link, mounts under its directory, the directory."""
    prefix = f"{PREFIX}{hid}"
    cgroups.destroy(prefix)
    for ns in netns_list():
        if ns.startswith(prefix + "-"):
            ip("netns", "del", ns, check=False)
    for link in leftover_links(hid):
        ip("link", "del", link, check=False)
    base = ROOT / hid
    for point in sorted(mounts_under(base), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    shutil.rmtree(base, ignore_errors=True)


def harness_ids() -> set[str]:
    """Ids with any trace: a directory, a namespace, a root link or a cgroup."""
    ids: set[str] = set()
    if ROOT.is_dir():
        ids |= {d.name for d in ROOT.iterdir() if d.is_dir() and re.fullmatch(r"[0-9a-f]{5}", d.name)}
    names = netns_list() + leftover_links("") + [Path(c).name for c in cgroups.leftovers(PREFIX)]
    for name in names:
        m = _HID.match(name)
        if m:
            ids.add(m.group(1))
    return ids


def sweep() -> list[str]:
    """Tear down every harness whose owner is gone; returns their ids."""
    dead = sorted(hid for hid in harness_ids() if not owner_alive(hid))
    for hid in dead:
        teardown(hid)
    return dead


_installed = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C (finalizers and atexit run, so clusters are removed)
    when nobody else handles it; only possible from the main thread."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError):
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)
    _installed = True
