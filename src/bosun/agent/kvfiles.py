"""Reading the kernel's "name number" files: /proc/meminfo, and cgroupfs's memory.stat,
cpu.stat, memory.events and memory.oom_control.

Why a module: node usage (:mod:`bosun.agent.usage`) and container usage and OOM counts
(:mod:`bosun.agent.cgroups`) read the same kind of file, and a file that cannot be read
must mean "no figures" (a cgroup removed under us) for both alike.
"""

from __future__ import annotations

from pathlib import Path


def int_fields(path: Path) -> dict[str, int]:
    """name -> number for each line ``name number`` (or ``Name: number kB``); empty when
    the file cannot be read, and lines whose second word is no number are left out."""
    out: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out
