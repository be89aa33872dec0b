"""Compose files of the kinds users bring (a web application with its database and cache, a
reverse proxy in front of two services, a monitoring stack), through `bosun stack deploy
--dry-run` as a user types it: the objects each becomes, field by field, and one warning per
field Bosun cannot honour. No cluster is reachable (the kubeconfig names none): a dry run
reads nothing from a server and writes nothing."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml
from tests.e2e.helpers import BOSUN

EXAMPLES = Path(__file__).parent / "stack_examples"
Obj = dict[str, Any]


def dry_run(tmp_path: Path, name: str) -> tuple[dict[tuple[str, str], Obj], list[str]]:
    """The objects (by kind and name) and the warning lines of a dry run of ``name``.yml."""
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "no-such-kubeconfig"), "HOME": str(tmp_path)}
    p = subprocess.run([BOSUN, "stack", "deploy", "--dry-run", "-c", str(EXAMPLES / f"{name}.yml"), name],
                       capture_output=True, text=True, env=env, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(p.stdout) if o}
    assert all(o["metadata"].get("namespace") == name for o in objects.values())
    return objects, p.stderr.splitlines()


def container(workload: Obj) -> Obj:
    (c,) = workload["spec"]["template"]["spec"]["containers"]
    return dict(c)


def mounts(workload: Obj) -> dict[str, Obj]:
    """Mount path -> the volume mounted there."""
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"].get("volumes") or []}
    return {m["mountPath"]: volumes[m["name"]] for m in container(workload).get("volumeMounts") or []}


def admitted_networks(policy: Obj) -> set[str]:
    """The compose networks whose members a service's NetworkPolicy lets in."""
    return {label.removeprefix("network.bosun.io/") for rule in policy["spec"]["ingress"]
            for peer in rule.get("from") or [] for label in peer["podSelector"]["matchLabels"]}


def test_web_database_and_cache(tmp_path: Path) -> None:
    objs, warnings = dry_run(tmp_path, "web-db-cache")
    assert sorted(objs) == sorted([
        *((kind, svc) for svc in ("web", "db", "cache") for kind in ("Deployment", "Service", "NetworkPolicy")),
        ("PersistentVolumeClaim", "dbdata"), ("Secret", "db-password-1ec1c26b50")])
    assert warnings == ["Warning: services.db.shm_size: not supported by Bosun; ignored"]

    web = objs["Deployment", "web"]
    assert web["spec"]["replicas"] == 3
    assert web["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}  # start-first
    assert json.loads(web["metadata"]["annotations"]["bosun.io/update-config"]) == {"failure_action": "rollback"}
    assert json.loads(web["metadata"]["annotations"]["bosun.io/depends-on"]) == {
        "cache": {"condition": "service_started", "required": True},
        "db": {"condition": "service_healthy", "required": True}}
    assert container(web)["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"}}
    secret = mounts(web)["/run/secrets/db_password"]["secret"]
    assert (secret["secretName"], secret["defaultMode"]) == ("db-password-1ec1c26b50", 0o444)
    assert base64.b64decode(objs["Secret", "db-password-1ec1c26b50"]["data"]["content"]) == b"s3cret"
    assert objs["Service", "web"]["spec"]["type"] == "NodePort"
    assert [(p["nodePort"], p["port"]) for p in objs["Service", "web"]["spec"]["ports"]] == [(8080, 80)]

    db = container(objs["Deployment", "db"])
    probe = db["readinessProbe"]
    assert probe["exec"]["command"] == ["sh", "-c", "pg_isready -U shop"]  # CMD-SHELL runs through a shell
    assert (probe["periodSeconds"], probe["failureThreshold"]) == (5, 5)
    assert db["livenessProbe"]["exec"] == probe["exec"]
    assert mounts(objs["Deployment", "db"])["/var/lib/postgresql/data"]["persistentVolumeClaim"] == {
        "claimName": "dbdata"}
    assert container(objs["Deployment", "cache"])["args"] == ["redis-server", "--appendonly", "yes"]
    # The database and the cache sit on `back` only: what is on `front` alone cannot reach them.
    assert admitted_networks(objs["NetworkPolicy", "db"]) == admitted_networks(objs["NetworkPolicy", "cache"]) \
        == {"back"}
    assert admitted_networks(objs["NetworkPolicy", "web"]) == {"front", "back"}
    assert objs["Service", "db"]["spec"]["clusterIP"] == "None"  # no port published or exposed: names only


def test_reverse_proxy_in_front_of_two_services(tmp_path: Path) -> None:
    objs, warnings = dry_run(tmp_path, "proxy")
    assert warnings == ["Warning: services.api.build: image builds are not supported yet: give the service an image"]
    assert ("DaemonSet", "proxy") in objs and ("Deployment", "proxy") not in objs  # mode: global

    proxy = objs["DaemonSet", "proxy"]
    terms = proxy["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}]
    config = mounts(proxy)["/etc/nginx/conf.d/default.conf"]["configMap"]
    site = objs["ConfigMap", config["name"]]
    assert site["data"]["content"] == (EXAMPLES / "site.conf").read_text()
    assert json.loads(proxy["metadata"]["annotations"]["bosun.io/depends-on"]) == {
        "api": {"condition": "service_started", "required": True},
        "app": {"condition": "service_started", "required": True}}
    # Only the proxy publishes, on the port the file names; the others are reached inside.
    assert objs["Service", "proxy"]["spec"]["type"] == "NodePort"
    assert objs["Service", "proxy"]["spec"]["ports"][0]["nodePort"] == 8000
    assert "type" not in objs["Service", "app"]["spec"] and objs["Service", "app"]["spec"]["ports"][0]["port"] == 3000

    app = objs["Deployment", "app"]
    (spread,) = app["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert (spread["topologyKey"], spread["maxSkew"]) == ("zone", 1)
    # endpoint_mode dnsrr: a headless Service, and the network alias is one more name for the tasks.
    assert objs["Service", "api"]["spec"]["clusterIP"] == "None"
    backend = objs["Service", "backend"]["spec"]
    assert backend["clusterIP"] == "None" and backend["selector"]["bosun.io/service"] == "api"
    assert admitted_networks(objs["NetworkPolicy", "app"]) == admitted_networks(objs["NetworkPolicy", "api"]) \
        == {"inner"}
    assert admitted_networks(objs["NetworkPolicy", "proxy"]) == {"edge", "inner"}


def test_monitoring_stack(tmp_path: Path) -> None:
    objs, warnings = dry_run(tmp_path, "monitoring")
    assert warnings == [
        "Warning: services.grafana.deploy.restart_policy.condition: on-failure: a replicated service's tasks "
        "are restarted whatever their exit status (use a job mode to stop)",
        "Warning: services.grafana.deploy.restart_policy.max_attempts: not supported for a replicated service; "
        "ignored"]
    assert {name for kind, name in objs if kind == "PersistentVolumeClaim"} == {"tsdb", "grafana"}

    exporter = objs["DaemonSet", "node-exporter"]
    host = mounts(exporter)
    assert (host["/host/proc"]["hostPath"]["path"], host["/host/sys"]["hostPath"]["path"]) == ("/proc", "/sys")
    assert all(m["readOnly"] for m in container(exporter)["volumeMounts"])
    assert container(exporter)["resources"] == {"requests": {"memory": "32Mi"}}
    assert objs["Service", "node-exporter"]["spec"]["clusterIP"] == "None"  # tasks.node-exporter resolves

    prometheus = objs["Deployment", "prometheus"]
    (term,) = prometheus["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term == {"matchExpressions": [{"key": "monitoring", "operator": "In", "values": ["true"]}]}
    config = mounts(prometheus)["/etc/prometheus/prometheus.yml"]["configMap"]["name"]
    assert objs["ConfigMap", config]["data"]["content"] == (EXAMPLES / "prometheus.yml").read_text()
    assert mounts(prometheus)["/prometheus"]["persistentVolumeClaim"] == {"claimName": "tsdb"}
    assert [(p["nodePort"], p["port"]) for p in objs["Service", "prometheus"]["spec"]["ports"]] == [(9090, 9090)]
    grafana = objs["Deployment", "grafana"]
    assert {"name": "GF_SECURITY_ADMIN_PASSWORD", "value": "admin"} in container(grafana)["env"]
    assert json.loads(grafana["metadata"]["annotations"]["bosun.io/depends-on"]) == {
        "prometheus": {"condition": "service_started", "required": True}}
