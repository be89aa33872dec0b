"""Translation of compose services into Kubernetes objects, checked on a realistic file
(web + api + db + redis) and on small files for single rules; every field Bosun cannot
honour must come back as a warning naming the service and the field."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from bosun.compose.errors import ComposeError
from bosun.compose.load import load
from bosun.compose.translate import Translation, translate

FILES = Path(__file__).parent / "compose_files"
JSON = dict[str, Any]


@pytest.fixture(scope="module")
def shop() -> Translation:
    return translate(load([FILES / "webapp.yml"], shell={}), "shop", nodes=2)


def _obj(t: Translation, kind: str, name: str) -> JSON:
    for o in t.all_objects():
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    raise AssertionError(f"no {kind} {name} in {[(o['kind'], o['metadata']['name']) for o in t.all_objects()]}")


def _small(tmp_path: Path, text: str, nodes: int = 1) -> Translation:
    f = tmp_path / "compose.yml"
    f.write_text(text)
    return translate(load([f], shell={}), "st", nodes=nodes)


def _container(workload: JSON) -> JSON:
    return dict(workload["spec"]["template"]["spec"]["containers"][0])


def test_modes_become_kinds(shop: Translation) -> None:
    assert _obj(shop, "Deployment", "api")["spec"]["replicas"] == 3
    assert _obj(shop, "DaemonSet", "web")["metadata"]["annotations"]["bosun.io/mode"] == "global"


def test_services_come_in_dependency_order(shop: Translation) -> None:
    order = [s.dns for s in shop.services]
    assert order.index("db") < order.index("api") < order.index("web")
    assert order.index("redis") < order.index("api")
    api = next(s for s in shop.services if s.dns == "api")
    assert api.depends_on == {"db": "service_healthy", "redis": "service_started"}


def test_every_object_is_labelled_with_the_stack(shop: Translation) -> None:
    for o in shop.all_objects():
        assert o["metadata"]["labels"]["com.docker.stack.namespace"] == "shop", o["metadata"]["name"]
        assert o["metadata"]["namespace"] == "shop"


def test_container_fields(shop: Translation) -> None:
    api = _container(_obj(shop, "Deployment", "api"))
    assert api["image"] == "example/api:2.1"
    assert api["args"] == ["serve", "--port", "8000"]
    assert "command" not in api
    assert {"name": "DATABASE_URL", "value": "postgres://db:5432/shop"} in api["env"]
    assert api["workingDir"] == "/srv"
    assert api["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000}
    labels = _obj(shop, "Deployment", "api")["spec"]["template"]["metadata"]["labels"]
    assert labels["com.example.tier"] == "backend"
    redis = _container(_obj(shop, "Deployment", "redis"))
    assert redis["args"] == ["redis-server", "--appendonly", "yes"]  # string command split as a shell does


def test_every_service_has_a_service_named_after_it(shop: Translation) -> None:
    api = _obj(shop, "Service", "api")
    assert api["spec"]["ports"] == [{"name": "tcp-8000", "port": 8000, "targetPort": 8000, "protocol": "TCP"}]
    assert api["spec"]["selector"] == {"com.docker.stack.namespace": "shop", "bosun.io/service": "api"}
    assert _obj(shop, "Service", "db")["spec"]["clusterIP"] == "None"  # no ports: the name still resolves


def test_published_ports(shop: Translation, tmp_path: Path) -> None:
    web = _obj(shop, "Service", "web")
    assert web["spec"]["type"] == "NodePort"
    assert web["metadata"]["annotations"]["bosun.io/published-ports"] == "8080:80/tcp"
    # The number written, outside the node-port range too (Swarm's routing mesh), and no warning.
    assert [(p["port"], p["nodePort"]) for p in web["spec"]["ports"] if "nodePort" in p] == [(80, 8080)]
    assert not [w for w in shop.warnings.lines() if "services.web.ports" in w]
    ports = _container(_obj(shop, "DaemonSet", "web"))["ports"]
    assert {"containerPort": 443, "protocol": "TCP", "hostPort": 8443} in ports  # mode: host
    t = _small(tmp_path, "services:\n  app: {image: a, ports: ['30080:80']}\n")
    assert _obj(t, "Service", "app")["spec"]["ports"][0]["nodePort"] == 30080
    assert not t.warnings.lines()


def test_networks_isolate_services(shop: Translation) -> None:
    db = _obj(shop, "NetworkPolicy", "db")["spec"]
    assert db["podSelector"]["matchLabels"]["bosun.io/service"] == "db"
    peers = [p["podSelector"]["matchLabels"] for rule in db["ingress"] for p in rule.get("from", [])]
    assert peers == [{"network.bosun.io/back": "true"}]  # web (front only) cannot reach db
    web_labels = _obj(shop, "DaemonSet", "web")["spec"]["template"]["metadata"]["labels"]
    assert "network.bosun.io/back" not in web_labels
    api_labels = _obj(shop, "Deployment", "api")["spec"]["template"]["metadata"]["labels"]
    assert api_labels["network.bosun.io/back"] == api_labels["network.bosun.io/front"] == "true"
    web = _obj(shop, "NetworkPolicy", "web")["spec"]["ingress"]
    assert {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]} in web


def test_volumes(shop: Translation) -> None:
    assert _obj(shop, "PersistentVolumeClaim", "dbdata")["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert _obj(shop, "PersistentVolumeClaim", "cache")["spec"]["resources"]["requests"]["storage"] == "1Gi"
    db = _obj(shop, "Deployment", "db")["spec"]["template"]["spec"]
    by_path = {m["mountPath"]: m for m in db["containers"][0]["volumeMounts"]}
    vols = {v["name"]: v for v in db["volumes"]}
    assert vols[by_path["/var/lib/postgresql/data"]["name"]]["persistentVolumeClaim"] == {"claimName": "dbdata"}
    bind = by_path["/docker-entrypoint-initdb.d"]
    assert bind["readOnly"] is True
    assert vols[bind["name"]]["hostPath"]["path"] == str((FILES / "init").resolve())
    assert vols[by_path["/tmp"]["name"]]["emptyDir"] == {"medium": "Memory"}


def test_configs_and_secrets_are_mounted_where_compose_mounts_them(shop: Translation) -> None:
    secret = next(o for o in shop.shared if o["kind"] == "Secret")
    assert base64.b64decode(secret["data"]["content"]) == b"s3cret\n"
    assert secret["metadata"]["name"].startswith("db-password-")
    db = _obj(shop, "Deployment", "db")["spec"]["template"]["spec"]
    mount = next(m for m in db["containers"][0]["volumeMounts"] if m["mountPath"] == "/run/secrets/db_password")
    vol = next(v for v in db["volumes"] if v["name"] == mount["name"])
    assert vol["secret"]["secretName"] == secret["metadata"]["name"]
    web = _obj(shop, "DaemonSet", "web")["spec"]["template"]["spec"]
    paths = [m["mountPath"] for m in web["containers"][0]["volumeMounts"]]
    assert paths == ["/etc/nginx/conf.d/site.conf"]


def test_changed_secret_gets_a_new_name(tmp_path: Path) -> None:
    text = "services:\n  a: {image: x, secrets: [pw]}\nsecrets:\n  pw: {file: ./pw}\n"
    (tmp_path / "pw").write_text("one")
    first = _small(tmp_path, text).shared[0]["metadata"]["name"]
    (tmp_path / "pw").write_text("two")
    second = _small(tmp_path, text).shared[0]["metadata"]["name"]
    assert first != second and first.startswith("pw-") and second.startswith("pw-")


def test_healthcheck_probes(shop: Translation) -> None:
    api = _container(_obj(shop, "Deployment", "api"))
    assert api["readinessProbe"]["exec"]["command"] == [
        "sh", "-c", "wget -q -O- http://localhost:8000/health || exit 1"]  # CMD-SHELL through sh -c
    assert api["livenessProbe"]["initialDelaySeconds"] == 20
    assert api["livenessProbe"]["periodSeconds"] == 10
    assert api["livenessProbe"]["timeoutSeconds"] == 3
    assert api["livenessProbe"]["failureThreshold"] == 5
    db = _container(_obj(shop, "Deployment", "db"))
    assert db["livenessProbe"]["exec"]["command"] == ["pg_isready", "-U", "postgres"]


def test_resources_placement_and_updates(shop: Translation) -> None:
    api = _obj(shop, "Deployment", "api")
    c = _container(api)
    assert c["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"},
                              "requests": {"cpu": "250m", "memory": "128Mi"}}
    pod = api["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"},
        {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["old-box"]}]}]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "zone"
    assert api["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert api["spec"]["minReadySeconds"] == 30
    assert json.loads(api["metadata"]["annotations"]["bosun.io/update-config"])["failure_action"] == "rollback"
    web = _obj(shop, "DaemonSet", "web")
    assert web["spec"]["updateStrategy"]["rollingUpdate"] == {"maxSurge": 2, "maxUnavailable": 0}
    assert _obj(shop, "Deployment", "db")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60


def test_unhonoured_fields_are_warned_by_name(shop: Translation, tmp_path: Path) -> None:
    lines = shop.warnings.lines()
    assert any(line.startswith("services.api.deploy.restart_policy.condition: on-failure") for line in lines)
    t = _small(tmp_path, """
services:
  app:
    image: a
    shm_size: 1g
    logging: {driver: syslog}
    build: .
    deploy:
      resources:
        reservations:
          devices: [{capabilities: [gpu]}]
""")
    lines = t.warnings.lines()
    assert "services.app.shm_size: not supported by Bosun; ignored" in lines
    assert "services.app.logging: not supported by Bosun; ignored" in lines
    assert "services.app.build: image builds are not supported yet; the image is pulled" in lines
    assert "services.app.deploy.resources.reservations.devices: not supported; ignored" in lines


def test_restart_no_runs_once_as_a_job(tmp_path: Path) -> None:
    t = _small(tmp_path, "services:\n  once: {image: a, restart: 'no', deploy: {replicas: 2}}\n")
    job = _obj(t, "Job", "once")
    assert job["spec"]["completions"] == 2 and job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_job_modes(tmp_path: Path) -> None:
    t = _small(tmp_path, """
services:
  migrate: {image: a, deploy: {mode: replicated-job, replicas: 3, restart_policy: {max_attempts: 2}}}
  prune: {image: a, deploy: {mode: global-job}}
""", nodes=4)
    migrate = _obj(t, "Job", "migrate")["spec"]
    assert (migrate["completions"], migrate["parallelism"], migrate["backoffLimit"]) == (3, 3, 2)
    assert migrate["template"]["spec"]["restartPolicy"] == "OnFailure"
    prune = _obj(t, "Job", "prune")["spec"]
    assert prune["completions"] == 4
    assert prune["template"]["spec"]["affinity"]["podAntiAffinity"]


def test_entrypoint_is_command_and_aliases_are_services(tmp_path: Path) -> None:
    t = _small(tmp_path, """
services:
  app:
    image: a
    entrypoint: ["busybox", "httpd"]
    command: ["-f", "-p", "8080"]
    expose: ["8080"]
    networks:
      default:
        aliases: [www]
""")
    c = _container(_obj(t, "Deployment", "app"))
    assert (c["command"], c["args"]) == (["busybox", "httpd"], ["-f", "-p", "8080"])
    assert _obj(t, "Service", "www")["spec"]["selector"] == _obj(t, "Service", "app")["spec"]["selector"]


@pytest.mark.parametrize(("constraint", "message"), [
    ("node.labels.zone = a", "invalid constraint expression 'node.labels.zone = a'"),
    ("node.role==boss", "node.role is manager or worker"),
    ("engine.labels.x==y", "unknown attribute 'engine.labels.x'"),
])
def test_bad_constraint_is_refused(tmp_path: Path, constraint: str, message: str) -> None:
    with pytest.raises(ComposeError, match=message):
        _small(tmp_path, f"services:\n  app:\n    image: a\n    deploy:\n      placement:\n"
                         f"        constraints: ['{constraint}']\n")


def test_negative_replicas_refused(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match=r"services\.app\.deploy\.replicas must be 0 or more, not -1"):
        _small(tmp_path, "services:\n  app: {image: a, deploy: {replicas: -1}}\n")


def test_names_that_are_not_dns_labels_are_renamed_with_a_warning(tmp_path: Path) -> None:
    t = _small(tmp_path, "services:\n  my_app: {image: a}\n")
    assert _obj(t, "Deployment", "my-app")
    assert "services.my_app: the name 'my_app' is not a DNS label: its objects and DNS name are 'my-app'" \
        in t.warnings.lines()


def test_the_example_stack_translates_without_warnings() -> None:
    example = Path(__file__).parents[2] / "examples" / "stack.yml"
    t = translate(load([example], shell={}), "demo")
    assert t.warnings.lines() == []  # failure_action is the server's update monitor's to act on
    assert [s.dns for s in t.services] == ["cache", "web", "migrate"]
    assert {o["kind"] for o in t.shared} == {"ConfigMap", "Secret"}


def test_healthcheck_forms(tmp_path: Path) -> None:
    t = _small(tmp_path, """
services:
  text: {image: a, healthcheck: {test: "curl -f http://localhost/"}}
  none: {image: a, healthcheck: {test: ["NONE"]}}
  off: {image: a, healthcheck: {disable: true, test: ["CMD", "true"]}}
""")
    assert _container(_obj(t, "Deployment", "text"))["livenessProbe"]["exec"]["command"] == [
        "sh", "-c", "curl -f http://localhost/"]
    assert "livenessProbe" not in _container(_obj(t, "Deployment", "none"))
    assert "readinessProbe" not in _container(_obj(t, "Deployment", "off"))


def test_a_volume_shared_by_two_services_is_one_claim(tmp_path: Path) -> None:
    t = _small(tmp_path, "services:\n  a: {image: x, volumes: ['data:/d']}\n  b: {image: x, volumes: ['data:/e:ro']}\n"
                         "  c: {image: x, volumes: ['ext:/x']}\nvolumes:\n  data: {}\n  ext: {external: true}\n")
    claims = [o for o in t.all_objects() if o["kind"] == "PersistentVolumeClaim"]
    assert [c["metadata"]["name"] for c in claims] == ["data"]  # the external one must exist already
    b = _obj(t, "Deployment", "b")["spec"]["template"]["spec"]
    assert b["volumes"][0]["persistentVolumeClaim"] == {"claimName": "data"}
    assert b["containers"][0]["volumeMounts"][0]["readOnly"] is True
    c = _obj(t, "Deployment", "c")["spec"]["template"]["spec"]
    assert c["volumes"][0]["persistentVolumeClaim"] == {"claimName": "ext"}


def test_labels_kubernetes_refuses_become_annotations(tmp_path: Path) -> None:
    t = _small(tmp_path, """
services:
  proxy:
    image: traefik
    labels: {"com.example.note": "a value with spaces"}
    deploy:
      labels:
        traefik.enable: "true"
        traefik.http.routers.web.rule: "Host(`example.com`)"
""")
    d = _obj(t, "Deployment", "proxy")
    assert d["metadata"]["labels"]["traefik.enable"] == "true"
    assert d["metadata"]["annotations"]["traefik.http.routers.web.rule"] == "Host(`example.com`)"
    assert "traefik.http.routers.web.rule" not in d["metadata"]["labels"]
    assert d["spec"]["template"]["metadata"]["annotations"]["com.example.note"] == "a value with spaces"


def test_healthy_condition_on_a_service_without_healthcheck_is_named(tmp_path: Path) -> None:
    t = _small(tmp_path, "services:\n  db: {image: x}\n"
                         "  app: {image: y, depends_on: {db: {condition: service_healthy}}}\n")
    assert t.warnings.lines() == ["services.app.depends_on.db.condition: service_healthy, but db has no healthcheck: "
                                  "waiting for it to be running"]


@pytest.mark.parametrize("image", ["Nginx:latest", "nginx:bad tag", "busybox@sha256:123"])
def test_invalid_image_names_are_refused(tmp_path: Path, image: str) -> None:
    with pytest.raises(ComposeError, match=r"^services\.app\.image: invalid reference format: invalid"):
        _small(tmp_path, f"services:\n  app: {{image: '{image}'}}\n")


def test_privileges_capabilities_sysctls_devices_and_host_namespaces(tmp_path: Path) -> None:
    t = _small(tmp_path, """
services:
  fw:
    image: busybox
    privileged: true
    cap_add: [NET_ADMIN]
    cap_drop: [CAP_MKNOD]
    read_only: true
    sysctls: {net.ipv4.ip_unprivileged_port_start: "80"}
    devices: ["/dev/fuse", {source: /dev/sda, target: /dev/xvda, permissions: r}]
    pid: host
    ipc: host
""")
    w = _obj(t, "Deployment", "fw")
    pod = w["spec"]["template"]
    assert _container(w)["securityContext"] == {"privileged": True, "readOnlyRootFilesystem": True,
                                                "capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]}}
    assert pod["spec"]["securityContext"]["sysctls"] == [{"name": "net.ipv4.ip_unprivileged_port_start",
                                                          "value": "80"}]
    assert pod["metadata"]["annotations"]["devices.bosun.io/fw"] == "/dev/fuse,/dev/sda:/dev/xvda:r"
    assert pod["spec"]["hostPID"] is True and pod["spec"]["hostIPC"] is True
    assert not t.warnings.lines()


def test_a_bad_device_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match=r"services.app.devices: device 'fuse'"):
        _small(tmp_path, "services:\n  app:\n    image: busybox\n    devices: [fuse]\n")


def test_security_opt(tmp_path: Path) -> None:
    t = _small(tmp_path, """
services:
  app:
    image: busybox
    security_opt: ["no-new-privileges:true", "seccomp=unconfined", "apparmor=docker-default"]
""")
    assert _container(_obj(t, "Deployment", "app"))["securityContext"] == {
        "allowPrivilegeEscalation": False, "seccompProfile": {"type": "Unconfined"}}
    assert "services.app.security_opt: 'apparmor=docker-default' is not supported; ignored" in t.warnings.lines()
