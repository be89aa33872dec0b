"""ServiceAccount admission end to end, with a real server and real kubectl 1.32, as upstream's
plugin behaves: a pod naming an account that does not exist is refused (403); a namespace's
pods are admitted right after it is made (the serviceaccount controller runs in every control
plane, and the ``default`` account is looked up again for a moment); without that controller a
pod waits for ``default`` that long and is then refused; mirror pods are not changed and may
not reference accounts or Secrets; an account's imagePullSecrets reach its pods.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import RunningServer, served

from bosun.component import ControlPlaneOptions

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The test servers' usual control plane: no controller but those always running."""
    yield from served(tmp_path_factory.mktemp("sa-server"))


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A control plane whose serviceaccount controller is turned off: no ``default`` account is made."""
    options = ControlPlaneOptions(controllers=["none", "-serviceaccounts"], scheduler=False)
    yield from served(tmp_path_factory.mktemp("sa-bare"), options=options)


def kubectl(srv: RunningServer, *args: str, stdin: str | None = None, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["kubectl", "--kubeconfig", srv.kubeconfig, *args], input=stdin, capture_output=True,
                          text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc


class Namespaces:
    """Namespaces a test makes, deleted on leaving."""

    def __init__(self, srv: RunningServer) -> None:
        self.srv, self.made = srv, list[str]()

    def make(self) -> str:
        name = f"sa-{uuid.uuid4().hex[:8]}"
        kubectl(self.srv, "create", "namespace", name)
        self.made.append(name)
        return name

    def __enter__(self) -> Namespaces:
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.made:
            kubectl(self.srv, "delete", "namespace", name, "--wait=false", check=False)


def pod(name: str, spec: Obj | None = None, annotations: dict[str, str] | None = None) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "annotations": annotations or {}},
                       "spec": {"containers": [{"name": "c", "image": "busybox"}], **(spec or {})}})


def create(srv: RunningServer, ns: str, doc: str) -> subprocess.CompletedProcess[str]:
    return kubectl(srv, "-n", ns, "create", "-f", "-", "-o", "json", stdin=doc, check=False)


def test_a_missing_account_is_refused(server: RunningServer) -> None:
    with Namespaces(server) as spaces:
        ns = spaces.make()
        refused = create(server, ns, pod("runner", {"serviceAccountName": "nobody"}))
        assert refused.returncode != 0
        assert (f'Error from server (Forbidden): error when creating "STDIN": pods "runner" is forbidden: '
                f'error looking up service account {ns}/nobody: serviceaccount "nobody" not found') \
            in refused.stderr, refused.stderr
        kubectl(server, "-n", ns, "create", "serviceaccount", "nobody")
        made = create(server, ns, pod("runner", {"serviceAccountName": "nobody"}))
        assert made.returncode == 0, made.stderr
        spec = json.loads(made.stdout)["spec"]
        assert spec["serviceAccountName"] == spec["serviceAccount"] == "nobody"
        assert any(v["name"].startswith("kube-api-access-") for v in spec["volumes"])


def test_pods_right_after_their_namespace_are_admitted(server: RunningServer) -> None:
    """What every script does (kubectl create namespace, then apply): never refused for want
    of the ``default`` account the controller makes a moment after the namespace."""
    with Namespaces(server) as spaces:
        for _ in range(5):
            ns = spaces.make()
            made = create(server, ns, pod("first"))
            assert made.returncode == 0, made.stderr
            assert json.loads(made.stdout)["spec"]["serviceAccountName"] == "default"


def test_without_the_controller_a_pod_waits_for_default_then_is_refused(bare: RunningServer) -> None:
    with Namespaces(bare) as spaces:
        ns = spaces.make()
        started = time.monotonic()
        refused = create(bare, ns, pod("early"))
        waited = time.monotonic() - started
        assert refused.returncode != 0
        assert (f'pods "early" is forbidden: error looking up service account {ns}/default: '
                f'serviceaccount "default" not found') in refused.stderr, refused.stderr
        assert waited >= 0.9, f"the default account was looked up for {waited:.2f}s only"
        # The account made while the pod's admission looks again for it: the pod is admitted.
        ns = spaces.make()
        maker = threading.Timer(0.4, lambda: kubectl(bare, "-n", ns, "create", "serviceaccount", "default"))
        maker.start()
        try:
            made = create(bare, ns, pod("patient"))
        finally:
            maker.join()
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["spec"]["serviceAccountName"] == "default"


def test_mirror_pods(server: RunningServer) -> None:
    mirror = {"kubernetes.io/config.mirror": "hash"}
    with Namespaces(server) as spaces:
        ns = spaces.make()
        made = create(server, ns, pod("static-web", annotations=mirror))
        assert made.returncode == 0, made.stderr
        spec = json.loads(made.stdout)["spec"]
        assert "serviceAccountName" not in spec and "volumes" not in spec
        for extra, why in (
            ({"serviceAccountName": "default"}, "a mirror pod may not reference service accounts"),
            ({"volumes": [{"name": "s", "secret": {"secretName": "creds"}}]},
             "a mirror pod may not reference secrets"),
            ({"imagePullSecrets": [{"name": "registry"}]}, "a mirror pod may not reference secrets"),
            ({"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]},
             "a mirror pod may not use ServiceAccountToken volume projections"),
        ):
            refused = create(server, ns, pod("static-bad", extra, mirror))
            assert refused.returncode != 0
            assert f'pods "static-bad" is forbidden: {why}' in refused.stderr, refused.stderr


def test_image_pull_secrets_and_automount_come_from_the_account(server: RunningServer) -> None:
    with Namespaces(server) as spaces:
        ns = spaces.make()
        account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder"},
                   "imagePullSecrets": [{"name": "registry"}], "automountServiceAccountToken": False}
        kubectl(server, "-n", ns, "create", "-f", "-", stdin=json.dumps(account))
        made = create(server, ns, pod("build", {"serviceAccountName": "builder"}))
        assert made.returncode == 0, made.stderr
        spec = json.loads(made.stdout)["spec"]
        assert spec["imagePullSecrets"] == [{"name": "registry"}]
        assert "volumes" not in spec
        own = create(server, ns, pod("own", {"serviceAccountName": "builder", "imagePullSecrets": [{"name": "mine"}],
                                             "automountServiceAccountToken": True}))
        assert own.returncode == 0, own.stderr
        spec = json.loads(own.stdout)["spec"]
        assert spec["imagePullSecrets"] == [{"name": "mine"}]
        assert any(v["name"].startswith("kube-api-access-") for v in spec["volumes"])


def test_enforce_mountable_secrets_limits_pods_to_the_accounts_secrets(server: RunningServer) -> None:
    with Namespaces(server) as spaces:
        ns = spaces.make()
        account = {"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": "locked", "annotations": {"kubernetes.io/enforce-mountable-secrets": "true"}},
                   "secrets": [{"name": "allowed"}], "imagePullSecrets": [{"name": "pull-ok"}]}
        kubectl(server, "-n", ns, "create", "-f", "-", stdin=json.dumps(account))
        env_ok = [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "allowed", "key": "k"}}}]
        fine = create(server, ns, pod("fine", {
            "serviceAccountName": "locked", "volumes": [{"name": "s", "secret": {"secretName": "allowed"}}],
            "containers": [{"name": "c", "image": "busybox", "env": env_ok,
                            "envFrom": [{"secretRef": {"name": "allowed"}}]}]}))
        assert fine.returncode == 0, fine.stderr
        # the account's imagePullSecrets, copied onto the pod, are its own: allowed
        assert json.loads(fine.stdout)["spec"]["imagePullSecrets"] == [{"name": "pull-ok"}]
        tail = "is not allowed because service account locked does not reference that secret"
        for extra, why in (
            ({"volumes": [{"name": "s", "secret": {"secretName": "other"}}]},
             f'volume with secret.secretName="other" {tail}'),
            ({"containers": [{"name": "app", "image": "busybox", "env": [
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "other", "key": "k"}}}]}]},
             f'container app with envVar PASSWORD referencing secret.secretName="other" {tail}'),
            ({"initContainers": [{"name": "setup", "image": "busybox", "envFrom": [{"secretRef": {"name": "other"}}]}]},
             f'init container setup with envFrom referencing secret.secretName="other" {tail}'),
            ({"imagePullSecrets": [{"name": "pull-ok"}, {"name": "elsewhere"}]},
             'imagePullSecrets[1].name="elsewhere" is not allowed because service account locked '
             "does not reference that imagePullSecret"),
        ):
            refused = create(server, ns, pod("bad", {"serviceAccountName": "locked", **extra}))
            assert refused.returncode != 0, refused.stdout
            assert f'pods "bad" is forbidden: {why}' in refused.stderr, refused.stderr
        # without the annotation (or with it "false") the same references are admitted
        kubectl(server, "-n", ns, "annotate", "serviceaccount", "locked",
                "kubernetes.io/enforce-mountable-secrets=false", "--overwrite")
        free = create(server, ns, pod("free", {"serviceAccountName": "locked",
                                               "volumes": [{"name": "s", "secret": {"secretName": "other"}}]}))
        assert free.returncode == 0, free.stderr


def test_enforce_mountable_secrets_applies_to_added_ephemeral_containers(server: RunningServer) -> None:
    with Namespaces(server) as spaces:
        ns = spaces.make()
        account = {"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": "locked", "annotations": {"kubernetes.io/enforce-mountable-secrets": "true"}},
                   "secrets": [{"name": "allowed"}]}
        kubectl(server, "-n", ns, "create", "-f", "-", stdin=json.dumps(account))
        made = create(server, ns, pod("target", {"serviceAccountName": "locked"}))
        assert made.returncode == 0, made.stderr
        current = json.loads(made.stdout)

        def debug(secret: str) -> subprocess.CompletedProcess[str]:
            body = dict(current)
            body["spec"] = dict(current["spec"], ephemeralContainers=[{
                "name": "dbg", "image": "busybox", "envFrom": [{"secretRef": {"name": secret}}]}])
            return kubectl(server, "replace", "--raw", f"/api/v1/namespaces/{ns}/pods/target/ephemeralcontainers",
                           "-f", "-", stdin=json.dumps(body), check=False)

        refused = debug("other")
        assert refused.returncode != 0
        assert ('ephemeral container dbg with envFrom referencing secret.secretName="other" is not allowed '
                "because service account locked does not reference that secret") in refused.stderr, refused.stderr
        added = debug("allowed")
        assert added.returncode == 0, added.stderr
        assert [c["name"] for c in json.loads(added.stdout)["spec"]["ephemeralContainers"]] == ["dbg"]
