"""`bosun up` runs the node's nginx (on the ports given) and takes it away on stop: no nginx
process and none of its files are left behind."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from tests.e2e.helpers import bosun_up, free_port, wait_until

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not shutil.which("nginx"), reason="needs Debian's nginx")]


def status(url: str) -> str:
    return subprocess.run(["curl", "-sk", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", url],
                          capture_output=True, text=True, timeout=15).stdout


def running(pid: int) -> bool:
    """Alive (a zombie left for this machine's init to reap runs nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_bosun_up_serves_ingress_and_leaves_no_nginx(tmp_path: Path) -> None:
    http, https = free_port(), free_port()
    state = tmp_path / "up" / "agent" / "network" / "ingress"
    with bosun_up(tmp_path, ingress_ports=(http, https)) as up:
        wait_until(lambda: status(f"http://127.0.0.1:{http}/") == "404", 30, "nginx answering")
        assert status(f"https://127.0.0.1:{https}/") == "404"  # the default certificate, no route
        wait_until(lambda: up.kubectl("get", "ingressclass", "bosun").returncode == 0, 30, "the default class")
        master = int((state / "nginx.pid").read_text())
        processes = {master, *map(int, Path(f"/proc/{master}/task/{master}/children").read_text().split())}
        assert len(processes) >= 2
    assert [pid for pid in processes if running(pid)] == []
    assert not state.exists()
    assert status(f"http://127.0.0.1:{http}/") == "000"
