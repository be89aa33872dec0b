"""Docker's ``json-file`` container logs copied into the CRI log files the agent serves.

Why copy: the agent reads one log format whatever the driver (see base.py), and Docker
writes its own (one JSON object per chunk: ``log``, ``stream``, ``time``). One task follows
every container of the driver by reading what Docker appended since the last pass (a stat
per container when nothing changed), so 100 pods cost no thread or stream each. The offset
reached is kept on disk (``<root>/logs/<container id>``), so a restarted agent goes on
where the last one stopped and no line is written twice or lost while it was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
POLL = 0.2


@dataclass
class _Follow:
    source: Path  # Docker's json log
    dest: Path  # the CRI log
    offset: int = 0


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

    def follow(self, cid: str, source: str, dest: Path) -> None:
        if cid in self._follows or not source:
            return
        offset = 0
        with contextlib.suppress(OSError, ValueError):
            offset = int((self.state_dir / cid).read_text())
        self._follows[cid] = _Follow(Path(source), dest, offset)

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
        try:
            size = f.source.stat().st_size
        except FileNotFoundError:
            return
        if size <= f.offset:
            return
        with f.source.open("rb") as src:
            src.seek(f.offset)
            chunk = src.read(size - f.offset)
        records, used = cri_lines(chunk)
        if not used:
            return
        if records:
            f.dest.parent.mkdir(parents=True, exist_ok=True)
            with f.dest.open("ab") as dst:
                dst.write(records)
        f.offset += used
        tmp = self.state_dir / f".{cid}.tmp"
        tmp.write_text(str(f.offset))
        os.replace(tmp, self.state_dir / cid)
