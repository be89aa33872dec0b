"""`bosun server` as a user runs it: prints "ready", serves kubectl, stops cleanly on SIGTERM,
and refuses bad options with one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.e2e.helpers import BOSUN, free_port


def test_server_prints_ready_serves_kubectl_and_stops(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([BOSUN, "server", "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        deadline = time.time() + 30
        lines = []
        while time.time() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.strip() == "ready" or not line:
                break
        assert "ready" in [x.strip() for x in lines], lines
        kc = tmp_path / "kubeconfig"
        assert oct(kc.stat().st_mode & 0o777) == "0o600"
        out = subprocess.run(["kubectl", "--kubeconfig", str(kc), "get", "ns", "default", "-o", "name"],
                             capture_output=True, text=True, timeout=30, env=dict(os.environ, HOME=str(tmp_path)))
        assert out.stdout.strip() == "namespace/default", out.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_bad(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BOSUN, "server", *args], capture_output=True, text=True, timeout=30)


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    p = run_bad("--data-dir", str(tmp_path / "a"), "--listen", "127.0.0.1:0", "--store", "bogus://x")
    assert p.returncode != 0
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    p = run_bad("--data-dir", str(tmp_path / "b"), "--listen", "nonsense")
    assert p.returncode != 0 and "--listen must be ADDR:PORT" in p.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = run_bad("--data-dir", str(tmp_path / "c"), "--listen", f"127.0.0.1:{port}")
    assert p.returncode != 0
    assert "Traceback" not in p.stderr and "cannot serve on" in p.stderr, p.stderr


def test_token_create_prints_a_join_token_the_server_accepts(tmp_path: Path) -> None:
    from bosun.security.tokens import TokenAuthenticator, ensure_admin_token

    ensure_admin_token(tmp_path)  # a server's data dir
    p = subprocess.run([BOSUN, "token", "create", "--data-dir", str(tmp_path), "--ttl", "1h"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    tok = p.stdout.strip()
    assert len(tok.split(".")) == 2 and "bosun agent --server" in p.stderr
    user = TokenAuthenticator(tmp_path).authenticate(f"Bearer {tok}")
    assert user is not None and user.name == "system:bootstrap:" + tok.split(".")[0]
    bad = subprocess.run([BOSUN, "token", "create", "--data-dir", str(tmp_path), "--ttl", "soon"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
