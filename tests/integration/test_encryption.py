"""Secrets are encrypted at rest: kubectl sees no difference, the store holds only ciphertext
(SQLite and etcd), watches deliver plaintext, keys rotate, and a missing or wrong key is a
500 that names it, never a crash or an empty secret."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, start_server

from bosun.api.registry import by_plural
from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.security.encryption import new_config

KUBECTL = "/usr/bin/kubectl"


def kubectl(
    srv: RunningServer, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([KUBECTL, "--kubeconfig", srv.kubeconfig, *args], input=stdin,
                          capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
    return proc


def raw(srv: RunningServer, key: str) -> bytes:
    """The value as the store holds it (what sqlite3 or etcdctl would show)."""
    server = srv.api
    assert server.store is not None
    kv = srv.call(server.store.get(key))
    assert kv is not None, key
    return kv.value  # type: ignore[attr-defined, no-any-return]


def secret_data(srv: RunningServer, ns: str, name: str) -> dict[str, str]:
    out = json.loads(kubectl(srv, "get", "secret", name, "-n", ns, "-o", "json").stdout)
    return {k: base64.b64decode(v).decode() for k, v in (out.get("data") or {}).items()}


def with_config(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def key_config(*keys: tuple[str, bytes], identity: bool = True, identity_first: bool = False) -> str:
    """An EncryptionConfiguration for secrets with these aesgcm keys (first one writes)."""
    lines = ["apiVersion: apiserver.config.k8s.io/v1", "kind: EncryptionConfiguration", "resources:",
             "  - resources: [secrets]", "    providers:"]
    if identity_first:
        lines.append("      - identity: {}")
    if keys:
        lines += ["      - aesgcm:", "          keys:"]
        for name, secret in keys:
            lines += [f"            - name: {name}", f"              secret: {base64.b64encode(secret).decode()}"]
    if identity and not identity_first:
        lines.append("      - identity: {}")
    return "\n".join(lines) + "\n"


def start_with(data_dir: Path, config: Path | None, store_url: str = "") -> RunningServer:
    """start_server with an explicit encryption configuration (the --encryption-config flag)."""
    return start_server(data_dir, store_url=store_url, encryption_config=config)


@pytest.mark.parametrize("backend", ["sqlite", "etcd"])
def test_secret_encrypted_at_rest(backend: str, tmp_path: Path, servers: list[RunningServer],
                                  request: pytest.FixtureRequest) -> None:
    store_url = f"etcd://{request.getfixturevalue('etcd_endpoint')}" if backend == "etcd" else ""
    a = start_server(tmp_path / "a", store_url=store_url)
    servers.append(a)
    conf = tmp_path / "a" / "pki" / "encryption.yaml"
    assert conf.stat().st_mode & 0o777 == 0o600
    assert "aesgcm" in conf.read_text()
    ns = f"enc-{uuid.uuid4().hex[:8]}"
    plain = f"hunter2-{uuid.uuid4().hex}"
    kubectl(a, "create", "namespace", ns)
    try:
        kubectl(a, "create", "secret", "generic", "db", "-n", ns, f"--from-literal=password={plain}")
        assert secret_data(a, ns, "db") == {"password": plain}
        value = raw(a, f"/registry/secrets/{ns}/db")
        assert value.startswith(b"k8s:enc:aesgcm:v1:key1:")
        assert plain.encode() not in value and base64.b64encode(plain.encode()) not in value
        if backend == "sqlite":
            # What `sqlite3 DATA_DIR/state.db` would show: no trace of the secret anywhere.
            for f in (tmp_path / "a").glob("state.db*"):
                blob = f.read_bytes()
                assert plain.encode() not in blob and base64.b64encode(plain.encode()) not in blob
        # Other resources are stored as before: plain JSON.
        kubectl(a, "create", "configmap", "cfg", "-n", ns, "--from-literal=k=v")
        assert raw(a, f"/registry/configmaps/{ns}/cfg").startswith(b"{")

        if backend == "etcd":
            # A second server on the same etcd with the same key file: it reads and watches the
            # secrets the first one writes (its watch cache decrypts what it did not write).
            (tmp_path / "b" / "pki").mkdir(parents=True)
            shutil.copy(conf, tmp_path / "b" / "pki" / "encryption.yaml")
            b = start_server(tmp_path / "b", store_url=store_url)
            servers.append(b)
            assert secret_data(b, ns, "db") == {"password": plain}
            watched = watch_one_secret(b, ns, "later", lambda: kubectl(
                a, "create", "secret", "generic", "later", "-n", ns, "--from-literal=token=abc123"))
        else:
            watched = watch_one_secret(a, ns, "later", lambda: kubectl(
                a, "create", "secret", "generic", "later", "-n", ns, "--from-literal=token=abc123"))
        assert watched["data"] == {"token": base64.b64encode(b"abc123").decode()}
        listed = json.loads(kubectl(a, "get", "secrets", "-n", ns, "-o", "json").stdout)
        assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["db", "later"]

        if backend == "sqlite":
            # A restart reads with the key file it made at the first start.
            a.stop()
            servers.remove(a)
            a = start_server(tmp_path / "a")
            servers.append(a)
            assert secret_data(a, ns, "db") == {"password": plain}
    finally:
        kubectl(a, "delete", "namespace", ns, "--wait=true", "--timeout=30s", check=False)


def watch_one_secret(srv: RunningServer, ns: str, name: str, make: Any) -> dict[str, Any]:
    """The object of the ADDED event for secret ``name``, watched while ``make()`` creates it."""
    secrets = by_plural("", "v1", "secrets")
    assert secrets is not None

    async def go() -> dict[str, Any]:
        async with Client.from_kubeconfig(srv.kubeconfig) as c:
            start = (await c.list(secrets, ns))["metadata"]["resourceVersion"]
            got: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

            async def follow() -> None:
                async for ev in c.watch(secrets, ns, resource_version=start, timeout_seconds=15):
                    if ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == name:
                        got.set_result(ev["object"])
                        return

            task = asyncio.create_task(follow())
            await asyncio.sleep(0.2)
            await asyncio.to_thread(make)
            try:
                return await asyncio.wait_for(got, 15)
            finally:
                task.cancel()

    return asyncio.run(go())


def test_rotation_and_plaintext_from_before(tmp_path: Path, servers: list[RunningServer]) -> None:
    data = tmp_path / "srv"
    (data / "pki").mkdir(parents=True)
    conf = data / "pki" / "custom.yaml"
    old, new = os.urandom(32), os.urandom(32)

    # Encryption off (identity first): the secret is stored as plain JSON.
    srv = start_with(data, with_config(conf, key_config(("old", old), identity_first=True)))
    servers.append(srv)
    ns = "default"
    kubectl(srv, "create", "secret", "generic", "plain", "-n", ns, "--from-literal=v=from-before")
    assert raw(srv, f"/registry/secrets/{ns}/plain").startswith(b"{")
    srv.stop()
    servers.remove(srv)

    # Turned on with key "old": plaintext from before is still read; new writes use "old".
    srv = start_with(data, with_config(conf, key_config(("old", old))))
    servers.append(srv)
    assert secret_data(srv, ns, "plain") == {"v": "from-before"}
    kubectl(srv, "create", "secret", "generic", "s1", "-n", ns, "--from-literal=v=one")
    assert raw(srv, f"/registry/secrets/{ns}/s1").startswith(b"k8s:enc:aesgcm:v1:old:")
    srv.stop()
    servers.remove(srv)

    # Rotation: "new" first, "old" still listed: everything reads, new writes use "new".
    srv = start_with(data, with_config(conf, key_config(("new", new), ("old", old))))
    servers.append(srv)
    assert secret_data(srv, ns, "s1") == {"v": "one"}
    kubectl(srv, "create", "secret", "generic", "s2", "-n", ns, "--from-literal=v=two")
    assert raw(srv, f"/registry/secrets/{ns}/s2").startswith(b"k8s:enc:aesgcm:v1:new:")
    assert raw(srv, f"/registry/secrets/{ns}/s1").startswith(b"k8s:enc:aesgcm:v1:old:")
    # Rewrite every secret, as in Kubernetes: now all carry the new key.
    dump = kubectl(srv, "get", "secrets", "-n", ns, "-o", "json").stdout
    kubectl(srv, "replace", "-f", "-", stdin=dump)
    for name in ("plain", "s1", "s2"):
        assert raw(srv, f"/registry/secrets/{ns}/{name}").startswith(b"k8s:enc:aesgcm:v1:new:")
    srv.stop()
    servers.remove(srv)

    # The old key dropped: everything still reads.
    srv = start_with(data, with_config(conf, key_config(("new", new), identity=False)))
    servers.append(srv)
    assert secret_data(srv, ns, "plain") == {"v": "from-before"}
    assert secret_data(srv, ns, "s1") == {"v": "one"}
    assert secret_data(srv, ns, "s2") == {"v": "two"}


def test_missing_or_wrong_key_is_a_clear_500(tmp_path: Path, servers: list[RunningServer],
                                             caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "srv"
    (data / "pki").mkdir(parents=True)
    conf = data / "pki" / "custom.yaml"
    k1 = os.urandom(32)
    srv = start_with(data, with_config(conf, key_config(("k1", k1))))
    servers.append(srv)
    kubectl(srv, "create", "secret", "generic", "locked", "--from-literal=v=x")
    srv.stop()
    servers.remove(srv)

    # The key that wrote it is missing from the configuration.
    srv = start_with(data, with_config(conf, key_config(("k2", os.urandom(32)))))
    servers.append(srv)
    assert "1 of 1 stored secrets cannot be decrypted" in caplog.text  # said at start already
    out = kubectl(srv, "get", "secret", "locked", "-o", "json", check=False)
    assert out.returncode != 0 and out.stdout == ""
    assert "InternalError" in out.stderr or "Internal error" in out.stderr, out.stderr
    assert '"k1"' in out.stderr and "/registry/secrets/default/locked" in out.stderr, out.stderr
    assert "not in the encryption configuration" in out.stderr
    status = api_status(srv, "locked")
    assert status[0] == 500 and '"k1"' in status[1]
    listed = kubectl(srv, "get", "secrets", check=False)
    assert listed.returncode != 0 and '"k1"' in listed.stderr
    # The server is up and everything else works, garbage collection included (its informer
    # of Secrets cannot list, the others can).
    kubectl(srv, "create", "configmap", "still-fine", "--from-literal=k=v")
    owner = json.loads(kubectl(srv, "get", "configmap", "still-fine", "-o", "json").stdout)
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "still-fine", "uid": owner["metadata"]["uid"]}
    kubectl(srv, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "dependent", "namespace": "default", "ownerReferences": [ref]}}))
    kubectl(srv, "delete", "configmap", "still-fine")
    deadline = time.monotonic() + 30
    while kubectl(srv, "get", "configmap", "dependent", check=False).returncode == 0:
        assert time.monotonic() < deadline, "the dependent was not collected"
        time.sleep(0.1)
    srv.stop()
    servers.remove(srv)

    # The same key name with another secret: also a clear 500, not garbage or an empty secret.
    srv = start_with(data, with_config(conf, key_config(("k1", os.urandom(32)))))
    servers.append(srv)
    code, message = api_status(srv, "locked")
    assert code == 500 and '"k1"' in message and "does not open it" in message, message
    srv.stop()
    servers.remove(srv)

    # Back with the right key: readable again.
    srv = start_with(data, with_config(conf, key_config(("k1", k1))))
    servers.append(srv)
    assert secret_data(srv, "default", "locked") == {"v": "x"}


def api_status(srv: RunningServer, name: str) -> tuple[int, str]:
    secrets = by_plural("", "v1", "secrets")
    assert secrets is not None

    async def go() -> tuple[int, str]:
        async with Client.from_kubeconfig(srv.kubeconfig) as c:
            try:
                await c.get(secrets, name, "default")
            except ApiError as exc:
                return exc.status, exc.message
        return 200, ""

    return asyncio.run(go())


def test_bad_configuration_refuses_to_start(tmp_path: Path) -> None:
    conf = with_config(tmp_path / "bad.yaml", key_config(("short", b"0123456789")))
    with pytest.raises(ValueError, match="16, 24 or 32 bytes"):
        start_with(tmp_path / "srv", conf)
    assert not new_config().count("secret: \n")


def test_servers_with_different_keys_on_one_etcd(tmp_path: Path, etcd_endpoint: str,
                                                servers: list[RunningServer],
                                                caplog: pytest.LogCaptureFixture) -> None:
    """The mistake the README warns about: b cannot read a's secrets. It says so (500 naming
    the key, an error in its log) and keeps serving everything else, watches included."""
    store = f"etcd://{etcd_endpoint}"
    a = start_server(tmp_path / "a", store_url=store)
    servers.append(a)
    b = start_server(tmp_path / "b", store_url=store)  # its own, different key file
    servers.append(b)
    name = f"mine-{uuid.uuid4().hex[:8]}"
    try:
        watched = watch_one_secret(b, "default", "after", lambda: (
            kubectl(a, "create", "secret", "generic", name, "--from-literal=v=x"),
            kubectl(b, "create", "secret", "generic", "after", "--from-literal=v=y")))
        assert watched["data"] == {"v": base64.b64encode(b"y").decode()}
        assert f"watch event ADDED /registry/secrets/default/{name}" in caplog.text
        out = kubectl(b, "get", "secret", name, check=False)
        assert out.returncode != 0 and 'aesgcm key "key1"' in out.stderr
        assert str(tmp_path / "b" / "pki" / "encryption.yaml") in out.stderr
    finally:
        kubectl(a, "delete", "secret", name, "--ignore-not-found", check=False)
        kubectl(b, "delete", "secret", "after", "--ignore-not-found", check=False)
