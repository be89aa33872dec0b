"""`kubectl attach` and `kubectl run -it --rm` against real crun containers of `bosun up --runtime
oci`: the container's own terminal (made by crun, handed to the shim through the console
socket) with input and resizes, piped stdin without a terminal, and pods removed at the end.
kubectl runs on a pty the test drives, as from a user's shell."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from tests.e2e.helpers import Terminal
from tests.e2e.netns_node import NetnsNode, netns_node
from tests.harness.fixtures import requires_netns

pytestmark = [requires_netns, pytest.mark.timeout(180)]


def _pod(name: str, command: list[str], *, tty: bool) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "main", "image": "host", "command": command, "stdin": True, "tty": tty}]}}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsNode]:
    with netns_node(tmp_path_factory.mktemp("attach")) as n:
        yield n


def _gone(node: NetnsNode, pod: str, within: float = 30) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if "NotFound" in node.kubectl("get", "pod", pod).stderr:
            return True
        time.sleep(0.3)
    return False


def test_attach_it_gives_the_containers_terminal_with_input_and_resizes(node: NetnsNode) -> None:
    node.apply(_pod("shell", ["sh"], tty=True))
    node.wait_running("shell")
    term = Terminal(node.kubectl_argv("attach", "-it", "shell"), dict(os.environ), rows=33, cols=77)
    try:
        term.expect("If you don't see a command prompt")
        term.send("tty; echo sum-$((6*7))\n")
        term.expect("/dev/pts/0")  # the container's own devpts: crun made this terminal
        term.expect("sum-42")
        # kubectl sends the size plus one and then the size (so a re-attach redraws); the
        # second may land after the first typed line, so the size is asked until it is right.
        term.ask_until("stty size\n", "33 77")
        term.resize(50, 132)  # SIGWINCH -> kubectl -> API server -> agent -> shim -> TIOCSWINSZ
        term.ask_until("stty size\n", "50 132")
        term.send("exit 3\n")
        assert term.proc.wait(30) == 0  # the session ended with the container
    finally:
        term.close()
    deadline, code = time.monotonic() + 30, ""
    while not code and time.monotonic() < deadline:  # the agent reports the exit shortly after
        code = node.ok("get", "pod", "shell", "-o",
                       "jsonpath={.status.containerStatuses[0].state.terminated.exitCode}")
        time.sleep(0.2)
    assert code == "3"


@pytest.mark.parametrize("websockets", ["true", "false"])  # "false": over SPDY, as kubectl before 1.30
def test_attach_i_pipes_stdin_into_a_container_without_a_terminal(
        node: NetnsNode, websockets: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets)
    pod = f"reader-{'ws' if websockets == 'true' else 'spdy'}"
    node.apply(_pod(pod, ["sh", "-c", "while read l; do echo got-$l; done; echo stdin-closed"], tty=False))
    node.wait_running(pod)
    done = node.kubectl("attach", "-i", pod, stdin="one\ntwo\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-3:] == ["got-one", "got-two", "stdin-closed"], done.stdout


def test_run_it_rm_is_a_shell_and_removes_the_pod(node: NetnsNode) -> None:
    term = Terminal(node.kubectl_argv("run", "scratch", "-it", "--rm", "--restart=Never", "--image=host", "--",
                                      "sh"), dict(os.environ), rows=24, cols=80)
    try:
        term.expect("If you don't see a command prompt")
        term.send("echo in-$((6*7)); exit 4\n")
        term.expect("in-42")
        term.expect('pod "scratch" deleted')
        assert term.proc.wait(30) == 4  # kubectl run passes the container's exit code on
    finally:
        term.close()
    assert _gone(node, "scratch")


def test_run_i_rm_with_piped_input(node: NetnsNode) -> None:
    done = node.kubectl("run", "piped", "-i", "--rm", "--restart=Never", "--image=host", "--", "sh", "-c",
                        "read x; echo got-$x", stdin="hello\n")
    assert done.returncode == 0, done.stderr
    assert "got-hello" in done.stdout and 'pod "piped" deleted' in done.stdout, done.stdout
    assert _gone(node, "piped")


def test_attach_to_a_pod_that_does_not_exist(node: NetnsNode) -> None:
    done = node.kubectl("attach", "-it", "ghost")
    assert done.returncode != 0 and 'pods "ghost" not found' in done.stderr, done.stderr


def test_debug_it_is_a_shell_in_an_ephemeral_container_sharing_the_target(node: NetnsNode) -> None:
    node.apply(_pod("target", ["sleep", "3603"], tty=False))
    node.wait_running("target")
    term = Terminal(node.kubectl_argv("debug", "-it", "target", "--image=host", "--target=main", "--", "sh"),
                    dict(os.environ), rows=24, cols=80)
    try:
        term.expect("If you don't see a command prompt")
        term.send("tr '\\0' ' ' < /proc/1/cmdline; echo; echo dbg-$((6*7)); exit 5\n")
        term.expect("sleep 3603")  # the target's process, PID 1 of the namespace the debugger joined
        term.expect("dbg-42")
        term.proc.wait(30)
    finally:
        term.close()
    deadline, code = time.monotonic() + 30, ""
    while not code and time.monotonic() < deadline:
        code = node.ok("get", "pod", "target", "-o",
                       "jsonpath={.status.ephemeralContainerStatuses[0].state.terminated.exitCode}")
        time.sleep(0.2)
    assert code == "5"
