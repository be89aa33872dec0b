"""`kubectl exec` against `bosun up` (process runtime and crun): output, exit codes, piped stdin, and an
interactive terminal (kubectl itself runs on a pty we drive, as a user's shell would); each over the
WebSocket that kubectl 1.30+ uses and over SPDY, which older kubectl and client-go's SPDY
executor use (kubectl 1.32 falls back to it with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from tests.e2e.helpers import RUNTIMES, Kubectl, Terminal, bosun_up

pytestmark = pytest.mark.timeout(90)

POD = "shell"


@pytest.fixture(scope="module", params=RUNTIMES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    with bosun_up(tmp_path_factory.mktemp("exec-up"), runtime=request.param) as up:
        k = up.kubectl
        deadline = time.time() + 60
        run = k("run", POD, "--image=host", "--restart=Never", "--", "sleep", "300")
        assert run.returncode == 0, run.stderr
        while k("get", "pod", POD, "-o", "jsonpath={.status.phase}").stdout != "Running":
            assert time.time() < deadline, "the pod did not start"
            time.sleep(0.2)
        yield k


@pytest.fixture(params=["websocket", "spdy"])
def kubectl(request: pytest.FixtureRequest, cluster: Kubectl) -> Kubectl:
    k = Kubectl(cluster.kubeconfig, cluster.env["HOME"], cluster.prefix)
    k.env["KUBECTL_REMOTE_COMMAND_WEBSOCKETS"] = "true" if request.param == "websocket" else "false"
    return k


def test_exec_prints_output_and_passes_exit_codes(kubectl: Kubectl) -> None:
    hi = kubectl("exec", POD, "--", "echo", "hi")
    assert (hi.returncode, hi.stdout) == (0, "hi\n"), hi.stderr
    both = kubectl("exec", POD, "--", "sh", "-c", "echo out; echo err >&2")
    assert (both.stdout, both.stderr) == ("out\n", "err\n")
    failed = kubectl("exec", POD, "--", "sh", "-c", "exit 3")
    assert failed.returncode == 3
    assert "command terminated with exit code 3" in failed.stderr


def test_exec_pipes_stdin(kubectl: Kubectl) -> None:
    piped = kubectl("exec", "-i", POD, "--", "sh", "-c", "cat; echo end", stdin="data\nmore\n")
    assert (piped.returncode, piped.stdout) == (0, "data\nmore\nend\n"), piped.stderr


def test_exec_refuses_unknown_container_and_pod(kubectl: Kubectl) -> None:
    bad = kubectl("exec", POD, "-c", "nope", "--", "true")
    assert bad.returncode != 0 and "container nope is not valid for pod shell" in bad.stderr
    missing = kubectl("exec", "ghost", "--", "true")
    assert missing.returncode != 0 and 'pods "ghost" not found' in missing.stderr


def test_exec_it_gives_a_terminal_that_follows_resizes(kubectl: Kubectl) -> None:
    term = Terminal(kubectl.argv("exec", "-it", POD, "--", "sh"), kubectl.env, rows=33, cols=77)
    try:
        term.send("tty; stty size\n")
        term.expect("/dev/pts/")
        term.expect("33 77")
        term.resize(50, 132)
        time.sleep(0.3)  # SIGWINCH -> kubectl -> API server -> agent -> TIOCSWINSZ
        term.send("stty size\n")
        term.expect("50 132")
        term.send("exit 5\n")
        assert term.proc.wait(15) == 5
    finally:
        term.close()
