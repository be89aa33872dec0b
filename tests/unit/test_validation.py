"""Validation answers as Kubernetes does: same field paths, same messages, never a crash."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
from tests.unit.helpers import json_paths, must_by_kind

from bosun.api.defaults import apply_defaults
from bosun.api.errors import invalid_object
from bosun.api.registry import RESOURCES, Resource
from bosun.api.validation import validate, validate_unchecked, validate_update

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
QUANTITY_MSG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"



def errors(obj: dict[str, Any], *, defaults: bool = True) -> list[str]:
    """What the API server would report for ``obj``: defaults first, then validation."""
    r = must_by_kind(obj["apiVersion"], obj["kind"])
    obj = copy.deepcopy(obj)
    if defaults:
        apply_defaults(r, obj)
    return [e.detail() for e in validate_unchecked(r, obj)]


def pod(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"containers": [{"name": "app", "image": "nginx:1.27"}]}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": base}


def deployment(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
    }
    base.update(spec)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": base}


def service(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": base}


def _annotated(obj: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    obj["metadata"]["annotations"] = annotations
    return obj


# --- names and metadata -------------------------------------------------------------------------

def test_valid_objects_have_no_errors() -> None:
    assert errors(pod()) == []
    assert errors(deployment()) == []
    assert errors(service()) == []


def test_name_must_be_dns_subdomain() -> None:
    obj = deployment()
    obj["metadata"]["name"] = "Foo_bar"
    assert errors(obj) == [f'metadata.name: Invalid value: "Foo_bar": {SUBDOMAIN_MSG}']


def test_namespace_name_is_a_dns_label() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}}
    assert errors(ns) == [f'metadata.name: Invalid value: "a.b": {LABEL_MSG}']


def test_service_name_is_a_dns1035_label() -> None:
    obj = service()
    obj["metadata"]["name"] = "1web"
    (msg,) = errors(obj)
    assert msg.startswith('metadata.name: Invalid value: "1web": a DNS-1035 label must consist of lower case')


def test_generate_name_stands_in_for_name() -> None:
    obj = pod()
    del obj["metadata"]["name"]
    assert errors(obj) == ["metadata.name: Required value: name or generateName is required"]
    obj["metadata"]["generateName"] = "web-"
    assert errors(obj) == []
    obj["metadata"]["generateName"] = "Web_"
    assert errors(obj)[0].startswith('metadata.generateName: Invalid value: "Web_": a lowercase RFC 1123')


def test_name_too_long() -> None:
    obj = pod()
    obj["metadata"]["name"] = "a" * 254
    assert f'metadata.name: Invalid value: "{"a" * 254}": must be no more than 253 characters' in errors(obj)


def test_labels_and_annotations() -> None:
    obj = pod()
    obj["metadata"]["labels"] = {"bad key": "ok", "app": "-bad-", "example.com/x": "v", "a/b/c": "v"}
    out = errors(obj)
    assert any(m.startswith('metadata.labels: Invalid value: "bad key": name part must consist of') for m in out)
    assert any(m.startswith('metadata.labels[app]: Invalid value: "-bad-": a valid label must be an empty')
               for m in out)
    assert any(m.startswith('metadata.labels: Invalid value: "a/b/c": a qualified name must consist')
               for m in out)
    assert not any("example.com/x" in m for m in out)
    obj = pod()
    obj["metadata"]["annotations"] = {"big": "x" * (256 * 1024)}
    assert errors(obj) == ["metadata.annotations: Too long: must have at most 262144 bytes"]


# --- pods ---------------------------------------------------------------------------------------

def test_pod_needs_containers_with_images() -> None:
    assert errors(pod(containers=[])) == ["spec.containers: Required value"]
    assert errors(pod(containers=[{"name": "app"}])) == ["spec.containers[0].image: Required value"]
    out = errors(pod(containers=[{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]))
    assert out[0].startswith('spec.containers[1].name: Duplicate value: "a"')
    out = errors(pod(containers=[{"name": "A_b", "image": "x"}]))
    assert out == [f'spec.containers[0].name: Invalid value: "A_b": {LABEL_MSG}']


def test_pod_ports() -> None:
    out = errors(pod(containers=[{"name": "a", "image": "x", "ports": [{"containerPort": 70000}]}]))
    assert out == ["spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and "
                   "65535, inclusive"]
    out = errors(pod(containers=[{"name": "a", "image": "x", "ports": [{"containerPort": 80,
                                                                         "protocol": "HTTP"}]}]))
    assert out == ['spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: '
                   '"SCTP", "TCP", "UDP"']


def test_pod_resources() -> None:
    ctr = {"name": "a", "image": "x", "resources": {"limits": {"memory": "12xb"}}}
    assert errors(pod(containers=[ctr])) == [
        f'spec.containers[0].resources.limits[memory]: Invalid value: "12xb": {QUANTITY_MSG}']
    ctr = {"name": "a", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                                                    "requests": {"cpu": "1500m", "memory": "2Gi"}}}
    assert errors(pod(containers=[ctr])) == [
        'spec.containers[0].resources.requests[cpu]: Invalid value: "1500m": must be less than or equal to '
        "cpu limit of 1",
        'spec.containers[0].resources.requests[memory]: Invalid value: "2Gi": must be less than or equal to '
        "memory limit of 1Gi",
    ]
    ctr = {"name": "a", "image": "x", "resources": {"requests": {"cpu": "-1"}}}
    assert errors(pod(containers=[ctr])) == [
        'spec.containers[0].resources.requests[cpu]: Invalid value: "-1": must be greater than or equal to 0']


def test_pod_volumes_and_mounts() -> None:
    ctr = {"name": "a", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    (err,) = validate_unchecked(must_by_kind("v1", "Pod"), pod(containers=[ctr]))
    assert (err.type, err.field, err.value) == ("FieldValueNotFound", "spec.containers[0].volumeMounts[0].name",
                                                "data")
    assert errors(pod(containers=[ctr], volumes=[{"name": "data", "emptyDir": {}}])) == []
    out = errors(pod(volumes=[{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]))
    assert out == ["spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type"]
    out = errors(pod(volumes=[{"name": "v", "persistentVolumeClaim": {}}]))
    assert out == ["spec.volumes[0].persistentVolumeClaim.claimName: Required value"]


def test_pod_policies() -> None:
    assert errors(pod(restartPolicy="Sometimes")) == [
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"']
    assert errors(pod(dnsPolicy="Cluster")) == [
        'spec.dnsPolicy: Unsupported value: "Cluster": supported values: "ClusterFirstWithHostNet", '
        '"ClusterFirst", "Default", "None"']
    assert errors(pod(dnsPolicy="None")) == [
        "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]


def test_pod_probes() -> None:
    ctr = {"name": "a", "image": "x", "livenessProbe": {"periodSeconds": 5}}
    assert errors(pod(containers=[ctr])) == [
        "spec.containers[0].livenessProbe: Required value: must specify a handler type"]
    ctr = {"name": "a", "image": "x", "livenessProbe": {"httpGet": {"port": 80}, "tcpSocket": {"port": 80},
                                                        "successThreshold": 2}}
    assert errors(pod(containers=[ctr])) == [
        "spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"]
    ctr = {"name": "a", "image": "x", "readinessProbe": {"httpGet": {"port": 0}, "failureThreshold": -1}}
    assert errors(pod(containers=[ctr])) == [
        "spec.containers[0].readinessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, "
        "inclusive",
        "spec.containers[0].readinessProbe.failureThreshold: Invalid value: -1: must be greater than or "
        "equal to 0"]


def test_pod_tolerations_node_selector_affinity() -> None:
    out = errors(pod(tolerations=[{"key": "k", "operator": "Exists", "value": "v"},
                                  {"key": "k", "operator": "Maybe"},
                                  {"key": "k", "effect": "NoWay"},
                                  {"operator": "Equal", "value": "v"},
                                  {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]))
    assert out == [
        "spec.tolerations[0].operator: Invalid value: \"Exists\": value must be empty when `operator` is "
        "'Exists'",
        'spec.tolerations[1].operator: Unsupported value: "Maybe": supported values: "Equal", "Exists"',
        'spec.tolerations[2].effect: Unsupported value: "NoWay": supported values: "NoSchedule", '
        '"PreferNoSchedule", "NoExecute"',
        'spec.tolerations[3].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, '
        'which means "match all values and all keys"',
        "spec.tolerations[4].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when "
        "`tolerationSeconds` is set",
    ]
    out = errors(pod(nodeSelector={"disk": "s s d"}))
    assert out[0].startswith('spec.nodeSelector[disk]: Invalid value: "s s d": a valid label must be')
    req = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    out = errors(pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": []}}}))
    assert out == [f"{req}.nodeSelectorTerms: Required value: must have at least one node selector term"]
    out = errors(pod(affinity={"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 0, "podAffinityTerm": {"labelSelector": {"matchLabels": {"a": "b"}}}}]}}))
    pref = "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
    assert out == [f"{pref}.weight: Invalid value: 0: must be in the range 1-100",
                   f"{pref}.podAffinityTerm.topologyKey: Required value: can not be empty"]


def test_pod_security_context() -> None:
    out = errors(pod(securityContext={"runAsUser": -1}))
    assert out == ["spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, "
                   "inclusive"]
    ctr = {"name": "a", "image": "x", "securityContext": {"privileged": True, "allowPrivilegeEscalation": False}}
    assert errors(pod(containers=[ctr])) == [
        'spec.containers[0].securityContext: Invalid value: "": cannot set `allowPrivilegeEscalation` to '
        "false and `privileged` to true"]


def test_seccomp_proc_mount_and_sysctls() -> None:
    sc = "spec.securityContext"
    assert errors(pod(securityContext={"seccompProfile": {"type": "RuntimeDefault"}, "sysctls": [
        {"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"}, {"name": "net/ipv4/tcp_syncookies",
                                                                         "value": "1"}]})) == []
    assert errors(pod(securityContext={"seccompProfile": {"type": "Strict"}})) == [
        f'{sc}.seccompProfile.type: Unsupported value: "Strict": supported values: "Localhost", "RuntimeDefault", '
        '"Unconfined"']
    assert errors(pod(securityContext={"seccompProfile": {"type": "Localhost"}})) == [
        f"{sc}.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost"]
    assert errors(pod(securityContext={"seccompProfile": {"type": "Localhost", "localhostProfile": "../x"}})) == [
        f'{sc}.seccompProfile.localhostProfile: Invalid value: "../x": must not contain \'..\'']
    assert errors(pod(securityContext={"sysctls": [{"name": "Kernel.X", "value": "1"},
                                                   {"name": "kernel.msgmax", "value": "1"},
                                                   {"name": "kernel.msgmax", "value": "2"}]}))[1:] == [
        f'{sc}.sysctls[2].name: Duplicate value: "kernel.msgmax"']
    ctr = {"name": "a", "image": "x", "securityContext": {"procMount": "Open"}}
    assert errors(pod(containers=[ctr])) == [
        'spec.containers[0].securityContext.procMount: Unsupported value: "Open": supported values: "Default", '
        '"Unmasked"']


def test_device_annotations() -> None:
    p = pod()
    p["metadata"]["annotations"] = {"devices.bosun.io/app": "/dev/fuse,/dev/sda:/dev/xvda:r"}
    assert errors(p) == []
    p["metadata"]["annotations"] = {"devices.bosun.io/app": "/dev/fuse:rx", "devices.bosun.io/web": "/dev/fuse"}
    assert errors(p) == [
        'metadata.annotations[devices.bosun.io/app]: Invalid value: "/dev/fuse:rx": device \'/dev/fuse:rx\': '
        "permissions 'rx' must be made of r, w and m",
        'metadata.annotations[devices.bosun.io/web]: Invalid value: "/dev/fuse": names no container of the pod '
        "('web')"]
    d = deployment()
    d["spec"]["template"]["metadata"]["annotations"] = {"devices.bosun.io/web": "dev/fuse"}
    assert errors(d) == [
        'spec.template.metadata.annotations[devices.bosun.io/web]: Invalid value: "dev/fuse": device '
        "'dev/fuse': expected HOST[:CONTAINER][:PERMISSIONS] with absolute paths"]


# --- workloads ----------------------------------------------------------------------------------

def test_deployment_rules() -> None:
    assert errors(deployment(replicas=-3)) == [
        "spec.replicas: Invalid value: -3: must be greater than or equal to 0"]
    obj = deployment()
    del obj["spec"]["selector"]
    assert errors(obj) == ["spec.selector: Required value"]
    obj = deployment(selector={"matchLabels": {"app": "other"}})
    assert errors(obj) == ['spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
                           "`selector` does not match template `labels`"]
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"] = []
    assert errors(obj) == ["spec.template.spec.containers: Required value"]
    obj = deployment()
    del obj["spec"]["template"]["spec"]["containers"][0]["image"]
    assert errors(obj) == ["spec.template.spec.containers[0].image: Required value"]
    obj = deployment()
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert errors(obj) == ['spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: '
                           '"Always"']
    assert errors(deployment(revisionHistoryLimit=-1, minReadySeconds=-2)) == [
        "spec.minReadySeconds: Invalid value: -2: must be greater than or equal to 0",
        "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0"]


def test_deployment_strategy() -> None:
    ru = "spec.strategy.rollingUpdate"
    assert errors(deployment(strategy={"type": "Sideways"})) == [
        'spec.strategy.type: Unsupported value: "Sideways": supported values: "Recreate", "RollingUpdate"']
    assert errors(deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": 0, "maxUnavailable": 0}})) == [
        f"{ru}.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"]
    assert errors(deployment(strategy={"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": "0%"}})) == [
        f'{ru}.maxUnavailable: Invalid value: "0%": may not be 0 when `maxSurge` is 0']
    out = errors(deployment(strategy={"rollingUpdate": {"maxSurge": "abc", "maxUnavailable": "110%"}}))
    assert out == [
        f'{ru}.maxUnavailable: Invalid value: "110%": must not be greater than 100%',
        f"{ru}.maxSurge: Invalid value: \"abc\": a valid percent string must be a numeric string followed by "
        "an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"]
    assert errors(deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})) == [
        f"{ru}: Forbidden: may not be specified when strategy `type` is 'Recreate'"]
    assert errors(deployment(strategy={"type": "Recreate"})) == []


def test_other_workloads() -> None:
    base = deployment()
    rs = {**base, "kind": "ReplicaSet"}
    assert errors(rs) == []
    sts = {**base, "kind": "StatefulSet", "spec": {**base["spec"], "serviceName": "web",
                                                    "podManagementPolicy": "Random"}}
    assert errors(sts) == ["spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or "
                           "'Parallel'"]
    sts["spec"]["podManagementPolicy"] = "Parallel"
    sts["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {"accessModes": []}}]
    assert errors(sts) == [
        "spec.volumeClaimTemplates[0].spec.accessModes: Required value: at least 1 access mode is required",
        "spec.volumeClaimTemplates[0].spec.resources[storage]: Required value"]
    ds = {**base, "kind": "DaemonSet", "spec": {**base["spec"], "updateStrategy": {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}}}
    assert errors(ds) == ["spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 "
                          "when `maxSurge` is 0"]


def job(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"template": {"spec": {"restartPolicy": "Never",
                                                  "containers": [{"name": "pi", "image": "perl"}]}}}
    base.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "uid": "1234"}, "spec": base}


def test_job_rules() -> None:
    assert errors(job()) == []
    assert errors(job(completions=-1, parallelism=-2, backoffLimit=-3)) == [
        "spec.parallelism: Invalid value: -2: must be greater than or equal to 0",
        "spec.completions: Invalid value: -1: must be greater than or equal to 0",
        "spec.backoffLimit: Invalid value: -3: must be greater than or equal to 0"]
    assert errors(job(completionMode="Sometimes")) == [
        'spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"']
    obj = job()
    del obj["spec"]["template"]["spec"]["restartPolicy"]
    assert errors(obj) == ['spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: '
                           '"OnFailure", "Never"']


def cronjob(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": job()["spec"]}}
    base.update(spec)
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"}, "spec": base}


@pytest.mark.parametrize("schedule", ["@hourly", "@daily", "@every 1h30m", "0 0 * * MON", "*/5 * * * *"])
def test_cronjob_accepts_schedules(schedule: str) -> None:
    assert errors(cronjob(schedule=schedule)) == []


def test_cronjob_rules() -> None:
    assert errors(cronjob(schedule="* * *")) == [
        'spec.schedule: Invalid value: "* * *": Expected exactly 5 fields, found 3: * * *']
    assert errors(cronjob(schedule="61 * * * *"))[0].startswith('spec.schedule: Invalid value: "61 * * * *"')
    assert errors(cronjob(schedule="TZ=UTC 0 * * * *")) == [
        'spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use '
        "timeZone field instead"]
    assert errors(cronjob(timeZone="Mars/Olympus")) == [
        'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus']
    assert errors(cronjob(timeZone="Europe/Paris")) == []
    assert errors(cronjob(concurrencyPolicy="Sometimes")) == [
        'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", '
        '"Replace"']
    assert errors(cronjob(schedule="")) == ["spec.schedule: Required value"]


# --- services -----------------------------------------------------------------------------------

def test_service_rules() -> None:
    # targetPort defaults to port, so Kubernetes reports both.
    assert errors(service(ports=[{"port": 70000}])) == [
        "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]
    assert errors(service(type="Magic")) == [
        'spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", '
        '"LoadBalancer", "NodePort"']
    assert errors(service(ports=[])) == ["spec.ports: Required value"]
    assert errors(service(ports=[], clusterIP="None")) == []
    assert errors(service(type="NodePort", ports=[{"port": 80, "nodePort": 80}])) == [
        "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of "
        "valid ports is 30000-32767"]
    assert errors(service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])) == []
    # A published port keeps its number outside the range when the annotation lists it.
    published = {"bosun.io/published-ports": "8080:80/tcp"}
    assert errors(_annotated(service(type="NodePort", ports=[{"port": 80, "nodePort": 8080}]), published)) == []
    assert errors(_annotated(service(type="NodePort", ports=[{"port": 80, "nodePort": 8081}]), published)) == [
        "spec.ports[0].nodePort: Invalid value: 8081: provided port is not in the valid range. The range of "
        "valid ports is 30000-32767"]
    assert errors(_annotated(service(type="NodePort", ports=[{"port": 80, "nodePort": 8080, "protocol": "UDP"}]),
                             published))[0].startswith("spec.ports[0].nodePort: Invalid value: 8080")
    assert errors(_annotated(service(type="NodePort", ports=[{"port": 80, "nodePort": 8080}]),
                             {"bosun.io/published-ports": "8080"})) == [
        "metadata.annotations[bosun.io/published-ports]: Invalid value: \"8080\": '8080' is not "
        "published:target/protocol (e.g. 8080:80/tcp)",
        "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of "
        "valid ports is 30000-32767"]
    assert errors(service(ports=[{"port": 80, "nodePort": 30080}])) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
    assert errors(service(ports=[{"port": 80, "protocol": "HTTP"}])) == [
        'spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"']
    assert errors(service(ports=[{"port": 80}, {"port": 81}])) == [
        "spec.ports[0].name: Required value", "spec.ports[1].name: Required value"]
    assert errors(service(type="NodePort", clusterIP="None")) == [
        "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for LoadBalancer services or "
        "NodePorts"]
    assert errors(service(type="ExternalName", externalName="example.com", ports=[])) == []
    assert errors(service(type="ExternalName", ports=[])) == ["spec.externalName: Required value"]
    assert errors(service(selector={"app": "bad value"}))[0].startswith(
        'spec.selector[app]: Invalid value: "bad value"')


# --- config and other core kinds ----------------------------------------------------------------

def test_configmap_and_secret_keys_and_size() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"ok.key": "v",
                                                                                      "bad key": "v"}}
    assert errors(cm) == [
        "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric "
        "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
        "validation is '[-._a-zA-Z0-9]+')"]
    cm["data"] = {"big": "x" * (1024 * 1024 + 1)}
    assert errors(cm) == ["data: Too long: must have at most 1048576 bytes"]
    sec = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/tls",
           "data": {"tls.crt": "Zm9v"}}
    assert errors(sec) == ["data[tls.key]: Required value"]
    sec = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "not base64!"}}
    assert errors(sec) == ['data[k]: Invalid value: "<secret contents redacted>": illegal base64 data']


def test_pvc_pv_node_event_endpoints() -> None:
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "d"},
           "spec": {"accessModes": ["ReadWriteSometimes"], "resources": {"requests": {}}}}
    assert errors(pvc) == [
        'spec.accessModes: Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", '
        '"ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"',
        "spec.resources[storage]: Required value"]
    pvc["spec"] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    assert errors(pvc) == []
    pv: dict[str, Any] = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "v"},
          "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}}
    assert errors(pv) == ["spec: Required value: must specify a volume type"]
    pv["spec"]["hostPath"] = {"path": "/data"}
    assert errors(pv) == []
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}}
    assert errors(node) == ['spec.taints[0].effect: Unsupported value: "Sometimes": supported values: '
                            '"NoSchedule", "PreferNoSchedule", "NoExecute"']
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "a"},
          "involvedObject": {"kind": "Pod", "name": "p", "namespace": "b"}}
    assert errors(ev) == ['involvedObject.namespace: Invalid value: "b": does not match event.namespace']
    ep = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e"},
          "subsets": [{"addresses": [{"ip": "10.0.0.300"}], "ports": [{"port": 0}]}]}
    assert errors(ep) == [
        'subsets[0].addresses[0].ip: Invalid value: "10.0.0.300": must be a valid IP address, (e.g. '
        "10.9.8.7 or 2001:db8::ffff)",
        "subsets[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"]


def test_ingress_hpa_lease() -> None:
    ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"},
           "spec": {"rules": [{"host": "example.com", "http": {"paths": [
               {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web",
                                                                           "port": {"number": 80}}}},
               {"path": "api", "backend": {"service": {"name": "web", "port": {}}}}]}}]}}
    p = "spec.rules[0].http.paths[1]"
    assert errors(ing) == [f"{p}.pathType: Required value: pathType must be specified",
                           f'{p}.path: Invalid value: "api": must be an absolute path',
                           f"{p}.backend.service.port.name: Required value: port name or number is required"]
    hpa: dict[str, Any] = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 0,
                    "maxReplicas": 5}}
    assert errors(hpa) == ["spec.minReplicas: Invalid value: 0: must be greater than or equal to 1"]
    hpa["spec"].update(minReplicas=6)
    assert errors(hpa) == ["spec.maxReplicas: Invalid value: 5: must be greater than or equal to `minReplicas`"]
    hpa["spec"].update(minReplicas=1, metrics=[{"type": "Resource"}])
    assert errors(hpa) == [
        "spec.metrics[0].resource: Required value: must populate information for the given metric source"]
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
             "spec": {"holderIdentity": "a", "leaseDurationSeconds": 0}}
    assert errors(lease) == ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]


# --- wrong types and garbage --------------------------------------------------------------------

def test_wrong_json_types_are_field_errors() -> None:
    out = errors(deployment(replicas="three"))
    assert out == ['spec.replicas: Invalid value: "three": must be of type integer']
    (err,) = validate_unchecked(must_by_kind("apps/v1", "Deployment"), deployment(replicas="three"))
    assert err.type == "FieldValueTypeInvalid"
    assert errors(pod(containers={"name": "a"}))[0].startswith("spec.containers: Invalid value:")
    assert errors(service(ports="80"))[0].startswith('spec.ports: Invalid value: "80": must be of type array')


GARBAGE: list[Any] = [None, [], {}, "x", 3, -1, True, 1.5, [None], [[]], [{}], {"a": None}, {"": []}]


def _replace(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    value = copy.deepcopy(value)  # defaults mutate in place; keep GARBAGE pristine
    if not path:
        return value
    obj = copy.deepcopy(obj)
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return obj


RICH_SAMPLES = [
    pod(initContainers=[{"name": "init", "image": "busybox", "command": ["true"]}],
        containers=[{"name": "app", "image": "nginx", "ports": [{"containerPort": 80, "name": "http"}],
                     "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                     "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "500m"}},
                     "livenessProbe": {"httpGet": {"port": "http", "path": "/"}},
                     "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                     "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}],
        volumes=[{"name": "v", "configMap": {"name": "c"}}], tolerations=[{"key": "k", "operator": "Exists"}],
        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]}]}}},
        nodeSelector={"a": "b"}),
    deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "10%"}},
               selector={"matchLabels": {"app": "web"}, "matchExpressions": [
                   {"key": "app", "operator": "In", "values": ["web"]}]}),
    service(type="NodePort", ports=[{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30001}]),
    cronjob(),
    {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"},
     "spec": {"tls": [{"hosts": ["a.com"]}], "rules": [{"host": "a.com", "http": {"paths": [
         {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "w", "port": {"number": 80}}}}]}}]}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "n"},
     "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{
         "from": [{"podSelector": {"matchExpressions": [{"key": "role", "operator": "In", "values": ["api"]}]}},
                  {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
         "ports": [{"port": 5432, "endPort": 5433}, {"port": "metrics", "protocol": "UDP"}]}],
              "egress": [{"to": [{"namespaceSelector": {}}]}]}},
    {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
     "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "w"}, "maxReplicas": 3, "metrics": [
         {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                     "averageUtilization": 50}}}],
              "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 10}]}}}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"a": "b"}},
     "stringData": {"k": "v"}, "data": {"x": "eA=="}},
    {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e"},
     "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]},
]


@pytest.mark.parametrize("sample", RICH_SAMPLES, ids=lambda s: s["kind"])
def test_garbage_anywhere_never_crashes(sample: dict[str, Any]) -> None:
    r = must_by_kind(sample["apiVersion"], sample["kind"])
    pristine = copy.deepcopy(sample)
    apply_defaults(r, pristine)
    assert validate_unchecked(r, pristine) == [], "sample must be valid before it is broken"
    for path, junk in itertools.product(json_paths(sample), GARBAGE):
        broken = _replace(sample, path, junk)
        apply_defaults(r, broken) if isinstance(broken, dict) else None
        validate_unchecked(r, broken)  # must not raise
        validate_update(r, broken, pristine)
        validate_update(r, pristine, broken)


@pytest.mark.parametrize("r", RESOURCES, ids=lambda r: r.kind)
@pytest.mark.parametrize("junk", GARBAGE)
def test_every_kind_survives_garbage(r: Resource, junk: Any) -> None:
    for obj in (junk, {"metadata": junk}, {"metadata": {"name": "x"}, "spec": junk},
                {"metadata": {"name": "x"}, "spec": {"template": junk, "selector": junk, "ports": junk,
                                                     "containers": junk}}):
        if isinstance(obj, dict):
            apply_defaults(r, obj)
        errs = validate_unchecked(r, obj)  # no safety net: a crash fails the test
        assert errs == validate(r, obj)
        validate_update(r, obj, obj)


def test_errors_render_as_kubectl_prints_them() -> None:
    r = must_by_kind("apps/v1", "Deployment")
    errs = validate(r, deployment(replicas=-3))
    err = invalid_object("Deployment", "web", errs, "apps")
    assert err.message == ('Deployment "web" is invalid: spec.replicas: Invalid value: -3: must be greater '
                           "than or equal to 0")


# --- updates ------------------------------------------------------------------------------------

def _defaulted(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    apply_defaults(must_by_kind(obj["apiVersion"], obj["kind"]), obj)
    return obj


def updates(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    r = must_by_kind(new["apiVersion"], new["kind"])
    return [e.detail() for e in validate_update(r, _defaulted(new), _defaulted(old))]


def test_workload_selector_is_immutable() -> None:
    old = deployment()
    new = deployment(selector={"matchLabels": {"app": "web", "tier": "x"}})
    assert updates(new, old) == [
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", '
        '"tier":"x"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable']
    assert updates(deployment(replicas=5), old) == []
    for kind in ("ReplicaSet", "DaemonSet", "StatefulSet"):
        assert len(updates({**new, "kind": kind}, {**old, "kind": kind})) == 1


def test_statefulset_spec_mostly_immutable() -> None:
    old = {**deployment(serviceName="a"), "kind": "StatefulSet"}
    assert updates({**deployment(serviceName="a", replicas=3), "kind": "StatefulSet"}, old) == []
    assert updates({**deployment(serviceName="b"), "kind": "StatefulSet"}, old) == [
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
        "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
        "forbidden"]


def test_job_template_and_selector_immutable() -> None:
    old = job()
    new = job()
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:2"
    assert updates(new, old) == ['spec.template: Invalid value: "": field is immutable']
    assert updates(job(parallelism=3), old) == []


def test_pod_updates() -> None:
    old = pod()
    new = pod(containers=[{"name": "app", "image": "nginx:1.28"}], activeDeadlineSeconds=30)
    assert updates(new, old) == []
    new = pod(tolerations=[{"key": "k", "operator": "Exists"}])
    assert updates(new, old) == []
    (msg,) = updates(pod(restartPolicy="Never"), old)
    assert msg.startswith("spec: Forbidden: pod updates may not change fields other than "
                          "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                          "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                          "tolerations)")
    assert updates(pod(), pod(tolerations=[{"key": "k", "operator": "Exists"}])) == [
        "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]


def test_service_cluster_ip_immutable() -> None:
    old = service(clusterIP="10.96.0.10")
    assert updates(service(clusterIP="10.96.0.11"), old) == [
        'spec.clusterIPs[0]: Invalid value: []string{"10.96.0.11"}: may not change once set']
    assert updates(service(clusterIP="None"), old) == [
        'spec.clusterIPs[0]: Invalid value: []string{"None"}: may not change once set']
    assert updates(service(clusterIP="10.96.0.10", ports=[{"port": 81}]), old) == []
    assert updates(service(clusterIP="10.96.0.11"), service()) == []


def test_pvc_spec_immutable_except_resources() -> None:
    def pvc(size: str, mode: str = "ReadWriteOnce") -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "d"},
                "spec": {"accessModes": [mode], "resources": {"requests": {"storage": size}}}}
    assert updates(pvc("2Gi"), pvc("1Gi")) == []
    assert updates(pvc("1Gi", "ReadWriteMany"), pvc("1Gi")) == [
        "spec: Forbidden: spec is immutable after creation except resources.requests and "
        "volumeAttributesClassName for bound claims"]


def test_immutable_configmap_and_secret() -> None:
    old = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"},
           "immutable": True}
    assert updates({**old, "data": {"a": "2"}}, old) == [
        "data: Forbidden: field is immutable when `immutable` is set"]
    assert updates({**old, "immutable": False}, old) == [
        "immutable: Forbidden: field is immutable when `immutable` is set"]
    sec = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "MQ=="},
           "immutable": True}
    assert updates({**sec, "data": {"a": "Mg=="}}, sec) == [
        "data: Forbidden: field is immutable when `immutable` is set"]
    assert updates({**sec, "immutable": None, "data": {}}, {**sec, "immutable": None}) == []


def test_persistent_volume_with_a_local_path_is_valid() -> None:
    from bosun.api.registry import by_plural
    from bosun.api.validation import validate

    pvs = by_plural("", "v1", "persistentvolumes")
    assert pvs is not None
    pv: dict[str, Any] = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-local"},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                   "local": {"path": "/var/lib/bosun/volumes/pv-local"}}}
    assert validate(pvs, pv) == []
    pv["spec"]["local"] = {"path": ""}
    assert [e.field for e in validate(pvs, pv)] == ["spec.local.path"]
    del pv["spec"]["local"]
    assert [e.detail() for e in validate(pvs, pv)] == ["spec: Required value: must specify a volume type"]


def test_statefulset_containers_mount_claim_templates_by_name() -> None:
    """A StatefulSet's containers mount its volumeClaimTemplates by name (each replica gets its
    own claim); other workloads may not name a volume that does not exist."""
    mounted = {"containers": [{"name": "web", "image": "nginx",
                               "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}
    claim = {"metadata": {"name": "data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    template = {"metadata": {"labels": {"app": "web"}}, "spec": mounted}
    sts = {**deployment(template=template, serviceName="web", volumeClaimTemplates=[claim]), "kind": "StatefulSet"}
    assert errors(sts) == []
    dep = deployment(template=template)
    assert errors(dep) == ['spec.template.spec.containers[0].volumeMounts[0].name: Not found: "data"']
