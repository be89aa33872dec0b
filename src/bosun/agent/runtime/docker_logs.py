"""Docker's ``json-file`` container logs copied into the CRI log files the agent serves.

Why copy: the agent reads one log format whatever the driver (see base.py), and Docker
writes its own (one JSON object per chunk: ``log``, ``stream``, ``time``). One task follows
every container of the driver by reading what Docker appended since the last pass (a stat
per container when nothing changed), so 100 pods cost no thread or stream each. The file's
inode and the offset reached are kept on disk (``<root>/logs/<container id>``), so a
restarted agent goes on where the last one stopped and no line is written twice or lost
while it was down.

Both files are bounded. The CRI log rotates as the oci driver's shim rotates it (the shim's
:class:`~bosun.agent.runtime.shim.RotatingLog`: ``<log>.1``... at ``log_max_bytes``).
Docker's own file has json-file's ``max-size``/``max-file`` (set by the driver): when it
rotates (a new inode under the name), the rest of the old one, now ``<name>.1``, is copied
first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from bosun.agent.runtime.shim import RotatingLog

log = logging.getLogger(__name__)
POLL = 0.2


@dataclass
class _Follow:
    source: Path  # Docker's json log
    dest: Path  # the CRI log
    offset: int = 0
    inode: int = 0  # of the source the offset is in; 0: not known yet (the current file)
    max_bytes: int = 0  # the CRI log's rotation (0: never)
    max_files: int = 5


def cri_lines(chunk: bytes) -> tuple[bytes, int]:
    """The CRI records for Docker's complete JSON lines in ``chunk``, and how many bytes of
    it they used (a line Docker is still writing waits for the next pass)."""
    out = bytearray()
    used = 0
    while True:
        end = chunk.find(b"\n", used)
        if end < 0:
            return bytes(out), used
        line = chunk[used:end]
        used = end + 1
        try:
            rec = json.loads(line)
            text = str(rec["log"])
            stream, stamp = str(rec.get("stream") or "stdout"), str(rec["time"])
        except (ValueError, KeyError, TypeError):
            continue
        full = text.endswith("\n")
        body = text[:-1] if full else text
        out += f"{stamp} {stream} {'F' if full else 'P'} {body}\n".encode()


class LogCopier:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._follows: dict[str, _Follow] = {}
        self._task: asyncio.Task[None] | None = None
        # The pass and a flush (an exit, a removal) run in threads of their own: one copy at a time.
        self._lock = threading.Lock()

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="docker-log-copier")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self._pass)  # what came since the last pass

    def follow(self, cid: str, source: str, dest: Path, max_bytes: int = 0, max_files: int = 5) -> None:
        if cid in self._follows or not source:
            return
        inode, offset = 0, 0
        with contextlib.suppress(OSError, ValueError):
            inode, offset = map(int, (self.state_dir / cid).read_text().split())
        self._follows[cid] = _Follow(Path(source), dest, offset, inode, max_bytes, max_files)
        with contextlib.suppress(OSError):  # there from the start, as the shim's: empty, not missing
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.touch()

    async def flush(self, cid: str) -> None:
        """Copy what Docker has of ``cid`` now (before its container is removed)."""
        f = self._follows.get(cid)
        if f is not None:
            await asyncio.to_thread(self._copy, cid, f)

    def forget(self, cid: str) -> None:
        self._follows.pop(cid, None)
        with contextlib.suppress(OSError):
            (self.state_dir / cid).unlink()

    async def _run(self) -> None:
        while True:
            await asyncio.to_thread(self._pass)
            await asyncio.sleep(POLL)

    def _pass(self) -> None:
        for cid, f in list(self._follows.items()):
            try:
                self._copy(cid, f)
            except OSError as e:
                log.debug("log of %s: %s", cid, e)

    def _copy(self, cid: str, f: _Follow) -> None:
        with self._lock:
            self._copy_locked(cid, f)

    def _copy_locked(self, cid: str, f: _Follow) -> None:
        try:
            st = f.source.stat()
        except FileNotFoundError:
            return
        if st.st_ino == f.inode and st.st_size == f.offset:
            return  # nothing new: one stat per container and pass
        if f.inode and st.st_ino != f.inode:  # Docker rotated: finish the old file, now <name>.1
            old = f.source.with_name(f.source.name + ".1")
            with contextlib.suppress(FileNotFoundError):
                if old.stat().st_ino == f.inode:
                    self._copy_from(f, old, old.stat().st_size)
            f.offset = 0
        f.inode = st.st_ino
        if st.st_size < f.offset:  # truncated under the same name
            f.offset = 0
        self._copy_from(f, f.source, st.st_size)
        tmp = self.state_dir / f".{cid}.tmp"
        tmp.write_text(f"{f.inode} {f.offset}")
        os.replace(tmp, self.state_dir / cid)

    def _copy_from(self, f: _Follow, source: Path, size: int) -> None:
        if size <= f.offset:
            return
        with source.open("rb") as src:
            src.seek(f.offset)
            chunk = src.read(size - f.offset)
        records, used = cri_lines(chunk)
        if records:
            f.dest.parent.mkdir(parents=True, exist_ok=True)
            _append(f.dest, records, f.max_bytes, f.max_files)
        f.offset += used


def _append(dest: Path, records: bytes, max_bytes: int, max_files: int) -> None:
    """Append whole records, rotating the file (as the shim does) each time it reaches ``max_bytes``."""
    out = RotatingLog(str(dest), max_bytes, max_files)
    try:
        if not max_bytes or out.size + len(records) < max_bytes:
            out.write(records)
            return
        for line in records.splitlines(keepends=True):
            out.write(line)
            out.flush()  # rotates at max_bytes
    finally:
        out.close()
