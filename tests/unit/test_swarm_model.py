"""Docker's words over Kubernetes objects, rule by rule: service create flags as a compose
service, replicas and convergence per kind, pods as numbered tasks, node status and
availability, and the published ports one Service holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bosun.cli.swarm_views import replicas
from bosun.compose.errors import ComposeError
from bosun.compose.load import from_model
from bosun.compose.translate import translate
from bosun.membership import Manager
from bosun.swarm import kinds, mount_changes
from bosun.swarm.flags import ServiceFlags, mount, publish, to_model
from bosun.swarm.mount_changes import file_volume, translate_added
from bosun.swarm.nodes import NodeView, can_remove_manager
from bosun.swarm.publish import change_host_ports, change_ports, needs_recreate
from bosun.swarm.services import ServiceRef
from bosun.swarm.tasks import BadFilter, as_tasks, matches, parse_filters
from bosun.swarm.used_ports import published

JSON = dict[str, Any]


def test_flags_become_a_compose_service_that_translates() -> None:
    f = ServiceFlags(name="web", image="nginx:1.27", args=["nginx", "-g", "daemon off;"], replicas=3,
                     publish=["8080:80", "published=30443,target=443,mode=host"], env=["A=1"], labels=["team=x"],
                     constraints=["node.labels.zone==a"], placement_prefs=["spread=node.labels.rack"],
                     mounts=["type=volume,src=data,dst=/data,readonly", "type=tmpfs,dst=/tmp"],
                     update={"parallelism": 2, "order": "start-first"}, limits={"cpus": "0.5", "memory": "64M"},
                     health={"test": ["CMD-SHELL", "true"], "interval": "2s"})
    model = to_model(f)
    svc = model["services"]["web"]
    assert svc["deploy"]["replicas"] == 3 and svc["deploy"]["labels"] == ["team=x"]
    assert svc["ports"][1] == {"target": 443, "published": "30443", "protocol": "tcp", "mode": "host"}
    assert model["volumes"] == {"data": {}}
    t = translate(from_model(model, Path("/"), {}, "service create"), "default", standalone=True)
    deploy = next(o for o in t.all_objects() if o["kind"] == "Deployment")
    assert deploy["metadata"]["labels"]["team"] == "x"
    assert "com.docker.stack.namespace" not in deploy["metadata"]["labels"]  # not a stack's
    assert deploy["spec"]["selector"] == {"matchLabels": {"bosun.io/service": "web"}}
    c = deploy["spec"]["template"]["spec"]["containers"][0]
    assert c["args"] == ["nginx", "-g", "daemon off;"] and c["resources"]["limits"] == {"cpu": "500m", "memory": "64Mi"}
    assert deploy["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 2, "maxUnavailable": 0}


@pytest.mark.parametrize(("bad", "message"), [
    (lambda: mount("type=bind,src=/x"), "dst= is required"),
    (lambda: mount("type=bind,src=/x,dst=/y,colour=red"), "unknown option 'colour'"),
    (lambda: publish("published=80"), "target= is required"),
    (lambda: to_model(ServiceFlags(name="a", image="b", replicas=-1)), "invalid --replicas -1"),
    (lambda: to_model(ServiceFlags(name="a", image="b", placement_prefs=["binpack"])), "want spread="),
])
def test_bad_flags_are_named(bad: Any, message: str) -> None:
    with pytest.raises(ComposeError, match=message):
        bad()


def test_schema_checks_flags_too() -> None:
    model = to_model(ServiceFlags(name="a", image="b"))
    model["services"]["a"]["deploy"]["mode"] = 3
    with pytest.raises(ComposeError, match=r"validating service create: services\.a\.deploy\.mode must be a string"):
        from_model(model, Path("/"), {}, "service create")


def _deployment(replicas: int, ready: int, updated: int, current: int, generation: int = 1) -> JSON:
    return {"kind": "Deployment", "metadata": {"generation": generation},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": 1, "readyReplicas": ready, "updatedReplicas": updated,
                       "replicas": current}}


def test_replicated_progress_and_replicas() -> None:
    k = kinds.Replicated()
    assert k.replicas(_deployment(3, 2, 3, 3)) == "2/3"
    assert k.progress(_deployment(3, 3, 3, 3)) == (3, 3, True)
    assert k.progress(_deployment(3, 3, 3, 5)) == (3, 3, False)  # old tasks still stopping
    assert k.progress(_deployment(3, 3, 3, 3, generation=2)) == (3, 3, False)  # change not seen yet
    assert k.scale_patch({}, 5) == {"spec": {"replicas": 5}}


def test_global_and_job_kinds() -> None:
    ds = {"kind": "DaemonSet", "metadata": {"generation": 1},
          "status": {"observedGeneration": 1, "numberReady": 2, "desiredNumberScheduled": 2,
                     "updatedNumberScheduled": 2}}
    assert kinds.Global().replicas(ds) == "2/2" and kinds.Global().progress(ds)[2]
    with pytest.raises(kinds.NotScalable, match="replicated or replicated-job mode"):
        kinds.Global().scale_patch(ds, 3)
    job = {"kind": "Job", "metadata": {"annotations": {"bosun.io/mode": "global-job"}},
           "spec": {"completions": 2, "parallelism": 2}, "status": {"succeeded": 1, "active": 1}}
    assert kinds.Job().mode(job) == "global-job"
    assert kinds.Job().replicas(job) == "1/2 (1/2 completed)"
    with pytest.raises(kinds.NotScalable):
        kinds.Job().scale_patch(job, 3)
    assert kinds.kind_of(job) is kinds.KINDS[2]


def _pod(uid: str, phase: str, node: str = "n1", **status: Any) -> JSON:
    return {"metadata": {"uid": uid, "name": f"p-{uid}", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": node, "containers": [{"image": "busybox", "ports": [
                {"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}]}]},
            "status": {"phase": phase, **status}}


def test_pods_as_tasks() -> None:
    failed = _pod("0b", "Failed", containerStatuses=[{"state": {"terminated": {"exitCode": 3}}}])
    tasks = as_tasks("shop_web", [_pod("0a", "Running"), failed])
    assert [t.name for t in tasks] == ["shop_web.1", "shop_web.2"]
    assert tasks[0].current.startswith("Running ") and tasks[0].desired == "Running"
    assert tasks[1].current.startswith("Failed ") and tasks[1].error == "task: non-zero exit (3)"
    assert tasks[0].ports == "*:8080->80/tcp"
    assert tasks[0].row()[:4] == ["0a", "shop_web.1", "busybox", "n1"]


def _node(ready: str, unschedulable: bool = False, availability: str = "", manager: bool = False) -> NodeView:
    labels = {"kubernetes.io/hostname": "box"}
    if manager:
        labels["node-role.kubernetes.io/control-plane"] = ""
    meta: JSON = {"name": "box", "uid": "1234-5678", "labels": labels,
                  "annotations": {"bosun.io/availability": availability} if availability else {}}
    return NodeView({"metadata": meta, "spec": {"unschedulable": unschedulable},
                     "status": {"conditions": [{"type": "Ready", "status": ready}],
                                "nodeInfo": {"kubeletVersion": "v1.31.0-bosun"}}}, leader="box")


def test_node_status_availability_and_manager_status() -> None:
    assert _node("True").status == "Ready" and _node("False").status == "Down" and _node("Unknown").status == "Unknown"
    assert _node("True").availability == "Active"
    assert _node("True", True, "pause").availability == "Pause"
    assert _node("True", True, "drain").availability == "Drain"
    assert _node("True").manager_status == ""
    assert _node("True", manager=True).manager_status == "Leader"
    other = NodeView(_node("False", manager=True).obj, leader="elsewhere")
    assert other.manager_status == "Unreachable"
    # Given the role, Ready, but with no manager running there (no Lease, not the leader).
    assert NodeView(_node("True", manager=True).obj, leader="elsewhere").manager_status == "Unreachable"
    assert _node("True").engine == "v1.31.0-bosun" and _node("True").id == "12345678"


def test_published_ports_of_a_service() -> None:
    svc = {"metadata": {"annotations": {"bosun.io/published-ports": "8080:80/tcp,53:53/udp"}},
           "spec": {"ports": [{"nodePort": 30080, "protocol": "TCP"}, {"port": 9000}]}}
    assert published(svc) == {(30080, "tcp"), (8080, "tcp"), (53, "udp")}
    assert published({"metadata": {"annotations": {"bosun.io/published-ports": "not-a-port"}}}) == set()


def test_replicas_column_shows_a_per_node_cap() -> None:
    obj = {"kind": "Deployment", "metadata": {"annotations": {"bosun.io/max-replicas-per-node": "1"}},
           "spec": {"replicas": 3}, "status": {"readyReplicas": 2}}
    ref = ServiceRef("ns", "web", "", kinds.Replicated(), obj)
    assert replicas(ref) == "2/3 (max 1 per node)"


def test_publish_add_and_rm_change_the_service() -> None:
    svc: JSON = {"metadata": {"name": "web"}, "spec": {"ports": [
        {"name": "tcp-80", "port": 80, "targetPort": 80, "protocol": "TCP"}]}}
    change_ports(svc, ["30080:80", "8443:443"], [])
    assert svc["spec"]["type"] == "NodePort"
    assert [(p["port"], p.get("nodePort")) for p in svc["spec"]["ports"]] == [(80, 30080), (443, 8443)]
    assert svc["metadata"]["annotations"]["bosun.io/published-ports"] == "30080:80/tcp,8443:443/tcp"
    change_ports(svc, [], ["8443"])
    assert [p["port"] for p in svc["spec"]["ports"]] == [80]
    assert svc["metadata"]["annotations"]["bosun.io/published-ports"] == "30080:80/tcp"
    before = {"spec": dict(svc["spec"], clusterIP="10.96.0.9")}
    svc["spec"]["clusterIP"] = "10.96.0.9"
    change_ports(svc, [], ["30080"])
    assert svc["spec"] == {"clusterIP": "None"}  # no port left: headless, so the name still resolves
    assert needs_recreate(before, svc)


def test_publish_add_in_host_mode_is_the_tasks_own_port() -> None:
    svc: JSON = {"metadata": {"name": "web"}, "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.9", "ports": [
        {"name": "tcp-80", "port": 80, "targetPort": 80, "protocol": "TCP"}]}}
    container: JSON = {"ports": [{"containerPort": 80, "protocol": "TCP"}]}
    add = ["published=8081,target=80,mode=host"]
    change_ports(svc, add, [])
    change_host_ports(container, add, [])
    assert svc["spec"]["type"] == "ClusterIP" and "nodePort" not in svc["spec"]["ports"][0]  # not in the mesh
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP", "hostPort": 8081}]
    change_host_ports(container, [], ["8081"])
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]


def test_task_filters() -> None:
    tasks = as_tasks("web", [_pod("0a", "Running", node="n1"), _pod("0b", "Running", node="n2")])
    assert [t.name for t in tasks if matches(t, parse_filters(["node=n2"]))] == ["web.2"]
    assert [t.name for t in tasks if matches(t, parse_filters(["node=n1", "node=n2", "name=web.1"]))] == ["web.1"]
    assert all(matches(t, parse_filters(["desired-state=running"])) for t in tasks)
    assert not any(matches(t, parse_filters(["desired-state=shutdown"])) for t in tasks)
    assert [t.name for t in tasks if matches(t, parse_filters(["id=0b"]))] == ["web.2"]
    with pytest.raises(BadFilter, match="invalid filter 'colour=red'"):
        parse_filters(["colour=red"])
    with pytest.raises(BadFilter, match="invalid desired-state filter 'sleeping'"):
        parse_filters(["desired-state=sleeping"])


def test_max_concurrent_limits_a_replicated_jobs_parallelism() -> None:
    model = to_model(ServiceFlags(name="batch", image="b", mode="replicated-job", replicas=6, max_concurrent=2))
    t = translate(from_model(model, Path("/"), {}, "service create"), "default", standalone=True)
    job = next(o for o in t.all_objects() if o["kind"] == "Job")
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (6, 2)
    with pytest.raises(ComposeError, match="--max-concurrent can only be used with replicated-job mode"):
        to_model(ServiceFlags(name="a", image="b", max_concurrent=2))


def _manager(name: str, alive: bool) -> NodeView:
    obj = {"metadata": {"name": name, "uid": name, "labels": {"node-role.kubernetes.io/control-plane": ""}},
           "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    return NodeView(obj, leader="m1", lease=Manager(name, f"https://{name}", name, alive))


def test_demotion_keeps_a_quorum_of_reachable_managers_as_swarmkit_does() -> None:
    up = [_manager(n, True) for n in ("m1", "m2", "m3")]
    assert all(can_remove_manager(up, m) for m in up)
    one_down = [*up[:2], _manager("m3", False)]
    assert not can_remove_manager(one_down, one_down[0])  # m2 alone of m2, m3: no majority
    assert can_remove_manager(one_down, one_down[2])  # the unreachable one may go
    two = [_manager("m1", True), _manager("m2", True)]
    assert can_remove_manager(two, two[1])  # as Docker: 2 -> 1 keeps the quorum of one
    assert not can_remove_manager([two[0], _manager("m2", False)], two[0])


def test_update_grafts_what_create_would_mount_and_removes_by_target_or_name() -> None:
    pod: JSON = {"containers": [{"name": "web"}]}
    c = pod["containers"][0]
    added = translate_added("web", "default", ["type=tmpfs,dst=/t", "type=volume,src=data,dst=/data"], ["db_pw"],
                            ["source=site,target=/etc/site"])
    mount_changes.add(pod, c, added)
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/t", "/data", "/run/secrets/db_pw", "/etc/site"}
    assert [o["metadata"]["name"] for o in added.claims] == ["data"]
    secret = next(v for v in pod["volumes"] if "secret" in v)
    assert secret["secret"]["secretName"] == "db-pw" and secret["secret"]["defaultMode"] == 0o444
    mount_changes.remove(pod, c, {"/t"}, {file_volume("secret", "db_pw")})
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/data", "/etc/site"}
    assert {v["name"] for v in pod["volumes"]} == {m["name"] for m in c["volumeMounts"]}
    # A mount added at a path already mounted replaces it; the volume no longer mounted goes.
    mount_changes.add(pod, c, translate_added("web", "default", ["type=tmpfs,dst=/data"], [], []))
    assert next(m for m in c["volumeMounts"] if m["mountPath"] == "/data")["name"].startswith("tmpfs")
    assert not any("persistentVolumeClaim" in v for v in pod["volumes"])
    mount_changes.remove(pod, c, {"/data"}, {file_volume("config", "site")})
    assert "volumes" not in pod and "volumeMounts" not in c
    with pytest.raises(ComposeError, match="dst= is required"):
        translate_added("web", "default", ["type=tmpfs"], [], [])
