"""The docker driver's log copier (docker_logs) on real files: Docker's json-file lines become
CRI records, a line Docker is still writing waits, Docker's own rotation loses nothing, the
CRI log rotates at its size, and a copier started again goes on where the last one stopped."""

from __future__ import annotations

import json
from pathlib import Path

from bosun.agent.runtime.docker_logs import LogCopier


def _docker_lines(first: int, count: int) -> bytes:
    return b"".join(json.dumps({"log": f"line-{i:03d}\n", "stream": "stdout",
                                "time": "2026-12-07T05:00:00.000000001Z"}).encode() + b"\n"
                    for i in range(first, first + count))


def _copied(dest: Path) -> list[str]:
    files = [*sorted(dest.parent.glob(dest.name + ".*"), key=lambda p: -int(p.suffix[1:])), dest]
    return [line.split()[-1] for f in files for line in f.read_text().splitlines()]


async def test_docker_rotation_cri_rotation_and_a_restart(tmp_path: Path) -> None:
    source, dest = tmp_path / "docker" / "c-json.log", tmp_path / "logs" / "0.log"
    source.parent.mkdir()
    source.write_bytes(_docker_lines(0, 3) + b'{"log": "unfinish')
    copier = LogCopier(tmp_path / "state")
    copier.state_dir.mkdir()
    copier.follow("c", str(source), dest, max_bytes=200, max_files=4)
    await copier.flush("c")
    assert dest.read_text().splitlines() == [f"2026-12-07T05:00:00.000000001Z stdout F line-{i:03d}" for i in range(3)]

    # Docker finishes the line, writes more, rotates (the file becomes .1) and goes on in a new one.
    with source.open("r+b") as f:
        f.seek(len(_docker_lines(0, 3)))
        f.truncate()
        f.write(_docker_lines(3, 5))
    source.rename(source.with_name(source.name + ".1"))
    source.write_bytes(_docker_lines(8, 6))
    await copier.flush("c")
    assert _copied(dest) == [f"line-{i:03d}" for i in range(14)]
    names = sorted(p.name for p in dest.parent.iterdir())
    assert names == ["0.log", "0.log.1", "0.log.2"]  # rotated at 200 bytes, whole lines each
    assert all(p.stat().st_size <= 200 + 49 for p in dest.parent.iterdir())

    # Another copier (the agent started again) on the same state: only what is new is copied.
    before = _copied(dest)
    with source.open("ab") as f:
        f.write(_docker_lines(14, 1))
    again = LogCopier(tmp_path / "state")
    again.follow("c", str(source), dest, max_bytes=200, max_files=4)
    await again.flush("c")
    assert _copied(dest) == [*before, "line-014"]
