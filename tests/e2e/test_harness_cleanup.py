"""The harness leaves nothing behind: not after a test body raised, not after SIGTERM, and a
run killed outright is swept by the next one (namespaces, links, nft tables inside its
namespaces, cgroups, mounts, processes, files)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.harness import HarnessError, NetCluster, cgroups
from tests.harness.fixtures import NetClusterFactory, requires_netns
from tests.harness.netns import PREFIX, leftover_links, netns_list
from tests.harness.pods import pod, run_pods
from tests.harness.sweep import ROOT, mounts_under, sweep

pytestmark = [requires_netns, pytest.mark.timeout(240)]

SCRIPT = str(Path(__file__).resolve().parents[2] / "scripts" / "cluster.py")


def _processes_mentioning(text: str) -> list[str]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd and "pytest" not in cmd:
                out.append(f"{entry.name}: {cmd[:160]}")
    return out


def traces(hid: str) -> list[str]:
    """Everything of harness ``hid`` still on the machine."""
    prefix = f"{PREFIX}{hid}"
    out = [f"netns {n}" for n in netns_list() if n.startswith(prefix)]
    out += [f"link {name}" for name in leftover_links(hid)]
    out += [f"cgroup {c}" for c in cgroups.leftovers(prefix)]
    out += [f"mount {m}" for m in mounts_under(ROOT / hid)]
    out += [f"process {p}" for p in _processes_mentioning(str(ROOT / hid)) + _processes_mentioning(prefix)]
    if (ROOT / hid).exists():
        out.append(f"directory {ROOT / hid}")
    return out


def populate(cluster: NetCluster) -> None:
    """Containers, pod namespaces and an nft table inside a node: what a test leaves around."""
    run_pods(cluster, [pod(f"p-{n.name}", n.name, ["sh", "-c", f"exec sleep 36{cluster.hid[:2]}"])
                       for n in cluster.nodes])
    node = cluster.nodes[0]
    assert cluster.sh(node.netns, "nft", "add", "table", "ip", "bosun").returncode == 0
    assert "table ip bosun" in cluster.sh(node.netns, "nft", "list", "tables").stdout


@contextmanager
def _script_up(nodes: int = 1) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``scripts/cluster.py up`` in the background; yields (process, harness id) once ready.
    Whatever the test does to it, the process and its cluster are gone afterwards."""
    proc = subprocess.Popen([sys.executable, SCRIPT, "up", "--nodes", str(nodes)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    hid = ""
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            m = re.match(r"bosun cluster ([0-9a-f]{5}):", line)
            hid = m.group(1) if m else hid
            if line.strip() == "ready":
                break
        assert hid, "".join(lines)
        yield proc, hid
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        if hid:
            sweep()


def test_sigterm_and_down_remove_a_running_up_and_status_shows_it() -> None:
    with _script_up() as (proc, hid):
        status = subprocess.run([sys.executable, SCRIPT, "status"], capture_output=True, text=True, timeout=30)
        assert f"{hid}: running" in status.stdout and f"ip netns exec {PREFIX}{hid}-n1 sh" in status.stdout
        down = subprocess.run([sys.executable, SCRIPT, "down", hid], capture_output=True, text=True, timeout=60)
        assert down.returncode == 0 and f"removed {hid}" in down.stdout, down.stderr
        assert proc.wait(30) == 0  # `down` asked `up` to stop (SIGTERM): it removed its own cluster
        assert proc.stdout is not None and f"removed cluster {hid}" in proc.stdout.read()
        assert traces(hid) == []


def test_a_run_killed_outright_is_swept_by_the_next_one() -> None:
    with _script_up() as (proc, hid):
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        left = traces(hid)
        assert any(t.startswith("process") for t in left) and any(t.startswith("netns") for t in left), left
        assert hid in sweep()
        assert traces(hid) == []


def test_the_script_refuses_bad_input_in_one_line() -> None:
    zero = subprocess.run([sys.executable, SCRIPT, "up", "--nodes", "0"], capture_output=True, text=True, timeout=30)
    assert zero.returncode == 2 and zero.stderr.strip() == "error: --nodes must be at least 1"
    nosuch = subprocess.run([sys.executable, SCRIPT, "down", "fffff"], capture_output=True, text=True, timeout=30)
    assert nosuch.returncode == 1 and nosuch.stderr.strip() == "error: no cluster fffff on this machine"


INNER = '''
import os, time
from pathlib import Path
from tests.e2e.test_harness_cleanup import populate, traces

def test_body_fails(netcluster_factory):
    cluster = netcluster_factory(2)
    Path(os.environ["HID_FILE"]).write_text(cluster.hid)
    populate(cluster)
    kinds = {t.split()[0] for t in traces(cluster.hid)}
    assert {"netns", "link", "cgroup", "process", "directory"} <= kinds, kinds
    if os.environ.get("WAIT_FOR_SIGTERM"):
        Path(os.environ["HID_FILE"] + ".populated").write_text("")
        time.sleep(120)
    raise AssertionError("the test body failed")
'''


def _inner_pytest(tmp_path: Path, wait_for_sigterm: bool) -> tuple[subprocess.Popen[str], Path]:
    """A pytest run of its own on a test that uses the factory fixture for a 2-node cluster,
    runs pods on it, programs an nft table inside a node, and fails (or waits for SIGTERM)."""
    test = tmp_path / "test_inner.py"
    test.write_text(INNER)
    hid_file = tmp_path / "hid"
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, HID_FILE=str(hid_file), PYTHONPATH=str(root))
    if wait_for_sigterm:
        env["WAIT_FOR_SIGTERM"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "tests.harness.fixtures", "-p",
                             "no:cacheprovider", "--rootdir", str(tmp_path), str(test)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, hid_file


@pytest.mark.parametrize("how", ["body raised", "SIGTERM"])
def test_a_pytest_run_removes_its_cluster_when_the_test_fails_or_is_terminated(tmp_path: Path, how: str) -> None:
    proc, hid_file = _inner_pytest(tmp_path, wait_for_sigterm=how == "SIGTERM")
    try:
        if how == "SIGTERM":
            deadline = time.monotonic() + 120
            populated = hid_file.with_name("hid.populated")
            while not populated.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert populated.exists() and traces(hid_file.read_text()) != []
            proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        left = {h: traces(h) for h in [hid_file.read_text()] if hid_file.exists()}
        sweep()  # whatever the outcome, nothing stays for later tests (the inner run is over)
    hid = hid_file.read_text()
    assert proc.returncode != 0, out
    assert ("the test body failed" if how == "body raised" else "KeyboardInterrupt") in out, out
    assert left[hid] == [], out  # the nft table made in a node went with its namespace


def test_two_clusters_at_once_get_their_own_network_and_closing_one_leaves_the_other(
        netcluster_factory: NetClusterFactory) -> None:
    first, second = netcluster_factory(1), netcluster_factory(1)
    assert first.hid != second.hid and first.net is not None and second.net is not None
    assert first.net.subnet != second.net.subnet
    # Each one's network is its own: the other's manager is not reachable from its nodes.
    assert first.sh(first.nodes[0].netns, "busybox", "ping", "-c1", "-W1", second.manager_ip).returncode != 0
    first.close()
    assert traces(first.hid) == []
    assert second.node_conditions() == {"n1": "True"}
    assert {t.split()[0] for t in traces(second.hid)} >= {"netns", "link", "cgroup", "process", "directory"}


def test_a_server_that_cannot_start_is_reported_with_its_message_and_leaves_nothing() -> None:
    cluster = NetCluster(nodes=1, server_args=["--store", "nosuch://x"])
    with pytest.raises(HarnessError, match="bosun server did not start") as err:
        cluster.start()
    assert "nosuch" in str(err.value)
    assert traces(cluster.hid) == []
