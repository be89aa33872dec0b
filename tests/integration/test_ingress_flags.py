"""``--ingress-http-port`` / ``--ingress-https-port`` of `bosun up` and `bosun agent`: bad
values are one line before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BOSUN = str(Path(sys.executable).parent / "bosun")


@pytest.mark.parametrize(("command", "flags", "says"), [
    (["up", "--listen", "127.0.0.1:0"], ["--ingress-http-port", "8080", "--ingress-https-port", "8080"],
     "are both 8080"),
    (["agent", "--server", "https://127.0.0.1:1", "--token", "x"], ["--ingress-https-port", "70000"],
     "--ingress-https-port"),
])
def test_bad_ingress_ports_are_one_line(tmp_path: Path, command: list[str], flags: list[str], says: str) -> None:
    data = tmp_path / "data"
    done = subprocess.run([BOSUN, *command, "--data-dir", str(data), *flags], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], done.stderr
    assert not data.exists()
