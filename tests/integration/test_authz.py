"""Authorization end to end: a real server, kubectl with a kubeconfig per user, and the
node credential a join token buys, used as the agent uses it."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from tests.conftest import RunningServer, served

from bosun.client.kubeconfig import write_kubeconfig
from bosun.security.tokens import create_join_token, create_user_token


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from served(tmp_path_factory.mktemp("authz"))


def kubeconfig_for(server: RunningServer, token: str, path: Path) -> str:
    write_kubeconfig(str(path), server=server.url, ca_pem=Path(server.ca_path).read_bytes(), token=token)
    return str(path)


def kubectl(kc: str, *args: str) -> tuple[int, str]:
    p = subprocess.run(["kubectl", "--kubeconfig", kc, *args], capture_output=True, text=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).strip()


def api(server: RunningServer, token: str) -> Any:
    """The typed client, used with plain dicts as bodies (it serializes them as given)."""
    cfg = k8s.Configuration()
    cfg.host = server.url
    cfg.ssl_ca_cert = server.ca_path
    cfg.api_key = {"authorization": f"Bearer {token}"}
    return k8s.CoreV1Api(k8s.ApiClient(cfg))


@pytest.fixture(scope="module")
def viewer(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """alice, bound to `view` in namespace `team-a` only."""
    admin = server.kubeconfig
    assert kubectl(admin, "create", "namespace", "team-a")[0] == 0
    assert kubectl(admin, "create", "namespace", "team-b")[0] == 0
    assert kubectl(admin, "create", "rolebinding", "alice-view", "--clusterrole=view", "--user=alice",
                   "-n", "team-a")[0] == 0
    token = create_user_token(server.data_dir, "alice", ["devs"])
    return token, kubeconfig_for(server, token, tmp_path_factory.mktemp("kc") / "alice")


def test_admin_may_do_everything(server: RunningServer) -> None:
    assert kubectl(server.kubeconfig, "auth", "can-i", "delete", "secrets", "-A") == (0, "yes")
    code, out = kubectl(server.kubeconfig, "auth", "whoami")
    assert code == 0 and "bosun-admin" in out and "system:masters" in out
    code, out = kubectl(server.kubeconfig, "get", "clusterroles")
    assert code == 0
    for role in ("cluster-admin", "admin", "edit", "view", "system:basic-user"):
        assert f"\n{role} " in out


def test_viewer_reads_its_namespace_only(server: RunningServer, viewer: tuple[str, str]) -> None:
    _, kc = viewer
    assert kubectl(kc, "get", "pods", "-n", "team-a")[0] == 0
    assert kubectl(kc, "get", "pods", "-n", "team-b") == (
        1, 'Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" '
           'in API group "" in the namespace "team-b"')
    assert kubectl(kc, "get", "secrets", "-n", "team-a") == (
        1, 'Error from server (Forbidden): secrets is forbidden: User "alice" cannot list resource "secrets" '
           'in API group "" in the namespace "team-a"')
    code, out = kubectl(kc, "create", "configmap", "x", "-n", "team-a")
    assert code == 1 and 'cannot create resource "configmaps"' in out


def test_can_i_answers(server: RunningServer, viewer: tuple[str, str]) -> None:
    _, kc = viewer
    assert kubectl(kc, "auth", "can-i", "list", "pods", "-n", "team-a") == (0, "yes")
    assert kubectl(kc, "auth", "can-i", "get", "pods/log", "-n", "team-a") == (0, "yes")
    assert kubectl(kc, "auth", "can-i", "create", "pods", "-n", "team-a") == (1, "no")
    assert kubectl(kc, "auth", "can-i", "list", "pods", "-n", "team-b") == (1, "no")
    assert kubectl(kc, "auth", "can-i", "create", "pods/exec", "-n", "team-a") == (1, "no")
    code, out = kubectl(kc, "auth", "can-i", "--list", "-n", "team-a")
    assert code == 0 and "deployments.apps" in out and "secrets" not in out
    code, out = kubectl(kc, "auth", "whoami")
    assert code == 0 and "alice" in out and "devs" in out


def test_bindings_take_effect_and_are_printed(server: RunningServer, viewer: tuple[str, str]) -> None:
    admin, (_, kc) = server.kubeconfig, viewer
    assert kubectl(kc, "get", "configmaps", "-n", "team-b")[0] == 1
    assert kubectl(admin, "create", "role", "cm-reader", "--verb=get,list", "--resource=configmaps",
                   "-n", "team-b")[0] == 0
    assert kubectl(admin, "create", "rolebinding", "devs-cm", "--role=cm-reader", "--group=devs",
                   "-n", "team-b")[0] == 0
    assert kubectl(kc, "get", "configmaps", "-n", "team-b")[0] == 0
    code, out = kubectl(admin, "get", "rolebinding", "devs-cm", "-n", "team-b", "-o", "wide")
    assert code == 0 and "Role/cm-reader" in out and "devs" in out
    code, out = kubectl(admin, "create", "clusterrolebinding", "bad", "--clusterrole=view", "--serviceaccount=x")
    assert code != 0


def node_credential(server: RunningServer, token: str, node: str) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(f"{server.url}/bosun/v1/node-credentials", method="POST",
                                 data=json.dumps({"nodeName": node}).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    ctx = ssl.create_default_context(cafile=server.ca_path)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _pod(name: str, node: str, secret: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox",
                                                       "env": [{"name": "P", "valueFrom": {
                                                           "secretKeyRef": {"name": secret, "key": "k"}}}]}]}}


def test_node_credential_is_confined(server: RunningServer) -> None:
    admin = api(server, server.token)
    join = create_join_token(server.data_dir, 600)
    boot = api(server, join)
    # A join token buys a node credential, and nothing else.
    with pytest.raises(ApiException) as exc:
        boot.list_namespaced_secret("default")
    assert exc.value.status == 403
    code, answer = node_credential(server, join, "n1")
    assert code == 201
    node = api(server, answer["token"])
    assert answer["user"] == "system:node:n1"

    for name in ("used", "unused"):
        admin.create_namespaced_secret("default", {"metadata": {"name": name}, "stringData": {"k": "v"}})
    admin.create_namespaced_pod("default", _pod("on-n1", "n1", "used"))
    admin.create_namespaced_pod("default", _pod("on-n2", "n2", "unused"))
    node.create_node({"metadata": {"name": "n1"}})
    admin.create_node({"metadata": {"name": "n2"}})

    assert node.read_namespaced_secret("used", "default").metadata.name == "used"
    with pytest.raises(ApiException) as exc:
        node.read_namespaced_secret("unused", "default")
    assert exc.value.status == 403
    assert ('secrets "unused" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" '
            "in the namespace \"default\": no relationship found between node 'n1' and this object"
            ) == json.loads(exc.value.body or "{}")["message"]
    with pytest.raises(ApiException) as exc:
        node.list_namespaced_secret("default")
    assert exc.value.status == 403
    with pytest.raises(ApiException) as exc:
        node.patch_node("n2", {"metadata": {"labels": {"x": "y"}}})
    assert exc.value.status == 403
    with pytest.raises(ApiException) as exc:
        node.create_node({"metadata": {"name": "n3"}})
    assert exc.value.status == 403
    assert json.loads(exc.value.body or "{}")["message"] == (
        'nodes is forbidden: User "system:node:n1" cannot create resource "nodes" in API group "" at the '
        'cluster scope: node "n1" is not allowed to modify node "n3"')
    with pytest.raises(ApiException) as exc:  # a dry run is refused as a create is
        node.create_node({"metadata": {"name": "n3"}}, dry_run="All")
    assert exc.value.status == 403
    node.patch_node("n1", {"metadata": {"labels": {"x": "y"}}})
    node.patch_namespaced_pod_status("on-n1", "default", {"status": {"phase": "Running"}})
    with pytest.raises(ApiException) as exc:
        node.patch_namespaced_pod_status("on-n2", "default", {"status": {"phase": "Running"}})
    assert exc.value.status == 403
    pods = node.list_namespaced_pod("default", field_selector="spec.nodeName=n1")
    assert [p.metadata.name for p in pods.items] == ["on-n1"]
    with pytest.raises(ApiException) as exc:
        node.delete_namespaced_pod("on-n2", "default")
    assert exc.value.status == 403
    # Asking again replaces the credential: the old one stops working.
    code, again = node_credential(server, answer["token"], "n1")
    assert code == 201
    with pytest.raises(ApiException) as exc:
        node.read_node("n1")
    assert exc.value.status == 401
    assert api(server, again["token"]).read_node("n1").metadata.name == "n1"
    assert node_credential(server, again["token"], "n2")[0] == 403


def test_node_reads_what_its_network_parts_need_and_writes_none_of_it(server: RunningServer) -> None:
    """The service proxy, DNS, overlay and policy of a node read cluster-wide (as kube-proxy
    and CNI agents do) with the node's own credential; reading is all they may do."""
    admin = api(server, server.token)
    code, answer = node_credential(server, create_join_token(server.data_dir, 600), "net1")
    assert code == 201
    node = api(server, answer["token"])
    admin.create_namespaced_service("default", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    admin.create_namespaced_config_map("kube-system", {"metadata": {"name": "private"}, "data": {"k": "v"}})
    admin.create_namespaced_pod("default", _pod("elsewhere", "other-node", "none"))

    assert "web" in [s.metadata.name for s in node.list_service_for_all_namespaces().items]
    assert "kube-system" in [n.metadata.name for n in node.list_namespace().items]
    assert "elsewhere" in [p.metadata.name for p in node.list_pod_for_all_namespaces().items]
    assert node.read_namespaced_config_map("bosun-network", "kube-system").data["clusterCIDR"] == "10.244.0.0/16"
    kc = kubeconfig_for(server, answer["token"], server.data_dir / "net1.kubeconfig")
    for what in ("endpointslices.discovery.k8s.io", "networkpolicies.networking.k8s.io", "endpoints", "nodes"):
        assert kubectl(kc, "auth", "can-i", "list", what, "--all-namespaces") == (0, "yes"), what
        assert kubectl(kc, "auth", "can-i", "watch", what, "--all-namespaces") == (0, "yes"), what

    for write in (lambda: node.create_namespaced_service("default", {"metadata": {"name": "evil"},
                                                                    "spec": {"ports": [{"port": 81}]}}),
                  lambda: node.patch_namespaced_service("web", "default", {"metadata": {"labels": {"x": "y"}}}),
                  lambda: node.delete_namespaced_service("web", "default"),
                  lambda: node.patch_namespace("default", {"metadata": {"labels": {"x": "y"}}}),
                  lambda: node.patch_namespaced_config_map("bosun-network", "kube-system", {"data": {"x": "y"}}),
                  lambda: node.read_namespaced_config_map("private", "kube-system"),
                  lambda: node.list_namespaced_config_map("kube-system")):
        with pytest.raises(ApiException) as exc:
            write()
        assert exc.value.status == 403
    assert kubectl(kc, "get", "networkpolicies", "-A")[0] == 0
    assert kubectl(kc, "auth", "can-i", "delete", "networkpolicies.networking.k8s.io", "-n", "default") == (1, "no")


def test_node_reads_ingresses_and_only_the_tls_secrets_they_name(server: RunningServer) -> None:
    """Every node's nginx serves every Ingress: it reads Ingresses, IngressClasses and, one at a
    time, the TLS Secrets an Ingress names; never another Secret, never a list of them."""
    admin = api(server, server.token)
    code, answer = node_credential(server, create_join_token(server.data_dir, 600), "ing1")
    assert code == 201
    node = api(server, answer["token"])
    for name in ("site-tls", "db-password"):
        admin.create_namespaced_secret("default", {"metadata": {"name": name}, "stringData": {"k": "v"}})
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "site"},
               "spec": {"tls": [{"hosts": ["site.test"], "secretName": "site-tls"}],
                        "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}}
    admin_networking: Any = k8s.NetworkingV1Api(admin.api_client)
    admin_networking.create_namespaced_ingress("default", ingress)
    networking: Any = k8s.NetworkingV1Api(node.api_client)
    assert "site" in [i.metadata.name for i in networking.list_ingress_for_all_namespaces().items]
    networking.list_ingress_class()
    assert node.read_namespaced_secret("site-tls", "default").metadata.name == "site-tls"
    named = node.list_namespaced_secret("default", field_selector="metadata.name=site-tls")
    assert [s.metadata.name for s in named.items] == ["site-tls"]
    for refused in (lambda: node.read_namespaced_secret("db-password", "default"),
                    lambda: node.list_namespaced_secret("default"),
                    lambda: node.list_namespaced_secret("default", field_selector="metadata.name=db-password"),
                    lambda: node.list_secret_for_all_namespaces(field_selector="metadata.name=site-tls"),
                    lambda: networking.delete_namespaced_ingress("site", "default")):
        with pytest.raises(ApiException) as exc:
            refused()
        assert exc.value.status == 403
    # The Ingress gone, so is the node's access to its Secret.
    admin_networking.delete_namespaced_ingress("site", "default")
    with pytest.raises(ApiException) as exc:
        node.read_namespaced_secret("site-tls", "default")
    assert exc.value.status == 403


def test_unauthenticated_is_401(server: RunningServer) -> None:
    with pytest.raises(ApiException) as exc:
        api(server, "nope").list_namespace()
    assert exc.value.status == 401
