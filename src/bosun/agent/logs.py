"""Reading container logs written in the CRI format, for `kubectl logs`.

Options mirror the API's PodLogOptions: tailLines, sinceSeconds or sinceTime, timestamps,
follow, previous, limitBytes.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path


def log_files(container_dir: Path) -> list[Path]:
    """Attempts' log files of one container, oldest first."""
    files = [p for p in container_dir.glob("*.log") if p.stem.isdigit()]
    return sorted(files, key=lambda p: int(p.stem))


def parse_time(stamp: str) -> float:
    base, _, frac = stamp.rstrip("Z").partition(".")
    t = datetime.fromisoformat(base + "+00:00").timestamp()
    return t + (float("0." + frac) if frac else 0.0)


def since(since_seconds: str | None, since_time: str | None) -> float | None:
    """The time from which lines are wanted (the API server checked the values)."""
    if since_seconds:
        return time.time() - float(since_seconds)
    if since_time:
        return datetime.fromisoformat(since_time.replace("Z", "+00:00")).timestamp()
    return None


def render(line: bytes, timestamps: bool) -> tuple[bytes, float, bool]:
    """(output bytes, record time, ends a line) for one CRI record."""
    try:
        stamp, _stream, tag, text = line.rstrip(b"\n").split(b" ", 3)
    except ValueError:
        return line, 0.0, True
    full = tag == b"F"
    out = text + (b"\n" if full else b"")
    if timestamps:
        out = stamp + b" " + out
    try:
        when = parse_time(stamp.decode())
    except ValueError:
        when = 0.0
    return out, when, full


def read(path: Path, *, tail: int | None, since: float | None, timestamps: bool) -> tuple[bytes, int]:
    """What is in the file now (filtered), and the offset to follow from."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return b"", 0
    end = data.rfind(b"\n") + 1
    records = data[:end].splitlines(keepends=True)
    out: list[bytes] = []
    for rec in records:
        text, when, _ = render(rec, timestamps)
        if since is not None and when < since:
            continue
        out.append(text)
    if tail is not None:
        out = out[-tail:] if tail > 0 else []
    return b"".join(out), end


def _read_from(path: Path, offset: int) -> tuple[bytes, int]:
    """Bytes of ``path`` after ``offset`` and the file's inode (0 when it does not exist)."""
    try:
        with path.open("rb") as f:
            ino = os.fstat(f.fileno()).st_ino
            f.seek(offset)
            return f.read(), ino
    except FileNotFoundError:
        return b"", 0


async def follow(path: Path, offset: int, timestamps: bool, alive: asyncio.Event) -> AsyncIterator[bytes]:
    """New records as they are written, until ``alive`` is cleared and the file is drained.

    A rotation (the file renamed to ``<name>.1`` and a new one started) shows as a new
    inode: what was written to the old file after our last read is taken from ``.1``, then
    the new file is read from its start."""
    buf = b""
    ino = _read_from(path, 0)[1] if offset else 0
    while True:
        chunk, now_ino = _read_from(path, offset)
        rest = b""
        if ino and now_ino and now_ino != ino:
            rotated, old_ino = _read_from(path.with_name(path.name + ".1"), offset)
            rest = rotated if old_ino == ino else b""
            chunk, now_ino = _read_from(path, 0)
            offset = 0
        if now_ino:
            ino = now_ino
        if chunk or rest:
            offset += len(chunk)
            buf += rest + chunk
            *lines, buf = buf.split(b"\n")
            out = b"".join(render(line + b"\n", timestamps)[0] for line in lines)
            if out:
                yield out
            continue
        if not alive.is_set():
            return
        await asyncio.sleep(0.1)
