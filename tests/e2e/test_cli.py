"""The `bosun` command line against a real API server, run as users run it (a subprocess).

Every test works in a namespace of its own so that tests stay independent on the shared
session server, and checks what a user sees: the lines printed, the exit code, and the
objects the server then holds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BOSUN = str(Path(sys.executable).parent / "bosun")
KUBECTL = shutil.which("kubectl")

DEPLOY_AND_SERVICE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
"""


@dataclass
class Result:
    rc: int
    out: str
    err: str


@dataclass
class Cli:
    kubeconfig: str
    namespace: str
    tmp: Path

    def __call__(self, *args: str, stdin: str | None = None, ns: bool = True, timeout: float = 30) -> Result:
        cmd = [BOSUN, "--kubeconfig", self.kubeconfig, *args]
        if ns:
            cmd += ["-n", self.namespace]
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "BOSUN_DEBUG")}
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, env=env,
                           check=False)
        return Result(p.returncode, p.stdout, p.stderr)

    def ok(self, *args: str, stdin: str | None = None, ns: bool = True) -> str:
        r = self(*args, stdin=stdin, ns=ns)
        assert r.rc == 0, f"bosun {' '.join(args)} failed ({r.rc}): {r.err}"
        assert "Traceback" not in r.err
        return r.out

    def write(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text)
        return str(path)

    def obj(self, *args: str) -> dict[str, Any]:
        return dict(json.loads(self.ok("get", *args, "-o", "json")))


def one_line_error(r: Result) -> str:
    """Errors are exactly one line on stderr, exit code 1, never a traceback."""
    assert r.rc == 1, (r.rc, r.out, r.err)
    assert "Traceback" not in r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    return lines[0]


@pytest.fixture(scope="session", autouse=True)
def _bosun_script() -> None:
    if not Path(BOSUN).exists():
        pytest.fail(f"{BOSUN} is missing: run `.venv/bin/pip install -e .`")


@pytest.fixture
def cli(api_server: Any, tmp_path: Path) -> Iterator[Cli]:
    ns = f"cli-{uuid.uuid4().hex[:8]}"
    c = Cli(str(api_server.kubeconfig), ns, tmp_path)
    assert c.ok("create", "namespace", ns, ns=False).strip() == f"namespace/{ns} created"
    try:
        yield c
    finally:
        c("delete", "namespace", ns, "--wait=false", ns=False)


# -- apply -------------------------------------------------------------------------------------


def test_apply_creates_then_unchanged_then_configured(cli: Cli) -> None:
    path = cli.write("app.yaml", DEPLOY_AND_SERVICE)
    assert cli.ok("apply", "-f", path).splitlines() == ["deployment.apps/web created", "service/web created"]
    assert cli.ok("apply", "-f", path).splitlines() == [
        "deployment.apps/web unchanged", "service/web unchanged",
    ]
    live = cli.obj("deployment", "web")
    last = json.loads(live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last["spec"]["replicas"] == 2

    # Scale up and drop a label: the label must disappear (three-way: removed since last apply).
    changed = DEPLOY_AND_SERVICE.replace("replicas: 2", "replicas: 3").replace(", tier: front", "")
    path2 = cli.write("app2.yaml", changed)
    assert cli.ok("apply", "-f", path2).splitlines() == [
        "deployment.apps/web configured", "service/web unchanged",
    ]
    live = cli.obj("deployment", "web")
    assert live["spec"]["replicas"] == 3
    assert live["metadata"]["labels"] == {"app": "web"}


def test_apply_keeps_changes_made_by_others(cli: Cli) -> None:
    """Fields the manifest never set (added by someone else) survive a re-apply."""
    assert KUBECTL is not None, "kubectl is part of the test machine (/usr/bin/kubectl)"
    path = cli.write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf}\ndata: {a: '1'}\n")
    cli.ok("apply", "-f", path)
    kubectl = [KUBECTL, "--kubeconfig", cli.kubeconfig, "-n", cli.namespace]
    subprocess.run([*kubectl, "label", "configmap", "conf", "owner=ops"], check=True, capture_output=True,
                   timeout=30)
    subprocess.run([*kubectl, "patch", "configmap", "conf", "--type=merge", "-p", '{"data":{"b":"2"}}'],
                   check=True, capture_output=True, timeout=30)
    cli.ok("apply", "-f", cli.write("cm2.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf}\n"
                                                "data: {a: '9'}\n"))
    cm = cli.obj("configmap", "conf")
    assert cm["data"] == {"a": "9", "b": "2"}
    assert cm["metadata"]["labels"] == {"owner": "ops"}


def test_apply_over_object_created_without_apply(cli: Cli) -> None:
    cli.ok("create", "namespace", f"{cli.namespace}-x", ns=False)
    try:
        manifest = json.dumps({"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": f"{cli.namespace}-x", "labels": {"team": "a"}}})
        r = cli("apply", "-f", "-", stdin=manifest, ns=False)
        assert r.rc == 0 and r.out.strip() == f"namespace/{cli.namespace}-x configured"
        assert "missing the kubectl.kubernetes.io/last-applied-configuration annotation" in r.err
        assert cli.ok("apply", "-f", "-", stdin=manifest, ns=False).strip() == (
            f"namespace/{cli.namespace}-x unchanged"
        )
    finally:
        cli("delete", "namespace", f"{cli.namespace}-x", "--wait=false", ns=False)


def test_apply_json_list_from_stdin_and_directory(cli: Cli) -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}, "data": {"k": "v"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "two"}, "stringData": {"p": "s"}},
    ]}
    assert cli.ok("apply", "-f", "-", stdin=json.dumps(doc)).splitlines() == [
        "configmap/one created", "secret/two created",
    ]
    d = cli.tmp / "dir"
    d.mkdir()
    (d / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: three}\n")
    four = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "four"}}
    (d / "b.json").write_text(json.dumps(four))
    (d / "notes.txt").write_text("not a manifest")
    assert cli.ok("apply", "-f", str(d)).splitlines() == ["configmap/three created", "configmap/four created"]


def test_apply_server_dry_run_stores_nothing(cli: Cli) -> None:
    path = cli.write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dry}\n")
    assert cli.ok("apply", "-f", path, "--dry-run=server").strip() == "configmap/dry created (server dry run)"
    r = cli("get", "configmap", "dry")
    assert one_line_error(r) == 'Error from server (NotFound): configmaps "dry" not found'


def test_apply_errors_are_one_line(cli: Cli) -> None:
    bad = cli.write("bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n")
    assert one_line_error(cli("apply", "-f", bad)).startswith(f"error: error parsing {bad}: ")
    unknown = cli.write("unknown.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    line = one_line_error(cli("apply", "-f", unknown))
    assert line.startswith('error: resource mapping not found for name: "w"')
    assert 'no matches for kind "Widget" in version "example.com/v1"' in line
    assert one_line_error(cli("apply", "-f", str(cli.tmp / "missing.yaml"))) == (
        f'error: the path "{cli.tmp / "missing.yaml"}" does not exist'
    )
    other = cli.write("other-ns.yaml",
                      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: elsewhere}\n")
    assert "does not match the namespace" in one_line_error(cli("apply", "-f", other))


def test_apply_invalid_object_reports_server_error(cli: Cli) -> None:
    deploy = DEPLOY_AND_SERVICE.split("---")[0]
    path = cli.write("bad-deploy.yaml", deploy.replace("replicas: 2", "replicas: -3"))
    r = cli("apply", "-f", path)
    line = one_line_error(r)
    assert line.startswith("Error from server (Invalid): ")
    assert "spec.replicas" in line


# -- get ---------------------------------------------------------------------------------------

def _cells(line: str) -> list[str]:
    return [c for c in re.split(r"\s{3,}", line.strip()) if c]


def test_get_prints_kubectl_table(cli: Cli) -> None:
    cli.ok("apply", "-f", cli.write("app.yaml", DEPLOY_AND_SERVICE))
    lines = cli.ok("get", "deployments").splitlines()
    assert _cells(lines[0])[:2] == ["NAME", "READY"]
    assert lines[0] == lines[0].upper() and "NAMESPACE" not in lines[0]
    assert _cells(lines[1])[0] == "web"
    # Columns line up: every row's second cell starts where the header's does.
    assert lines[1].index(_cells(lines[1])[1]) == lines[0].index("READY")
    assert not any(line.endswith(" ") for line in lines)

    wide = cli.ok("get", "deploy", "-o", "wide").splitlines()
    assert len(_cells(wide[0])) > len(_cells(lines[0]))
    assert "IMAGES" in _cells(wide[0]) and "nginx:1.27" in wide[1]


def test_get_matches_kubectl_output(cli: Cli) -> None:
    assert KUBECTL is not None, "kubectl is part of the test machine (/usr/bin/kubectl)"
    cli.ok("apply", "-f", cli.write("app.yaml", DEPLOY_AND_SERVICE))
    cli.ok("apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"}}))
    for args in (["get", "svc"], ["get", "deploy", "-o", "wide"], ["get", "cm"], ["get", "ns", "default"]):
        ours = cli.ok(*args).splitlines()
        theirs = subprocess.run(
            [KUBECTL, "--kubeconfig", cli.kubeconfig, "-n", cli.namespace, *args],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.splitlines()
        assert ours[0] == theirs[0], args  # identical header, identical spacing
        # Same rows, ignoring the AGE cell that may tick between the two calls.
        age_at = _cells(ours[0]).index("AGE") if "AGE" in _cells(ours[0]) else None
        assert [_without(_cells(x), age_at) for x in ours] == [_without(_cells(x), age_at) for x in theirs]


def _without(cells: list[str], i: int | None) -> list[str]:
    return cells if i is None else cells[:i] + cells[i + 1:]


def test_get_several_kinds_all_namespaces_and_selectors(cli: Cli) -> None:
    cli.ok("apply", "-f", cli.write("app.yaml", DEPLOY_AND_SERVICE))
    out = cli.ok("get", "deploy,svc")
    blocks = out.split("\n\n")
    assert len(blocks) == 2
    assert _cells(blocks[0].splitlines()[1])[0] == "deployment.apps/web"
    assert _cells(blocks[1].splitlines()[1])[0] == "service/web"

    everything = cli.ok("get", "all")
    assert "deployment.apps/web" in everything and "service/web" in everything

    lines = cli.ok("get", "svc", "-A", ns=False).splitlines()
    assert _cells(lines[0])[:2] == ["NAMESPACE", "NAME"]
    assert [cli.namespace, "web"] in [_cells(x)[:2] for x in lines[1:]]

    cli.ok("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "labels": {"team": t}}}
        for n, t in (("red", "a"), ("blue", "b"))]}))
    names = [_cells(x)[0] for x in cli.ok("get", "cm", "-l", "team=a").splitlines()[1:]]
    assert names == ["red"]
    by_field = cli.ok("get", "cm", "--field-selector", "metadata.name=blue", "-o", "name")
    assert by_field.split() == ["configmap/blue"]


def test_get_output_formats(cli: Cli) -> None:
    cli.ok("apply", "-f", cli.write("app.yaml", DEPLOY_AND_SERVICE))
    one = cli.ok("get", "deploy", "web", "-o", "yaml")
    assert one.startswith("apiVersion: apps/v1\n") and "\nkind: Deployment\n" in one
    listed = json.loads(cli.ok("get", "deploy,svc", "-o", "json"))
    assert listed["kind"] == "List"
    assert [(i["kind"], i["metadata"]["name"]) for i in listed["items"]] == [
        ("Deployment", "web"), ("Service", "web"),
    ]
    names = cli.ok("get", "deploy/web", "svc/web", "-o", "name").split()
    assert names == ["deployment.apps/web", "service/web"]


def test_get_empty_and_missing(cli: Cli) -> None:
    r = cli("get", "pods")
    assert r.rc == 0 and r.out == ""
    assert r.err.strip() == f"No resources found in {cli.namespace} namespace."
    line = one_line_error(cli("get", "pod", "nope"))
    assert line == 'Error from server (NotFound): pods "nope" not found'
    assert cli("get", "pod", "nope", "--ignore-not-found").rc == 0
    assert one_line_error(cli("get", "foo")) == 'error: the server doesn\'t have a resource type "foo"'


def test_get_watch_prints_changes(cli: Cli) -> None:
    cmd = [BOSUN, "--kubeconfig", cli.kubeconfig, "-n", cli.namespace, "get", "configmaps", "-w"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cli.ok("apply", "-f", "-", stdin=json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "watched"}}))
        seen: list[str] = []
        deadline = time.monotonic() + 20
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line.rstrip("\n"))
            if any(_cells(x)[:1] == ["watched"] for x in seen):
                break
        assert seen and _cells(seen[0])[0] == "NAME"
        assert any(_cells(x)[:1] == ["watched"] for x in seen), seen
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# -- describe ----------------------------------------------------------------------------------


def test_describe_deployment_service_and_generic(cli: Cli) -> None:
    cli.ok("apply", "-f", cli.write("app.yaml", DEPLOY_AND_SERVICE))
    text = cli.ok("describe", "deployment", "web")
    assert re.search(r"^Name:\s+web$", text, re.M)
    assert re.search(rf"^Namespace:\s+{cli.namespace}$", text, re.M)
    assert re.search(r"^Labels:\s+app=web$", text, re.M)
    assert re.search(r"^\s+tier=front$", text, re.M)
    assert re.search(r"^Replicas:\s+2 desired", text, re.M)
    assert "Image:" in text and "nginx:1.27" in text
    assert "last-applied-configuration" not in text
    assert text.rstrip().splitlines()[-1].startswith("Events:")

    svc = cli.ok("describe", "svc", "web")
    assert re.search(r"^Selector:\s+app=web$", svc, re.M)
    assert re.search(r"^Port:\s+<unset>\s+80/TCP$", svc, re.M)

    cli.ok("apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"greeting": "hi"}}))
    cm = cli.ok("describe", "cm", "c")
    assert re.search(r"^Data:$", cm, re.M) and re.search(r"^\s+Greeting:\s+hi$", cm, re.M)
    assert one_line_error(cli("describe", "cm", "absent")) == (
        'Error from server (NotFound): configmaps "absent" not found'
    )


def test_describe_node_and_cluster_scoped_get(cli: Cli) -> None:
    name = f"node-{cli.namespace}"
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"node-role.kubernetes.io/worker": ""}},
            "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}
    assert cli.ok("apply", "-f", "-", stdin=json.dumps(node)).strip() == f"node/{name} created"
    try:
        text = cli.ok("describe", "node", name)
        assert re.search(rf"^Name:\s+{name}$", text, re.M)
        assert re.search(r"^Roles:\s+worker$", text, re.M)
        assert re.search(r"^Taints:\s+dedicated=db:NoSchedule$", text, re.M)
        assert re.search(r"^Annotations:\s+<none>$", text, re.M)  # last-applied is not shown
        assert "Namespace:" not in text
        lines = cli.ok("get", "nodes", name).splitlines()
        assert _cells(lines[0])[:3] == ["NAME", "STATUS", "ROLES"] and _cells(lines[1])[0] == name
    finally:
        cli("delete", "node", name, "--wait=false", ns=False)


def test_describe_lists_events(cli: Cli, api_server: Any) -> None:
    cli.ok("apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "evented"}}))
    uid = cli.obj("cm", "evented")["metadata"]["uid"]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    event = {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "evented.1"},
        "involvedObject": {"kind": "ConfigMap", "name": "evented", "namespace": cli.namespace, "uid": uid},
        "reason": "Checked", "message": "all good", "type": "Normal", "count": 1,
        "firstTimestamp": now, "lastTimestamp": now, "source": {"component": "tester"},
    }
    cli.ok("apply", "-f", "-", stdin=json.dumps(event))
    text = cli.ok("describe", "configmap", "evented")
    events = text[text.index("Events:"):].splitlines()
    assert _cells(events[1]) == ["Type", "Reason", "Age", "From", "Message"]
    row = _cells(events[3])
    assert row[:2] == ["Normal", "Checked"] and row[-2:] == ["tester", "all good"]


# -- delete ------------------------------------------------------------------------------------


def test_delete_by_name_file_and_selector(cli: Cli) -> None:
    path = cli.write("app.yaml", DEPLOY_AND_SERVICE)
    cli.ok("apply", "-f", path)
    assert cli.ok("delete", "svc", "web").strip() == 'service "web" deleted'
    svc_gone = 'Error from server (NotFound): services "web" not found'
    assert one_line_error(cli("get", "svc", "web")) == svc_gone
    # Orphaning leaves a finalizer for the garbage collector to clear: do not wait for it here.
    r = cli("delete", "-f", path, "--cascade=orphan", "--wait=false")
    assert r.out.splitlines() == ['deployment.apps "web" deleted']
    assert one_line_error(r) == svc_gone
    assert cli("delete", "-f", path, "--ignore-not-found", "--wait=false").rc == 0

    cli.ok("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "labels": {"gone": "yes"}}}
        for n in ("d1", "d2")]}))
    assert sorted(cli.ok("delete", "cm", "-l", "gone=yes").splitlines()) == [
        'configmap "d1" deleted', 'configmap "d2" deleted',
    ]
    assert one_line_error(cli("delete", "pod", "nope")) == (
        'Error from server (NotFound): pods "nope" not found'
    )
    assert one_line_error(cli("delete", "pods")) == (
        "error: resource(s) were provided, but no name was specified"
    )


def test_delete_pods_with_grace_period(cli: Cli) -> None:
    pods = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n},
         "spec": {"containers": [{"name": "c", "image": "busybox"}]}} for n in ("p1", "p2")]}
    cli.ok("apply", "-f", "-", stdin=json.dumps(pods))
    assert cli.ok("delete", "pod", "p1", "--grace-period=5").strip() == 'pod "p1" deleted'
    r = cli("delete", "pod/p2", "--grace-period=0", "--force")
    assert r.rc == 0 and r.out.strip() == 'pod "p2" force deleted'
    assert r.err.startswith("Warning: Immediate deletion")
    assert cli("get", "pods").err.strip() == f"No resources found in {cli.namespace} namespace."


# -- misc --------------------------------------------------------------------------------------


def test_create_namespace_conflict(cli: Cli) -> None:
    line = one_line_error(cli("create", "namespace", cli.namespace, ns=False))
    assert line == f'Error from server (AlreadyExists): namespaces "{cli.namespace}" already exists'


def test_kubeconfig_prints_server_file(api_server: Any, tmp_path: Path) -> None:
    data_dir = Path(api_server.kubeconfig).parent
    r = subprocess.run([BOSUN, "kubeconfig", "--data-dir", str(data_dir)], capture_output=True, text=True,
                       timeout=30, check=True)
    assert r.stdout == Path(api_server.kubeconfig).read_text()
    # The printed file works as a kubeconfig.
    (tmp_path / "kc").write_text(r.stdout)
    out = subprocess.run([BOSUN, "--kubeconfig", str(tmp_path / "kc"), "get", "ns", "default", "-o", "name"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.strip() == "namespace/default"
    missing = subprocess.run([BOSUN, "kubeconfig", "--data-dir", str(tmp_path / "nothing")],
                             capture_output=True, text=True, timeout=30, check=False)
    assert one_line_error(Result(missing.returncode, missing.stdout, missing.stderr)).startswith(
        "error: no kubeconfig at "
    )


def test_unreachable_server_and_bad_kubeconfig(api_server: Any, tmp_path: Path) -> None:
    text = Path(api_server.kubeconfig).read_text().replace(api_server.url, "https://127.0.0.1:1")
    (tmp_path / "dead").write_text(text)
    r = subprocess.run([BOSUN, "--kubeconfig", str(tmp_path / "dead"), "get", "pods"], capture_output=True,
                       text=True, timeout=30, check=False)
    assert one_line_error(Result(r.returncode, r.stdout, r.stderr)).startswith(
        "error: the connection to the server 127.0.0.1:1 failed"
    )
    (tmp_path / "stranger").write_text(Path(api_server.kubeconfig).read_text().replace(api_server.token, "nope"))
    r = subprocess.run([BOSUN, "--kubeconfig", str(tmp_path / "stranger"), "get", "pods"], capture_output=True,
                       text=True, timeout=30, check=False)
    assert one_line_error(Result(r.returncode, r.stdout, r.stderr)) == (
        "error: You must be logged in to the server (Unauthorized)"
    )
    r = subprocess.run([BOSUN, "--kubeconfig", str(tmp_path / "none"), "get", "pods"], capture_output=True,
                       text=True, timeout=30, check=False)
    line = one_line_error(Result(r.returncode, r.stdout, r.stderr))
    assert line.startswith("error: cannot read kubeconfig")


def test_kubectl_apply_agrees_with_bosun_apply(cli: Cli) -> None:
    """Both tools share the last-applied annotation: each sees the other's apply as current."""
    assert KUBECTL is not None, "kubectl is part of the test machine (/usr/bin/kubectl)"
    path = cli.write("app.yaml", DEPLOY_AND_SERVICE)
    cli.ok("apply", "-f", path)
    out = subprocess.run([KUBECTL, "--kubeconfig", cli.kubeconfig, "-n", cli.namespace, "apply", "-f", path],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.splitlines() == ["deployment.apps/web unchanged", "service/web unchanged"]
    changed = cli.write("app2.yaml", DEPLOY_AND_SERVICE.replace("replicas: 2", "replicas: 4"))
    subprocess.run([KUBECTL, "--kubeconfig", cli.kubeconfig, "-n", cli.namespace, "apply", "-f", changed],
                   capture_output=True, text=True, timeout=30, check=True)
    assert cli.ok("apply", "-f", changed).splitlines() == [
        "deployment.apps/web unchanged", "service/web unchanged",
    ]


def test_custom_kinds_are_known_through_discovery(cli: Cli) -> None:
    """A CRD's kind works in `bosun apply`, `get` (by plural, short name and plural.group) and
    `delete` like a built-in one; an unknown kind is still one line."""
    group = f"c{uuid.uuid4().hex[:6]}.example.com"
    crd = f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: gadgets.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: gadgets, singular: gadget, kind: Gadget, shortNames: [gdg]}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties: {{spec: {{type: object, properties: {{size: {{type: integer}}}}}}}}
"""
    cli.ok("apply", "-f", cli.write("crd.yaml", crd), ns=False)
    try:
        deadline = time.monotonic() + 60
        while cli("get", "gadgets").rc != 0:
            assert time.monotonic() < deadline, "the CRD was not served"
            time.sleep(0.1)
        obj = f"apiVersion: {group}/v1\nkind: Gadget\nmetadata: {{name: g1}}\nspec: {{size: 3}}\n"
        path = cli.write("g1.yaml", obj)
        assert cli.ok("apply", "-f", path).strip() == f"gadget.{group}/g1 created"
        assert cli.ok("apply", "-f", path).strip() == f"gadget.{group}/g1 unchanged"
        assert cli.ok("get", "gdg").split()[:3] == ["NAME", "AGE", "g1"]
        assert cli.obj(f"gadgets.{group}", "g1")["spec"] == {"size": 3}
        cli.ok("delete", "-f", path)
        line = one_line_error(cli("get", "gizmos"))
        assert line == 'error: the server doesn\'t have a resource type "gizmos"'
    finally:
        cli("delete", "customresourcedefinition", f"gadgets.{group}", ns=False)
