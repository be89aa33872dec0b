"""The official `kubernetes` Python client against a real Bosun API server, for every served kind.

Users drive clusters from Python with this client, so its typed models, default patch content
types, optimistic concurrency, errors and watch helper must all work unchanged against Bosun.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client, config, dynamic, watch
from kubernetes.client import ApiException
from kubernetes.client import models as m
from tests.conftest import RunningServer

from bosun.api.registry import RESOURCES

IMAGE = "busybox:1.36"
WATCH_SECONDS = 5


@pytest.fixture(scope="module")
def api(api_server: RunningServer) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=api_server.kubeconfig)
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def ns(api: client.ApiClient, namespace: str) -> Iterator[str]:
    core: Any = client.CoreV1Api(api)
    core.create_namespace(m.V1Namespace(metadata=m.V1ObjectMeta(name=namespace)))
    try:
        yield namespace
    finally:
        try:
            core.delete_namespace(namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise


# ---------------------------------------------------------------------------------------------
# model builders


def meta(name: str, labels: dict[str, str] | None = None) -> m.V1ObjectMeta:
    return m.V1ObjectMeta(name=name, labels=labels)


def container(name: str = "c", image: str = IMAGE) -> m.V1Container:
    return m.V1Container(name=name, image=image, command=["sleep", "3600"])


def pod_template(labels: dict[str, str], restart: str | None = None) -> m.V1PodTemplateSpec:
    return m.V1PodTemplateSpec(
        metadata=m.V1ObjectMeta(labels=labels),
        spec=m.V1PodSpec(containers=[container()], restart_policy=restart),
    )


def selector(labels: dict[str, str]) -> m.V1LabelSelector:
    return m.V1LabelSelector(match_labels=labels)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def make_namespace(name: str, labels: dict[str, str]) -> Any:
    return m.V1Namespace(metadata=meta(name, labels))


def make_pod(name: str, labels: dict[str, str]) -> Any:
    return m.V1Pod(metadata=meta(name, labels), spec=m.V1PodSpec(containers=[container()]))


def make_service(name: str, labels: dict[str, str]) -> Any:
    return m.V1Service(
        metadata=meta(name, labels),
        spec=m.V1ServiceSpec(selector={"app": name}, ports=[m.V1ServicePort(port=80, target_port=8080)]),
    )


def make_endpoints(name: str, labels: dict[str, str]) -> Any:
    return m.V1Endpoints(
        metadata=meta(name, labels),
        subsets=[m.V1EndpointSubset(addresses=[m.V1EndpointAddress(ip="10.0.0.7")],
                                    ports=[m.CoreV1EndpointPort(port=80)])],
    )


def make_configmap(name: str, labels: dict[str, str]) -> Any:
    return m.V1ConfigMap(metadata=meta(name, labels), data={"a": "1"})


def make_secret(name: str, labels: dict[str, str]) -> Any:
    return m.V1Secret(metadata=meta(name, labels), data={"k": b64("hello")}, string_data={"s": "plain"})


def make_event(name: str, labels: dict[str, str]) -> Any:
    return m.CoreV1Event(
        metadata=meta(name, labels),
        involved_object=m.V1ObjectReference(kind="Pod", name="somepod", api_version="v1"),
        reason="Testing", message="hello from python", type="Normal", count=1,
        first_timestamp=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        last_timestamp=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        source=m.V1EventSource(component="pytest"),
    )


def make_events_v1_event(name: str, labels: dict[str, str]) -> Any:
    return m.EventsV1Event(
        metadata=meta(name, labels), event_time=datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        regarding=m.V1ObjectReference(kind="Pod", name="somepod", api_version="v1"),
        reporting_controller="example.com/pytest", reporting_instance="pytest-0", action="Testing",
        reason="Tested", note="hello from events.k8s.io", type="Normal",
    )


def check_events_v1_event(o: Any) -> None:
    assert o.regarding.name == "somepod" and o.note == "hello from events.k8s.io"
    assert (o.reporting_controller, o.action, o.reason) == ("example.com/pytest", "Testing", "Tested")
    assert o.event_time == datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _csr_request() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pytest")]))
           .sign(key, hashes.SHA256()))
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


def make_csr(name: str, labels: dict[str, str]) -> Any:
    return m.V1CertificateSigningRequest(metadata=meta(name, labels), spec=m.V1CertificateSigningRequestSpec(
        request=_csr_request(), signer_name="example.com/pytest", usages=["client auth"], expiration_seconds=3600))


def check_csr(o: Any) -> None:
    assert (o.spec.signer_name, o.spec.usages, o.spec.expiration_seconds) == (
        "example.com/pytest", ["client auth"], 3600)
    assert o.spec.username == "bosun-admin"


def make_node(name: str, labels: dict[str, str]) -> Any:
    return m.V1Node(metadata=meta(name, labels), spec=m.V1NodeSpec(pod_cidr="10.244.7.0/24"))


def make_pvc(name: str, labels: dict[str, str]) -> Any:
    return m.V1PersistentVolumeClaim(
        metadata=meta(name, labels),
        spec=m.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=m.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
        ),
    )


def make_pv(name: str, labels: dict[str, str]) -> Any:
    return m.V1PersistentVolume(
        metadata=meta(name, labels),
        spec=m.V1PersistentVolumeSpec(
            capacity={"storage": "1Gi"}, access_modes=["ReadWriteOnce"],
            host_path=m.V1HostPathVolumeSource(path=f"/tmp/{name}"),
        ),
    )


def make_serviceaccount(name: str, labels: dict[str, str]) -> Any:
    return m.V1ServiceAccount(metadata=meta(name, labels))


def make_deployment(name: str, labels: dict[str, str]) -> Any:
    sel = {"app": name}
    return m.V1Deployment(
        metadata=meta(name, labels),
        spec=m.V1DeploymentSpec(replicas=1, selector=selector(sel), template=pod_template(sel)),
    )


def make_replicaset(name: str, labels: dict[str, str]) -> Any:
    sel = {"app": name}
    return m.V1ReplicaSet(
        metadata=meta(name, labels),
        spec=m.V1ReplicaSetSpec(replicas=1, selector=selector(sel), template=pod_template(sel)),
    )


def make_replicationcontroller(name: str, labels: dict[str, str]) -> Any:
    sel = {"app": name}
    return m.V1ReplicationController(
        metadata=meta(name, labels),
        spec=m.V1ReplicationControllerSpec(replicas=1, selector=sel, template=pod_template(sel)),
    )


def make_statefulset(name: str, labels: dict[str, str]) -> Any:
    sel = {"app": name}
    return m.V1StatefulSet(
        metadata=meta(name, labels),
        spec=m.V1StatefulSetSpec(replicas=1, service_name=name, selector=selector(sel),
                                 template=pod_template(sel)),
    )


def make_daemonset(name: str, labels: dict[str, str]) -> Any:
    sel = {"app": name}
    return m.V1DaemonSet(
        metadata=meta(name, labels), spec=m.V1DaemonSetSpec(selector=selector(sel), template=pod_template(sel)),
    )


def make_controllerrevision(name: str, labels: dict[str, str]) -> Any:
    return m.V1ControllerRevision(metadata=meta(name, labels), revision=1, data={"spec": {"x": 1}})


def make_job(name: str, labels: dict[str, str]) -> Any:
    return m.V1Job(metadata=meta(name, labels),
                   spec=m.V1JobSpec(template=pod_template({"job": name}, restart="Never")))


def make_cronjob(name: str, labels: dict[str, str]) -> Any:
    return m.V1CronJob(
        metadata=meta(name, labels),
        spec=m.V1CronJobSpec(
            schedule="*/5 * * * *",
            job_template=m.V1JobTemplateSpec(
                spec=m.V1JobSpec(template=pod_template({"cron": name}, restart="OnFailure"))),
        ),
    )


def make_ingress(name: str, labels: dict[str, str]) -> Any:
    backend = m.V1IngressBackend(
        service=m.V1IngressServiceBackend(name="web", port=m.V1ServiceBackendPort(number=80)))
    return m.V1Ingress(
        metadata=meta(name, labels),
        spec=m.V1IngressSpec(rules=[m.V1IngressRule(
            host="app.example.com",
            http=m.V1HTTPIngressRuleValue(paths=[m.V1HTTPIngressPath(path="/", path_type="Prefix",
                                                                     backend=backend)]),
        )]),
    )


def make_pdb(name: str, labels: dict[str, str]) -> Any:
    return m.V1PodDisruptionBudget(
        metadata=meta(name, labels),
        spec=m.V1PodDisruptionBudgetSpec(min_available="50%", selector=m.V1LabelSelector(match_labels={"app": name})),
    )


def make_network_policy(name: str, labels: dict[str, str]) -> Any:
    return m.V1NetworkPolicy(
        metadata=meta(name, labels),
        spec=m.V1NetworkPolicySpec(
            pod_selector=m.V1LabelSelector(match_labels={"app": "db"}),
            ingress=[m.V1NetworkPolicyIngressRule(
                _from=[m.V1NetworkPolicyPeer(ip_block=m.V1IPBlock(cidr="10.9.0.0/16", _except=["10.9.8.0/24"]))],
                ports=[m.V1NetworkPolicyPort(port=5432)])],
        ),
    )


def make_hpa(name: str, labels: dict[str, str]) -> Any:
    return m.V2HorizontalPodAutoscaler(
        metadata=meta(name, labels),
        spec=m.V2HorizontalPodAutoscalerSpec(
            scale_target_ref=m.V2CrossVersionObjectReference(api_version="apps/v1", kind="Deployment",
                                                             name="web"),
            max_replicas=5,
        ),
    )


def make_lease(name: str, labels: dict[str, str]) -> Any:
    when = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    return m.V1Lease(
        metadata=meta(name, labels),
        spec=m.V1LeaseSpec(holder_identity="holder-a", lease_duration_seconds=15, acquire_time=when,
                           renew_time=when, lease_transitions=0),
    )


def make_endpointslice(name: str, labels: dict[str, str]) -> Any:
    return m.V1EndpointSlice(
        metadata=meta(name, labels), address_type="IPv4",
        endpoints=[m.V1Endpoint(addresses=["10.1.2.3"], conditions=m.V1EndpointConditions(ready=True))],
        ports=[m.DiscoveryV1EndpointPort(name="http", port=8080, protocol="TCP")],
    )


def make_apiservice(name: str, labels: dict[str, str]) -> Any:
    version, _, group = name.partition(".")  # an APIService is named <version>.<group>
    return m.V1APIService(metadata=meta(name, labels), spec=m.V1APIServiceSpec(
        group=group, version=version, group_priority_minimum=100, version_priority=10))


def check_apiservice(o: Any) -> None:
    assert (o.spec.group_priority_minimum, o.spec.version_priority, o.spec.service) == (100, 10, None)


def make_priorityclass(name: str, labels: dict[str, str]) -> Any:
    return m.V1PriorityClass(metadata=meta(name, labels), value=1000, description="made by pytest")


def make_podtemplate(name: str, labels: dict[str, str]) -> Any:
    return m.V1PodTemplate(metadata=meta(name, labels), template=m.V1PodTemplateSpec(
        metadata=m.V1ObjectMeta(labels={"app": "tpl"}),
        spec=m.V1PodSpec(containers=[m.V1Container(name="c", image="busybox")])))


def make_resourcequota(name: str, labels: dict[str, str]) -> Any:
    return m.V1ResourceQuota(metadata=meta(name, labels), spec=m.V1ResourceQuotaSpec(
        hard={"pods": "10", "requests.cpu": "0.5"}, scopes=["NotBestEffort"]))


def make_limitrange(name: str, labels: dict[str, str]) -> Any:
    return m.V1LimitRange(metadata=meta(name, labels), spec=m.V1LimitRangeSpec(limits=[m.V1LimitRangeItem(
        type="Container", max={"cpu": "1"}, min={"cpu": "100m"}, default={"memory": "0.5Gi"})]))


def make_csidriver(name: str, labels: dict[str, str]) -> Any:
    return m.V1CSIDriver(metadata=meta(name, labels), spec=m.V1CSIDriverSpec(
        pod_info_on_mount=True, token_requests=[m.StorageV1TokenRequest(audience="vault", expiration_seconds=3600)]))


def make_runtimeclass(name: str, labels: dict[str, str]) -> Any:
    return m.V1RuntimeClass(metadata=meta(name, labels), handler="runsc",
                            overhead=m.V1Overhead(pod_fixed={"cpu": "0.25"}))


def _webhook_parts() -> tuple[list[Any], Any]:
    """Rules that pick nothing this suite writes, and a client config (never called)."""
    rules = [m.V1RuleWithOperations(api_groups=["example.com"], api_versions=["v1"], operations=["CREATE"],
                                    resources=["widgets"])]
    return rules, m.AdmissionregistrationV1WebhookClientConfig(url="https://127.0.0.1:9/hook")


def make_validatingwebhookconfiguration(name: str, labels: dict[str, str]) -> Any:
    rules, cc = _webhook_parts()
    return m.V1ValidatingWebhookConfiguration(metadata=meta(name, labels), webhooks=[m.V1ValidatingWebhook(
        name="check.rt.example.com", admission_review_versions=["v1"], side_effects="None", client_config=cc,
        rules=rules)])


def make_mutatingwebhookconfiguration(name: str, labels: dict[str, str]) -> Any:
    rules, cc = _webhook_parts()
    return m.V1MutatingWebhookConfiguration(metadata=meta(name, labels), webhooks=[m.V1MutatingWebhook(
        name="inject.rt.example.com", admission_review_versions=["v1"], side_effects="NoneOnDryRun",
        client_config=cc, rules=rules)])


def check_webhooks(o: Any) -> None:
    (hook,) = o.webhooks
    assert (hook.failure_policy, hook.match_policy, hook.timeout_seconds) == ("Fail", "Equivalent", 10)
    assert hook.rules[0].scope == "*" and hook.namespace_selector is not None


def make_vap(name: str, labels: dict[str, str]) -> Any:
    rule = m.V1NamedRuleWithOperations(api_groups=["apps"], api_versions=["v1"], operations=["CREATE"],
                                       resources=["deployments"])
    return m.V1ValidatingAdmissionPolicy(metadata=meta(name, labels), spec=m.V1ValidatingAdmissionPolicySpec(
        match_constraints=m.V1MatchResources(resource_rules=[rule]),
        validations=[m.V1Validation(expression="object.spec.replicas < 1000")]))


def make_vap_binding(name: str, labels: dict[str, str]) -> Any:
    spec = m.V1ValidatingAdmissionPolicyBindingSpec(policy_name="no-such-policy.example.com",
                                                    validation_actions=["Audit"])
    return m.V1ValidatingAdmissionPolicyBinding(metadata=meta(name, labels), spec=spec)


def make_flowschema(name: str, labels: dict[str, str]) -> Any:
    return m.V1FlowSchema(metadata=meta(name, labels), spec=m.V1FlowSchemaSpec(
        priority_level_configuration=m.V1PriorityLevelConfigurationReference(name="catch-all"),
        rules=[m.V1PolicyRulesWithSubjects(
            subjects=[m.FlowcontrolV1Subject(kind="User", user=m.V1UserSubject(name="alice"))],
            non_resource_rules=[m.V1NonResourcePolicyRule(verbs=["get"], non_resource_urls=["/healthz"])])]))


def make_prioritylevel(name: str, labels: dict[str, str]) -> Any:
    return m.V1PriorityLevelConfiguration(metadata=meta(name, labels), spec=m.V1PriorityLevelConfigurationSpec(
        type="Limited", limited=m.V1LimitedPriorityLevelConfiguration(
            nominal_concurrency_shares=3, limit_response=m.V1LimitResponse(
                type="Queue", queuing=m.V1QueuingConfiguration(queues=16)))))

# ---------------------------------------------------------------------------------------------
# what each kind must look like once the server has defaulted it, and after a kind-specific patch


def check_namespace(o: Any) -> None:
    assert o.status.phase == "Active"
    assert o.metadata.labels["kubernetes.io/metadata.name"] == o.metadata.name


def check_pod(o: Any) -> None:
    assert o.status.phase == "Pending"
    assert o.spec.restart_policy == "Always"
    assert o.spec.dns_policy == "ClusterFirst"
    assert o.spec.termination_grace_period_seconds == 30
    c = o.spec.containers[0]
    assert c.image_pull_policy == "IfNotPresent"
    assert c.termination_message_path == "/dev/termination-log"


def check_service(o: Any) -> None:
    assert o.spec.type == "ClusterIP"
    assert o.spec.cluster_ip and o.spec.cluster_ip != "None"
    assert o.spec.session_affinity == "None"
    port = o.spec.ports[0]
    assert (port.port, port.protocol) == (80, "TCP")
    assert str(port.target_port) == "8080"


def check_endpoints(o: Any) -> None:
    assert o.subsets[0].addresses[0].ip == "10.0.0.7"
    assert (o.subsets[0].ports[0].port, o.subsets[0].ports[0].protocol) == (80, "TCP")


def check_configmap(o: Any) -> None:
    assert o.data == {"a": "1"}


def check_secret(o: Any) -> None:
    assert o.type == "Opaque"
    assert base64.b64decode(o.data["k"]) == b"hello"
    assert base64.b64decode(o.data["s"]) == b"plain"  # stringData is folded into data
    assert not o.string_data


def check_event(o: Any) -> None:
    assert o.involved_object.name == "somepod"
    assert o.first_timestamp == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (o.reason, o.type, o.count) == ("Testing", "Normal", 1)


def check_node(o: Any) -> None:
    assert o.spec.pod_cidr == "10.244.7.0/24"


def check_pvc(o: Any) -> None:
    assert o.spec.volume_mode == "Filesystem"
    assert o.spec.resources.requests["storage"] == "1Gi"
    assert o.status.phase == "Pending"


def check_pv(o: Any) -> None:
    assert o.spec.persistent_volume_reclaim_policy == "Retain"
    assert o.spec.volume_mode == "Filesystem"
    assert o.spec.capacity["storage"] == "1Gi"
    assert o.status.phase == "Pending"


def check_serviceaccount(o: Any) -> None:
    assert o.metadata.uid


def check_template(t: Any) -> None:
    assert t.spec.containers[0].image_pull_policy == "IfNotPresent"
    assert t.spec.dns_policy == "ClusterFirst"


def check_deployment(o: Any) -> None:
    s = o.spec
    assert s.strategy.type == "RollingUpdate"
    assert (str(s.strategy.rolling_update.max_surge), str(s.strategy.rolling_update.max_unavailable)) == ("25%", "25%")
    assert (s.revision_history_limit, s.progress_deadline_seconds) == (10, 600)
    assert s.template.spec.restart_policy == "Always"
    check_template(s.template)
    assert o.metadata.generation == 1


def check_replicaset(o: Any) -> None:
    assert o.spec.replicas == 1
    check_template(o.spec.template)


def check_statefulset(o: Any) -> None:
    s = o.spec
    assert s.pod_management_policy == "OrderedReady"
    assert s.update_strategy.type == "RollingUpdate"
    assert s.revision_history_limit == 10
    check_template(s.template)


def check_daemonset(o: Any) -> None:
    s = o.spec
    assert s.update_strategy.type == "RollingUpdate"
    assert str(s.update_strategy.rolling_update.max_unavailable) == "1"
    assert s.revision_history_limit == 10
    check_template(s.template)


def check_controllerrevision(o: Any) -> None:
    assert o.revision == 1
    assert o.data == {"spec": {"x": 1}}


def check_job(o: Any) -> None:
    s = o.spec
    assert (s.backoff_limit, s.completions, s.parallelism) == (6, 1, 1)
    assert s.completion_mode == "NonIndexed"
    assert s.suspend is False
    assert s.template.spec.restart_policy == "Never"


def check_cronjob(o: Any) -> None:
    s = o.spec
    assert s.concurrency_policy == "Allow"
    assert s.suspend is False
    assert (s.successful_jobs_history_limit, s.failed_jobs_history_limit) == (3, 1)
    assert s.job_template.spec.template.spec.restart_policy == "OnFailure"


def check_ingress(o: Any) -> None:
    path = o.spec.rules[0].http.paths[0]
    assert (path.path, path.path_type) == ("/", "Prefix")
    assert path.backend.service.port.number == 80


def check_pdb(o: Any) -> None:
    assert o.spec.min_available == "50%" and o.spec.max_unavailable is None
    assert o.status.disruptions_allowed == 0 and o.status.expected_pods == 0


def check_network_policy(o: Any) -> None:
    s = o.spec
    assert s.policy_types == ["Ingress"]
    assert s.ingress[0]._from[0].ip_block._except == ["10.9.8.0/24"]
    assert (s.ingress[0].ports[0].port, s.ingress[0].ports[0].protocol) == (5432, "TCP")


def check_hpa(o: Any) -> None:
    s = o.spec
    assert (s.min_replicas, s.max_replicas) == (1, 5)
    assert s.scale_target_ref.kind == "Deployment"
    metric = s.metrics[0]  # autoscaling/v2 defaults to 80% CPU
    assert (metric.type, metric.resource.name) == ("Resource", "cpu")
    assert (metric.resource.target.type, metric.resource.target.average_utilization) == ("Utilization", 80)


def check_lease(o: Any) -> None:
    assert o.spec.holder_identity == "holder-a"
    assert o.spec.renew_time == datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def check_endpointslice(o: Any) -> None:
    assert o.address_type == "IPv4"
    assert o.endpoints[0].addresses == ["10.1.2.3"] and o.ports[0].port == 8080


def check_priorityclass(o: Any) -> None:
    assert o.value == 1000
    assert o.preemption_policy == "PreemptLowerPriority"
    assert o.global_default in (False, None)


def check_podtemplate(o: Any) -> None:
    assert o.template.spec.containers[0].image == "busybox"
    assert o.template.spec.restart_policy == "Always" and o.template.spec.dns_policy == "ClusterFirst"


def check_resourcequota(o: Any) -> None:
    assert o.spec.hard == {"pods": "10", "requests.cpu": "500m"} and o.spec.scopes == ["NotBestEffort"]


def check_limitrange(o: Any) -> None:
    item = o.spec.limits[0]
    assert (item.type, item.max, item.min) == ("Container", {"cpu": "1"}, {"cpu": "100m"})
    # Defaulted as upstream: the default limit from max, the default request from the default limit.
    assert item.default == {"cpu": "1", "memory": "512Mi"}
    assert item.default_request == {"cpu": "1", "memory": "512Mi"}


def check_csidriver(o: Any) -> None:
    assert (o.spec.attach_required, o.spec.pod_info_on_mount, o.spec.fs_group_policy) == (
        True, True, "ReadWriteOnceWithFSType")
    assert o.spec.volume_lifecycle_modes == ["Persistent"] and o.spec.token_requests[0].audience == "vault"


def check_runtimeclass(o: Any) -> None:
    assert o.handler == "runsc" and o.overhead.pod_fixed == {"cpu": "250m"}


def check_vap(o: Any) -> None:
    assert o.spec.failure_policy == "Fail" and o.spec.match_constraints.match_policy == "Equivalent"
    # Created with an empty status, which the server writes a moment later (as upstream's
    # type-checking controller does): a read may come before or after.
    assert o.status is None or o.status.observed_generation in (None, 1)


def check_vap_binding(o: Any) -> None:
    assert o.spec.policy_name == "no-such-policy.example.com" and o.spec.validation_actions == ["Audit"]


def check_flowschema(o: Any) -> None:
    assert o.spec.matching_precedence == 1000 and o.spec.priority_level_configuration.name == "catch-all"


def check_prioritylevel(o: Any) -> None:
    queuing = o.spec.limited.limit_response.queuing
    assert o.spec.limited.nominal_concurrency_shares == 3 and (queuing.queues, queuing.hand_size) == (16, 8)


@dataclass(frozen=True)
class Kind:
    """How one served resource is spelt in the typed client, and what a round trip must show."""

    plural: str
    group: str
    api: type
    method: str  # e.g. "namespaced_pod" in create_namespaced_pod, "node" in create_node
    make: Callable[[str, dict[str, str]], Any]
    check: Callable[[Any], None]
    spec_patch: dict[str, Any] = field(default_factory=dict)  # a strategic merge patch besides labels
    after_patch: Callable[[Any], object] = lambda o: None

    @property
    def namespaced(self) -> bool:
        return self.method.startswith("namespaced_")

    def fn(self, api: client.ApiClient, verb: str) -> Callable[..., Any]:
        return getattr(self.api(api), f"{verb}_{self.method}")  # type: ignore[no-any-return]


def _pod_image(o: Any) -> None:
    assert [c.image for c in o.spec.containers] == ["busybox:1.37"]


def _template_image(o: Any) -> None:
    assert [c.image for c in o.spec.template.spec.containers] == ["busybox:1.37"]


IMAGE_PATCH = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}}}}

def make_ingressclass(name: str, labels: dict[str, str]) -> Any:
    return m.V1IngressClass(metadata=meta(name, labels), spec=m.V1IngressClassSpec(controller="example.com/pytest"))


def check_ingressclass(o: Any) -> None:
    assert o.spec.controller == "example.com/pytest"


def make_storageclass(name: str, labels: dict[str, str]) -> Any:
    return m.V1StorageClass(metadata=meta(name, labels), provisioner="example.com/pytest")


def check_storageclass(o: Any) -> None:
    assert o.provisioner == "example.com/pytest"
    assert (o.reclaim_policy, o.volume_binding_mode) == ("Delete", "Immediate")


RULE = m.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"])


def make_role(name: str, labels: dict[str, str]) -> Any:
    return m.V1Role(metadata=meta(name, labels), rules=[RULE])


def make_clusterrole(name: str, labels: dict[str, str]) -> Any:
    return m.V1ClusterRole(metadata=meta(name, labels), rules=[RULE])


def _binding(cls: Any, name: str, labels: dict[str, str], kind: str) -> Any:
    return cls(metadata=meta(name, labels), role_ref=m.V1RoleRef(api_group="rbac.authorization.k8s.io", kind=kind,
                                                               name="view"),
               subjects=[m.RbacV1Subject(kind="User", name="jane", api_group="rbac.authorization.k8s.io")])


def make_rolebinding(name: str, labels: dict[str, str]) -> Any:
    return _binding(m.V1RoleBinding, name, labels, "ClusterRole")


def make_clusterrolebinding(name: str, labels: dict[str, str]) -> Any:
    return _binding(m.V1ClusterRoleBinding, name, labels, "ClusterRole")


def check_rules(o: Any) -> None:
    assert [(r.api_groups, r.resources, r.verbs) for r in o.rules] == [([""], ["pods"], ["get", "list"])]


def check_binding(o: Any) -> None:
    assert (o.role_ref.kind, o.role_ref.name) == ("ClusterRole", "view")
    assert [(s.kind, s.name) for s in o.subjects] == [("User", "jane")]


RBAC = client.RbacAuthorizationV1Api
PATCHED_RULES = {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]}
PATCHED_SUBJECTS = {"subjects": [{"kind": "Group", "name": "qa", "apiGroup": "rbac.authorization.k8s.io"}]}


def _rules_patched(o: Any) -> bool:
    return o.rules[0].verbs == ["get", "list", "watch"] or _fail(o.rules)


def _subjects_patched(o: Any) -> bool:
    return [(s.kind, s.name) for s in o.subjects] == [("Group", "qa")] or _fail(o.subjects)


KINDS: list[Kind] = [
    Kind("namespaces", "", client.CoreV1Api, "namespace", make_namespace, check_namespace),
    Kind("pods", "", client.CoreV1Api, "namespaced_pod", make_pod, check_pod,
         {"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}}, _pod_image),
    Kind("services", "", client.CoreV1Api, "namespaced_service", make_service, check_service,
         {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}},
         lambda o: [(p.port, str(p.target_port)) for p in o.spec.ports] == [(80, "9090")] or _fail(o.spec.ports)),
    Kind("endpoints", "", client.CoreV1Api, "namespaced_endpoints", make_endpoints, check_endpoints),
    Kind("configmaps", "", client.CoreV1Api, "namespaced_config_map", make_configmap, check_configmap,
         {"data": {"b": "2"}}, lambda o: o.data == {"a": "1", "b": "2"} or _fail(o.data)),
    Kind("secrets", "", client.CoreV1Api, "namespaced_secret", make_secret, check_secret,
         {"data": {"k": b64("bye")}}, lambda o: base64.b64decode(o.data["k"]) == b"bye" or _fail(o.data)),
    Kind("events", "", client.CoreV1Api, "namespaced_event", make_event, check_event,
         {"count": 2}, lambda o: o.count == 2 or _fail(o.count)),
    Kind("nodes", "", client.CoreV1Api, "node", make_node, check_node,
         {"spec": {"unschedulable": True}}, lambda o: o.spec.unschedulable is True or _fail(o.spec)),
    Kind("persistentvolumeclaims", "", client.CoreV1Api, "namespaced_persistent_volume_claim", make_pvc,
         check_pvc),
    Kind("persistentvolumes", "", client.CoreV1Api, "persistent_volume", make_pv, check_pv,
         {"spec": {"persistentVolumeReclaimPolicy": "Delete"}},
         lambda o: o.spec.persistent_volume_reclaim_policy == "Delete" or _fail(o.spec)),
    Kind("serviceaccounts", "", client.CoreV1Api, "namespaced_service_account", make_serviceaccount,
         check_serviceaccount, {"automountServiceAccountToken": False},
         lambda o: o.automount_service_account_token is False or _fail(o)),
    Kind("deployments", "apps", client.AppsV1Api, "namespaced_deployment", make_deployment, check_deployment,
         IMAGE_PATCH, _template_image),
    Kind("replicasets", "apps", client.AppsV1Api, "namespaced_replica_set", make_replicaset, check_replicaset,
         {"spec": {"replicas": 3}}, lambda o: o.spec.replicas == 3 or _fail(o.spec)),
    Kind("replicationcontrollers", "", client.CoreV1Api, "namespaced_replication_controller",
         make_replicationcontroller, check_replicaset,
         {"spec": {"replicas": 3}}, lambda o: o.spec.replicas == 3 or _fail(o.spec)),
    Kind("statefulsets", "apps", client.AppsV1Api, "namespaced_stateful_set", make_statefulset,
         check_statefulset, IMAGE_PATCH, _template_image),
    Kind("daemonsets", "apps", client.AppsV1Api, "namespaced_daemon_set", make_daemonset, check_daemonset,
         IMAGE_PATCH, _template_image),
    Kind("controllerrevisions", "apps", client.AppsV1Api, "namespaced_controller_revision",
         make_controllerrevision, check_controllerrevision),
    Kind("jobs", "batch", client.BatchV1Api, "namespaced_job", make_job, check_job,
         {"spec": {"parallelism": 2}}, lambda o: o.spec.parallelism == 2 or _fail(o.spec)),
    Kind("cronjobs", "batch", client.BatchV1Api, "namespaced_cron_job", make_cronjob, check_cronjob,
         {"spec": {"schedule": "*/10 * * * *", "suspend": True}},
         lambda o: (o.spec.schedule, o.spec.suspend) == ("*/10 * * * *", True) or _fail(o.spec)),
    Kind("ingresses", "networking.k8s.io", client.NetworkingV1Api, "namespaced_ingress", make_ingress,
         check_ingress, {"spec": {"ingressClassName": "nginx"}},
         lambda o: o.spec.ingress_class_name == "nginx" or _fail(o.spec)),
    Kind("networkpolicies", "networking.k8s.io", client.NetworkingV1Api, "namespaced_network_policy",
         make_network_policy, check_network_policy, {"spec": {"policyTypes": ["Ingress", "Egress"]}},
         lambda o: o.spec.policy_types == ["Ingress", "Egress"] or _fail(o.spec)),
    Kind("ingressclasses", "networking.k8s.io", client.NetworkingV1Api, "ingress_class", make_ingressclass,
         check_ingressclass, {"spec": {"parameters": {"apiGroup": "example.com", "kind": "Params", "name": "p"}}},
         lambda o: o.spec.parameters.name == "p" or _fail(o.spec)),
    Kind("poddisruptionbudgets", "policy", client.PolicyV1Api, "namespaced_pod_disruption_budget", make_pdb,
         check_pdb, {"spec": {"minAvailable": 2}}, lambda o: o.spec.min_available == 2 or _fail(o.spec)),
    Kind("horizontalpodautoscalers", "autoscaling", client.AutoscalingV2Api,
         "namespaced_horizontal_pod_autoscaler", make_hpa, check_hpa,
         {"spec": {"maxReplicas": 7}}, lambda o: o.spec.max_replicas == 7 or _fail(o.spec)),
    Kind("leases", "coordination.k8s.io", client.CoordinationV1Api, "namespaced_lease", make_lease, check_lease,
         {"spec": {"holderIdentity": "holder-b"}}, lambda o: o.spec.holder_identity == "holder-b" or _fail(o.spec)),
    Kind("events", "events.k8s.io", client.EventsV1Api, "namespaced_event", make_events_v1_event,
         check_events_v1_event, {"note": "patched"}, lambda o: o.note == "patched" or _fail(o)),
    Kind("certificatesigningrequests", "certificates.k8s.io", client.CertificatesV1Api,
         "certificate_signing_request", make_csr, check_csr),
    Kind("endpointslices", "discovery.k8s.io", client.DiscoveryV1Api, "namespaced_endpoint_slice",
         make_endpointslice, check_endpointslice, {"addressType": "IPv4"}),
    Kind("apiservices", "apiregistration.k8s.io", client.ApiregistrationV1Api, "api_service", make_apiservice,
         check_apiservice, {"spec": {"versionPriority": 20}},
         lambda o: o.spec.version_priority == 20 or _fail(o.spec)),
    Kind("priorityclasses", "scheduling.k8s.io", client.SchedulingV1Api, "priority_class", make_priorityclass,
         check_priorityclass, {"description": "patched"},
         lambda o: o.description == "patched" or _fail(o)),
    Kind("storageclasses", "storage.k8s.io", client.StorageV1Api, "storage_class", make_storageclass,
         check_storageclass, {"allowVolumeExpansion": True},
         lambda o: o.allow_volume_expansion is True or _fail(o)),
    Kind("podtemplates", "", client.CoreV1Api, "namespaced_pod_template", make_podtemplate, check_podtemplate,
         {"template": {"spec": {"activeDeadlineSeconds": 30}}},
         lambda o: o.template.spec.active_deadline_seconds == 30 or _fail(o.template)),
    Kind("resourcequotas", "", client.CoreV1Api, "namespaced_resource_quota", make_resourcequota,
         check_resourcequota, {"spec": {"hard": {"pods": "20"}}},
         lambda o: o.spec.hard["pods"] == "20" or _fail(o.spec)),
    Kind("limitranges", "", client.CoreV1Api, "namespaced_limit_range", make_limitrange, check_limitrange),
    Kind("csidrivers", "storage.k8s.io", client.StorageV1Api, "csi_driver", make_csidriver, check_csidriver,
         {"spec": {"podInfoOnMount": False}}, lambda o: o.spec.pod_info_on_mount is False or _fail(o.spec)),
    Kind("runtimeclasses", "node.k8s.io", client.NodeV1Api, "runtime_class", make_runtimeclass,
         check_runtimeclass, {"scheduling": {"nodeSelector": {"sandbox": "gvisor"}}},
         lambda o: o.scheduling.node_selector == {"sandbox": "gvisor"} or _fail(o)),
    Kind("validatingwebhookconfigurations", "admissionregistration.k8s.io", client.AdmissionregistrationV1Api,
         "validating_webhook_configuration", make_validatingwebhookconfiguration, check_webhooks,
         {"webhooks": [{"name": "check.rt.example.com", "timeoutSeconds": 5}]},
         lambda o: [h.timeout_seconds for h in o.webhooks] == [5] or _fail(o.webhooks)),
    Kind("mutatingwebhookconfigurations", "admissionregistration.k8s.io", client.AdmissionregistrationV1Api,
         "mutating_webhook_configuration", make_mutatingwebhookconfiguration, check_webhooks,
         {"webhooks": [{"name": "inject.rt.example.com", "reinvocationPolicy": "IfNeeded"}]},
         lambda o: [h.reinvocation_policy for h in o.webhooks] == ["IfNeeded"] or _fail(o.webhooks)),
    Kind("validatingadmissionpolicies", "admissionregistration.k8s.io", client.AdmissionregistrationV1Api,
         "validating_admission_policy", make_vap, check_vap),
    Kind("validatingadmissionpolicybindings", "admissionregistration.k8s.io", client.AdmissionregistrationV1Api,
         "validating_admission_policy_binding", make_vap_binding, check_vap_binding,
         {"spec": {"validationActions": ["Warn"]}}, lambda o: o.spec.validation_actions == ["Warn"] or _fail(o.spec)),
    Kind("flowschemas", "flowcontrol.apiserver.k8s.io", client.FlowcontrolApiserverV1Api, "flow_schema",
         make_flowschema, check_flowschema),
    Kind("prioritylevelconfigurations", "flowcontrol.apiserver.k8s.io", client.FlowcontrolApiserverV1Api,
         "priority_level_configuration", make_prioritylevel, check_prioritylevel,
         {"spec": {"limited": {"lendablePercent": 10}}},
         lambda o: o.spec.limited.lendable_percent == 10 or _fail(o.spec)),
    Kind("roles", "rbac.authorization.k8s.io", RBAC, "namespaced_role", make_role, check_rules, PATCHED_RULES,
         _rules_patched),
    Kind("clusterroles", "rbac.authorization.k8s.io", RBAC, "cluster_role", make_clusterrole, check_rules,
         PATCHED_RULES, _rules_patched),
    Kind("rolebindings", "rbac.authorization.k8s.io", RBAC, "namespaced_role_binding", make_rolebinding,
         check_binding, PATCHED_SUBJECTS, _subjects_patched),
    Kind("clusterrolebindings", "rbac.authorization.k8s.io", RBAC, "cluster_role_binding", make_clusterrolebinding,
         check_binding, PATCHED_SUBJECTS, _subjects_patched),
]


def _fail(got: object) -> bool:
    raise AssertionError(f"unexpected after patch: {got!r}")


# Kinds whose registry in kube-apiserver sets ReturnDeletedObject: the client's delete_* returns the model.
RETURN_DELETED_OBJECT = {"pods", "services", "persistentvolumeclaims", "persistentvolumes", "serviceaccounts",
                         "storageclasses", "resourcequotas", "podtemplates", "csidrivers"}


def kind_of(plural: str) -> Kind:
    return next(k for k in KINDS if k.plural == plural)


# ---------------------------------------------------------------------------------------------
# Server bugs reported to the lead. Strict: once the server is fixed, the XPASS fails and the entry goes.

_ZERO_STATUS = ("server omits status fields Kubernetes always serialises (zero values without omitempty); "
                "the client's models require them")
_DELETE_OBJECT = "delete returns a Status; kube-apiserver returns the deleted object for this kind"
SERVER_BUGS: dict[str, str] = {
}


def params(test: str, values: list[Any], ids: list[str]) -> list[Any]:
    """Parametrize values, marking the ones a reported server bug still breaks."""
    out = []
    for value, id_ in zip(values, ids, strict=True):
        reason = SERVER_BUGS.get(f"{test}[{id_}]")
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        out.append(pytest.param(value, id=id_, marks=marks))
    return out


def known_bug(test: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """An xfail mark while a reported server bug breaks the test; otherwise leave the test alone."""
    reason = SERVER_BUGS.get(test)
    if reason:
        return pytest.mark.xfail(reason=reason, strict=True)
    return lambda fn: fn


# ---------------------------------------------------------------------------------------------
# helpers


def status_body(exc: ApiException) -> dict[str, Any]:
    """The error body must be a JSON Status whose code matches the HTTP status."""
    assert exc.body, f"no body for {exc.status}"
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1", body
    assert body["status"] == "Failure", body
    assert body["code"] == exc.status, body
    assert body.get("message"), body
    return body  # type: ignore[no-any-return]


def expect_error(status: int, reason: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ApiException) as info:
        fn(*args, **kwargs)
    assert info.value.status == status, info.value
    body = status_body(info.value)
    assert body["reason"] == reason, body
    return body


def scope(kind: Kind, ns: str) -> dict[str, str]:
    return {"namespace": ns} if kind.namespaced else {}


def wait_gone(read: Callable[[], Any], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            read()
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        if time.monotonic() > deadline:
            raise AssertionError("object still present after delete")
        time.sleep(0.1)


def replay(kind: Kind, api: client.ApiClient, ns: str, rv: str, name: str) -> list[tuple[str, Any]]:
    """Watch from a resourceVersion with the client's helper until the object's DELETED event."""
    w = watch.Watch()
    args = [ns] if kind.namespaced else []
    seen: list[tuple[str, Any]] = []
    for ev in w.stream(kind.fn(api, "list"), *args, resource_version=rv, timeout_seconds=WATCH_SECONDS):
        obj = ev["object"]
        if obj.metadata.name != name:
            continue
        seen.append((ev["type"], obj))
        if ev["type"] == "DELETED":
            w.stop()
    return seen


# ---------------------------------------------------------------------------------------------
# the round trip, once per kind


def test_every_served_resource_has_a_round_trip() -> None:
    # bindings is create-only: test_pod_binding_through_bindings_collection covers it. A CRD's
    # name must be <plural>.<group>: tests/e2e/test_crd_clients.py round-trips them.
    served = {(r.group, r.plural) for r in RESOURCES if r.plural not in ("bindings", "customresourcedefinitions")}
    tested = {(k.group, k.plural) for k in KINDS}
    assert served - tested == set()


# A plural two groups share is told apart by its group (events, events.events.k8s.io).
KIND_IDS = [f"{k.plural}.{k.group}" if k.group and sum(o.plural == k.plural for o in KINDS) > 1 else k.plural
            for k in KINDS]


@pytest.mark.parametrize("kind", params("round_trip", KINDS, KIND_IDS))
def test_round_trip(api: client.ApiClient, ns: str, kind: Kind) -> None:
    name = "obj" if kind.namespaced else f"{ns}-{kind.plural}"[:63]
    if kind.plural == "apiservices":
        name = f"v1.{ns}.example.com"
    where = scope(kind, ns)
    create, read, list_, patch, replace, delete = (
        kind.fn(api, v) for v in ("create", "read", "list", "patch", "replace", "delete"))
    rv0 = list_(**where).metadata.resource_version
    assert rv0
    labels = {"suite": ns, "app": "rt"}

    new = kind.make(name, labels)
    if kind.plural == "events":  # an Event names its object in its own namespace
        (new.involved_object if kind.group == "" else new.regarding).namespace = ns
    created = create(body=new, **where)
    deleted: Any = None
    try:
        assert type(created) is type(new)
        assert created.metadata.uid and created.metadata.resource_version
        assert isinstance(created.metadata.creation_timestamp, datetime)
        assert created.metadata.labels["app"] == "rt"
        kind.check(created)

        got = read(name=name, **where)
        assert got.metadata.uid == created.metadata.uid
        kind.check(got)

        listed = list_(label_selector=f"suite={ns},app=rt", **where)
        assert [o.metadata.name for o in listed.items] == [name]
        assert listed.items[0].metadata.uid == created.metadata.uid
        assert list_(label_selector=f"suite={ns},app!=rt", **where).items == []

        # the client's default for a dict body is a strategic merge patch
        stale = got
        patched = patch(name=name, body={"metadata": {"labels": {"patched": "smp"}}, **kind.spec_patch}, **where)
        assert patched.metadata.labels == {**labels, "patched": "smp"} | (
            {"kubernetes.io/metadata.name": name} if kind.plural == "namespaces" else {})
        kind.after_patch(patched)
        assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)

        # a list body is sent as a JSON patch; merge patch on request
        jp = patch(name=name, body=[{"op": "add", "path": "/metadata/labels/jsonpatch", "value": "yes"}], **where)
        assert jp.metadata.labels["jsonpatch"] == "yes"
        mp = patch(name=name, body={"metadata": {"labels": {"jsonpatch": None}}},
                   _content_type="application/merge-patch+json", **where)
        assert "jsonpatch" not in mp.metadata.labels

        # replace with a stale copy: optimistic concurrency says no
        stale.metadata.annotations = {"replaced": "stale"}
        body = expect_error(409, "Conflict", replace, name=name, body=stale, **where)
        assert "the object has been modified" in body["message"]

        fresh = read(name=name, **where)
        fresh.metadata.annotations = {"replaced": "yes"}
        replaced = replace(name=name, body=fresh, **where)
        assert replaced.metadata.annotations["replaced"] == "yes"
        assert replaced.metadata.labels["patched"] == "smp"
        kind.after_patch(replaced)
        assert int(replaced.metadata.resource_version) > int(fresh.metadata.resource_version)
    finally:
        try:
            deleted = delete(name=name, **where)
        except ApiException as exc:
            if exc.status != 404:
                raise
    if kind.plural in RETURN_DELETED_OBJECT:  # kube-apiserver answers these deletes with the object
        assert type(deleted) is type(new), deleted
        assert deleted.metadata.name == name
    wait_gone(lambda: read(name=name, **where))
    body = expect_error(404, "NotFound", read, name=name, **where)
    assert body["details"]["name"] == name
    assert body["details"]["kind"] == kind.plural
    if kind.group:
        assert body["details"]["group"] == kind.group

    events = replay(kind, api, ns, rv0, name)
    types = [t for t, _ in events]
    assert types[0] == "ADDED" and types[-1] == "DELETED", types
    assert types.count("MODIFIED") >= 4, types  # three patches and a replace
    assert type(events[0][1]).__name__ == type(created).__name__
    assert events[-2][1].metadata.annotations["replaced"] == "yes"


# ---------------------------------------------------------------------------------------------
# status subresources: the status endpoint writes status only, the main endpoint never does

STATUS_PATCHES: dict[str, tuple[dict[str, Any], Callable[[Any], object]]] = {
    "pods": ({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                              "message": "0/0 nodes are available"}]},
             lambda s: [(c.type, c.reason) for c in s.conditions] == [("PodScheduled", "Unschedulable")]),
    "nodes": ({"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
               "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]},
              lambda s: s.capacity["cpu"] == "4" and s.conditions[0].status == "True"),
    "persistentvolumeclaims": ({"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}},
                               lambda s: s.phase == "Bound" and s.capacity["storage"] == "1Gi"),
    "persistentvolumes": ({"phase": "Available"}, lambda s: s.phase == "Available"),
    "deployments": ({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                     "conditions": [{"type": "Available", "status": "False",
                                     "reason": "MinimumReplicasUnavailable"}]},
                    lambda s: (s.replicas, s.conditions[0].reason) == (1, "MinimumReplicasUnavailable")),
    "replicasets": ({"replicas": 1, "fullyLabeledReplicas": 1, "observedGeneration": 1},
                    lambda s: (s.replicas, s.fully_labeled_replicas) == (1, 1)),
    "replicationcontrollers": ({"replicas": 1, "fullyLabeledReplicas": 1, "observedGeneration": 1},
                               lambda s: (s.replicas, s.fully_labeled_replicas) == (1, 1)),
    "statefulsets": ({"replicas": 1, "currentReplicas": 1, "observedGeneration": 1},
                     lambda s: (s.replicas, s.current_replicas) == (1, 1)),
    "daemonsets": ({"currentNumberScheduled": 1, "desiredNumberScheduled": 1, "numberMisscheduled": 0,
                    "numberReady": 0, "observedGeneration": 1},
                   lambda s: (s.current_number_scheduled, s.desired_number_scheduled) == (1, 1)),
    "jobs": ({"active": 1, "startTime": "2024-01-01T00:00:00Z"},
             lambda s: s.active == 1 and s.start_time == datetime(2024, 1, 1, tzinfo=UTC)),
    "cronjobs": ({"lastScheduleTime": "2024-01-01T00:05:00Z"},
                 lambda s: s.last_schedule_time == datetime(2024, 1, 1, 0, 5, tzinfo=UTC)),
    "ingresses": ({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}},
                  lambda s: s.load_balancer.ingress[0].ip == "192.0.2.10"),
    "poddisruptionbudgets": ({"currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2, "disruptionsAllowed": 1},
                             lambda s: (s.current_healthy, s.disruptions_allowed) == (2, 1)),
    "horizontalpodautoscalers": ({"currentReplicas": 1, "desiredReplicas": 2},
                                 lambda s: (s.current_replicas, s.desired_replicas) == (1, 2)),
}


@pytest.mark.parametrize("plural", params("status_subresource", list(STATUS_PATCHES), list(STATUS_PATCHES)))
def test_status_subresource(api: client.ApiClient, ns: str, plural: str) -> None:
    kind = kind_of(plural)
    status, check = STATUS_PATCHES[plural]
    name = "st" if kind.namespaced else f"{ns}-st"
    where = scope(kind, ns)
    created = kind.fn(api, "create")(body=kind.make(name, {"suite": ns}), **where)
    try:
        before = created.status.to_dict() if created.status else None
        via_main = kind.fn(api, "patch")(name=name, body={"status": status}, **where)
        assert (via_main.status.to_dict() if via_main.status else None) == before  # status ignored on the main path

        read = getattr(kind.api(api), f"read_{kind.method}_status")
        got = read(name=name, **where)
        assert type(got) is type(created) and got.metadata.uid == created.metadata.uid

        patch_status = getattr(kind.api(api), f"patch_{kind.method}_status")
        patched = patch_status(name=name, body={"status": status, "metadata": {"labels": {"via": "status"}}},
                               **where)
        assert check(patched.status), patched.status
        assert check(kind.fn(api, "read")(name=name, **where).status)
        assert patched.metadata.generation == created.metadata.generation  # status writes never bump it

        # replace_*_status with the read object works; with a stale one it conflicts
        replace_status = getattr(kind.api(api), f"replace_{kind.method}_status")
        got.metadata.annotations = {"stale": "yes"}
        expect_error(409, "Conflict", replace_status, name=name, body=got, **where)
        fresh = read(name=name, **where)
        assert check(replace_status(name=name, body=fresh, **where).status)
    finally:
        kind.fn(api, "delete")(name=name, **where)


def test_status_write_ignores_spec(api: client.ApiClient, ns: str) -> None:
    apps: Any = client.AppsV1Api(api)
    apps.create_namespaced_deployment(ns, make_deployment("web", {}))
    out = apps.patch_namespaced_deployment_status(
        "web", ns, {"spec": {"replicas": 9}, "status": {"observedGeneration": 1}})
    assert out.spec.replicas == 1
    assert out.status.observed_generation == 1


# ---------------------------------------------------------------------------------------------
# scale subresources


SCALABLE = ["deployments", "replicasets", "replicationcontrollers", "statefulsets"]


@pytest.mark.parametrize("plural", params("scale_subresource", SCALABLE, SCALABLE))
def test_scale_subresource(api: client.ApiClient, ns: str, plural: str) -> None:
    kind = kind_of(plural)
    apps = kind.api(api)
    name = "sc"
    kind.fn(api, "create")(body=kind.make(name, {"suite": ns}), namespace=ns)
    scale: Any = getattr(apps, f"read_{kind.method}_scale")(name, ns)
    assert type(scale).__name__ == "V1Scale"
    assert (scale.kind, scale.api_version) == ("Scale", "autoscaling/v1")
    assert scale.spec.replicas == 1
    assert scale.status.selector == f"app={name}"

    patched = getattr(apps, f"patch_{kind.method}_scale")(name, ns, {"spec": {"replicas": 3}})
    assert patched.spec.replicas == 3
    assert kind.fn(api, "read")(name=name, namespace=ns).spec.replicas == 3

    # replace with the Scale read before the patch: its resourceVersion is stale
    replace = getattr(apps, f"replace_{kind.method}_scale")
    scale.spec.replicas = 4
    expect_error(409, "Conflict", replace, name, ns, scale)
    fresh = getattr(apps, f"read_{kind.method}_scale")(name, ns)
    fresh.spec.replicas = 0
    assert replace(name, ns, fresh).spec.replicas == 0
    assert kind.fn(api, "read")(name=name, namespace=ns).spec.replicas == 0

    body = expect_error(422, "Invalid", getattr(apps, f"patch_{kind.method}_scale"), name, ns,
                        {"spec": {"replicas": -1}})
    assert "spec.replicas" in body["message"]


# ---------------------------------------------------------------------------------------------
# pods: binding, eviction, graceful deletion


@pytest.fixture
def node(api: client.ApiClient, ns: str) -> Iterator[str]:
    """A node (no agent behind it) that pods can be bound to, deleted after the test."""
    core = client.CoreV1Api(api)
    name = f"{ns}-node"
    core.create_node(m.V1Node(metadata=meta(name)))
    try:
        yield name
    finally:
        core.delete_node(name)


def bind_to(pod: str, node: str) -> m.V1Binding:
    return m.V1Binding(metadata=meta(pod), target=m.V1ObjectReference(kind="Node", name=node))


def _raw_json(resp: Any) -> tuple[int, dict[str, Any]]:
    try:
        return resp.status, json.loads(resp.data)
    finally:
        resp.release_conn()


def test_pod_binding(api: client.ApiClient, ns: str, node: str) -> None:
    core: Any = client.CoreV1Api(api)
    core.create_namespaced_pod(ns, make_pod("p", {}))
    binding = bind_to("p", node)
    # Like kube-apiserver, the server answers a binding with a Status, which this client's V1Binding
    # model cannot hold (kubernetes-client/python#825): users read the raw response.
    status, body = _raw_json(core.create_namespaced_pod_binding("p", ns, binding, _preload_content=False))
    assert status == 201
    assert (body["kind"], body["status"]) == ("Status", "Success")

    pod = core.read_namespaced_pod("p", ns)
    assert pod.spec.node_name == node
    assert ("PodScheduled", "True") in [(c.type, c.status) for c in pod.status.conditions or []]

    again = bind_to("p", "other")
    expect_error(409, "Conflict", core.create_namespaced_pod_binding, "p", ns, again)
    expect_error(404, "NotFound", core.create_namespaced_pod_binding, "nope", ns, bind_to("nope", node))

    # a pod on a node is deleted gracefully: it stays, marked, until its node lets go
    deleted: Any = core.delete_namespaced_pod("p", ns)
    assert type(deleted).__name__ == "V1Pod"
    assert isinstance(deleted.metadata.deletion_timestamp, datetime)
    assert deleted.metadata.deletion_grace_period_seconds == 30
    assert core.read_namespaced_pod("p", ns).metadata.deletion_timestamp
    core.delete_namespaced_pod("p", ns, grace_period_seconds=0)
    wait_gone(lambda: core.read_namespaced_pod("p", ns))


@known_bug("pod_binding_through_bindings_collection")
def test_pod_binding_through_bindings_collection(api: client.ApiClient, ns: str, node: str) -> None:
    core: Any = client.CoreV1Api(api)
    core.create_namespaced_pod(ns, make_pod("p", {}))
    binding = bind_to("p", node)
    status, body = _raw_json(core.create_namespaced_binding(ns, binding, _preload_content=False))
    assert (status, body["status"]) == (201, "Success"), body
    assert core.read_namespaced_pod("p", ns).spec.node_name == node


def test_pod_eviction(api: client.ApiClient, ns: str, node: str) -> None:
    core: Any = client.CoreV1Api(api)
    core.create_namespaced_pod(ns, make_pod("loose", {}))
    core.create_namespaced_pod(ns, make_pod("bound", {}))
    core.create_namespaced_pod_binding("bound", ns, bind_to("bound", node), _preload_content=False).release_conn()

    eviction = m.V1Eviction(metadata=m.V1ObjectMeta(name="loose", namespace=ns))
    status, body = _raw_json(core.create_namespaced_pod_eviction("loose", ns, eviction, _preload_content=False))
    assert (status, body["kind"], body["status"]) == (201, "Status", "Success"), body
    wait_gone(lambda: core.read_namespaced_pod("loose", ns))  # nothing runs it: gone at once

    core.create_namespaced_pod_eviction("bound", ns, m.V1Eviction(metadata=m.V1ObjectMeta(name="bound",
                                                                                           namespace=ns)))
    pod = core.read_namespaced_pod("bound", ns)
    assert pod.metadata.deletion_timestamp is not None  # its node must stop it first

    expect_error(404, "NotFound", core.create_namespaced_pod_eviction, "nope", ns,
                 m.V1Eviction(metadata=m.V1ObjectMeta(name="nope", namespace=ns)))


# ---------------------------------------------------------------------------------------------
# errors


def test_errors_are_status_objects(api: client.ApiClient, api_server: RunningServer, ns: str) -> None:
    core: Any = client.CoreV1Api(api)
    body = expect_error(404, "NotFound", core.read_namespaced_pod, "missing", ns)
    assert body["message"] == 'pods "missing" not found'
    assert body["details"] == {"name": "missing", "kind": "pods"}

    body = expect_error(404, "NotFound", client.AppsV1Api(api).read_namespaced_deployment, "missing", ns)
    assert body["details"] == {"name": "missing", "group": "apps", "kind": "deployments"}

    body = expect_error(404, "NotFound", core.create_namespaced_config_map, f"{ns}-absent",
                        make_configmap("c", {}))
    assert body["message"] == f'namespaces "{ns}-absent" not found'

    core.create_namespaced_config_map(ns, make_configmap("c", {}))
    body = expect_error(409, "AlreadyExists", core.create_namespaced_config_map, ns, make_configmap("c", {}))
    assert body["message"] == 'configmaps "c" already exists'
    assert body["details"]["name"] == "c"

    bad = m.V1Pod(metadata=meta("bad"), spec=m.V1PodSpec(containers=[]))
    body = expect_error(422, "Invalid", core.create_namespaced_pod, ns, bad)
    assert body["message"].startswith('Pod "bad" is invalid: ')
    assert {"field": "spec.containers", "reason": "FieldValueRequired"}.items() <= body["details"]["causes"][0].items()
    assert (body["details"]["name"], body["details"]["kind"]) == ("bad", "Pod")

    body = expect_error(422, "Invalid", core.patch_namespaced_config_map, "c", ns,
                        [{"op": "remove", "path": "/data/nosuchkey"}])

    body = expect_error(400, "BadRequest", core.list_namespaced_pod, ns, label_selector="a in (")

    stranger = client.Configuration()
    stranger.host = api_server.url
    stranger.ssl_ca_cert = api_server.ca_path
    stranger.api_key = {"BearerToken": "not-a-token"}
    stranger.api_key_prefix = {"BearerToken": "Bearer"}
    with client.ApiClient(stranger) as outsider:
        expect_error(401, "Unauthorized", client.CoreV1Api(outsider).list_namespace)


# ---------------------------------------------------------------------------------------------
# lists and watches


def test_list_pages_with_limit_and_continue(api: client.ApiClient, ns: str) -> None:
    core: Any = client.CoreV1Api(api)
    for i in range(5):
        core.create_namespaced_config_map(ns, make_configmap(f"c{i}", {"page": "yes"}))
    names: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = core.list_namespaced_config_map(ns, label_selector="page=yes", limit=2, _continue=token)
        pages += 1
        names += [o.metadata.name for o in page.items]
        token = page.metadata.var_continue
        if not token:
            break
    assert sorted(names) == [f"c{i}" for i in range(5)]
    assert pages == 3


def test_live_watch_sees_changes_as_they_happen(api: client.ApiClient, ns: str) -> None:
    core: Any = client.CoreV1Api(api)
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    seen: list[tuple[str, str, str | None]] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        w = watch.Watch()
        try:
            for ev in w.stream(core.list_namespaced_config_map, ns, label_selector="live=yes",
                               resource_version=rv, timeout_seconds=WATCH_SECONDS):
                obj: Any = ev["object"]
                assert type(obj).__name__ == "V1ConfigMap"
                seen.append((ev["type"], obj.metadata.name, (obj.data or {}).get("a")))
                if ev["type"] == "DELETED":
                    w.stop()
                    done.set()
        except BaseException as exc:
            failures.append(exc)

    t = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    t.start()
    core.create_namespaced_config_map(ns, make_configmap("other", {}))  # filtered out by the selector
    core.create_namespaced_config_map(ns, make_configmap("w", {"live": "yes"}))
    core.patch_namespaced_config_map("w", ns, {"data": {"a": "2"}})
    core.delete_namespaced_config_map("w", ns)
    assert done.wait(WATCH_SECONDS), seen
    t.join(WATCH_SECONDS)
    assert not failures, failures
    assert seen == [("ADDED", "w", "1"), ("MODIFIED", "w", "2"), ("DELETED", "w", "2")]
    assert time.monotonic() - started < WATCH_SECONDS - 1  # delivered live, not when the watch timed out


def test_watch_ends_at_timeout_seconds(api: client.ApiClient, ns: str) -> None:
    started = time.monotonic()
    events = list(watch.Watch().stream(client.CoreV1Api(api).list_namespaced_secret, ns, timeout_seconds=1))
    assert events == []
    assert 0.5 < time.monotonic() - started < 4


# ---------------------------------------------------------------------------------------------
# the dynamic client (discovery-driven)


@pytest.fixture
def dyn(api: client.ApiClient, tmp_path: Any) -> dynamic.DynamicClient:
    return dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))


def test_dynamic_discovery_finds_every_resource(dyn: dynamic.DynamicClient) -> None:
    for r in RESOURCES:
        api_version = f"{r.group}/{r.version}" if r.group else r.version
        res = dyn.resources.get(api_version=api_version, kind=r.kind)
        assert (res.name, res.namespaced) == (r.plural, r.namespaced)
        assert set(r.short_names) <= set(res.short_names or [])
        for sub in r.subresources:
            if sub in ("status", "scale"):
                assert sub in res.subresources, (r.plural, sub)
    pods = dyn.resources.get(api_version="v1", kind="Pod")
    assert "binding" in pods.subresources and "eviction" in pods.subresources


def test_dynamic_round_trip(dyn: dynamic.DynamicClient, ns: str) -> None:
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    rv = deployments.get(namespace=ns).metadata.resourceVersion
    manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "dyn", "labels": {"via": "dynamic"}},
        "spec": {"selector": {"matchLabels": {"app": "dyn"}},
                 "template": {"metadata": {"labels": {"app": "dyn"}},
                              "spec": {"containers": [{"name": "c", "image": IMAGE}]}}},
    }
    created = deployments.create(body=manifest, namespace=ns)
    assert created.spec.strategy.type == "RollingUpdate"
    assert created.spec.replicas == 1

    got = deployments.get(name="dyn", namespace=ns)
    assert got.metadata.uid == created.metadata.uid
    listed = deployments.get(namespace=ns, label_selector="via=dynamic")
    assert [i.metadata.name for i in listed.items] == ["dyn"]

    patched = deployments.patch(name="dyn", namespace=ns, body={"spec": {"replicas": 2}})
    assert patched.spec.replicas == 2
    merged = deployments.patch(name="dyn", namespace=ns, body={"metadata": {"labels": {"m": "1"}}},
                               content_type="application/merge-patch+json")
    assert merged.metadata.labels["m"] == "1"

    stale = got.to_dict()
    stale["spec"]["replicas"] = 5
    with pytest.raises(dynamic.exceptions.ConflictError) as info:
        deployments.replace(body=stale, namespace=ns)
    assert info.value.status == 409
    fresh = deployments.get(name="dyn", namespace=ns).to_dict()
    fresh["spec"]["replicas"] = 5
    assert deployments.replace(body=fresh, namespace=ns).spec.replicas == 5

    scale = deployments.subresources["scale"].get(name="dyn", namespace=ns)
    assert scale.spec.replicas == 5

    deployments.delete(name="dyn", namespace=ns)
    with pytest.raises(dynamic.exceptions.NotFoundError):
        deployments.get(name="dyn", namespace=ns)

    types = []
    for ev in deployments.watch(namespace=ns, resource_version=rv, timeout=WATCH_SECONDS):
        types.append(ev["type"])
        assert ev["object"].metadata.name == "dyn"
        if ev["type"] == "DELETED":
            break
    assert types[0] == "ADDED" and types[-1] == "DELETED" and "MODIFIED" in types, types


def test_dynamic_cluster_scoped_and_core(dyn: dynamic.DynamicClient, ns: str) -> None:
    pcs = dyn.resources.get(api_version="scheduling.k8s.io/v1", kind="PriorityClass")
    name = f"{ns}-pc"
    pcs.create(body={"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                     "metadata": {"name": name}, "value": 10})
    try:
        assert pcs.get(name=name).value == 10
    finally:
        pcs.delete(name=name)
    secrets = dyn.resources.get(api_version="v1", kind="Secret")
    secrets.create(namespace=ns, body={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                                       "stringData": {"password": "hunter2"}})
    assert base64.b64decode(secrets.get(name="s", namespace=ns).data.password) == b"hunter2"


# ---------------------------------------------------------------------------------------------
# delete options and dry run, as the typed client sends them (a DeleteOptions body)


def test_dry_run_create_and_delete(api: client.ApiClient, ns: str) -> None:
    core: Any = client.CoreV1Api(api)
    dry = core.create_namespaced_config_map(ns, make_configmap("dry", {}), dry_run="All")
    assert dry.metadata.name == "dry" and dry.data == {"a": "1"}
    expect_error(404, "NotFound", core.read_namespaced_config_map, "dry", ns)

    core.create_namespaced_config_map(ns, make_configmap("kept", {}))
    core.delete_namespaced_config_map("kept", ns, body=m.V1DeleteOptions(dry_run=["All"]))
    assert core.read_namespaced_config_map("kept", ns).data == {"a": "1"}


def test_delete_with_propagation_policy_and_preconditions(api: client.ApiClient, ns: str) -> None:
    apps: Any = client.AppsV1Api(api)
    created = apps.create_namespaced_deployment(ns, make_deployment("fg", {}))
    wrong = m.V1DeleteOptions(preconditions=m.V1Preconditions(uid="00000000-0000-0000-0000-000000000000"))
    expect_error(409, "Conflict", apps.delete_namespaced_deployment, "fg", ns, body=wrong)

    out = apps.delete_namespaced_deployment(
        "fg", ns, body=m.V1DeleteOptions(propagation_policy="Foreground",
                                         preconditions=m.V1Preconditions(uid=created.metadata.uid)))
    # Foreground: the answer is the object itself, held by the finalizer until its dependents are gone
    assert out["kind"] == "Deployment", out
    assert "foregroundDeletion" in out["metadata"]["finalizers"]
    assert out["metadata"]["deletionTimestamp"]
    wait_gone(lambda: apps.read_namespaced_deployment("fg", ns))

    apps.create_namespaced_deployment(ns, make_deployment("orphan", {}))
    apps.delete_namespaced_deployment("orphan", ns, propagation_policy="Orphan")
    wait_gone(lambda: apps.read_namespaced_deployment("orphan", ns))


# ---------------------------------------------------------------------------------------------
# what Python users reach for next: cross-namespace lists, field selectors, namespace teardown, apply


def test_list_and_watch_across_namespaces(api: client.ApiClient, ns: str) -> None:
    core: Any = client.CoreV1Api(api)
    rv = core.list_config_map_for_all_namespaces(label_selector=f"suite={ns}").metadata.resource_version
    core.create_namespaced_config_map(ns, make_configmap("x", {"suite": ns}))
    core.create_namespaced_config_map("default", make_configmap(f"{ns}-x", {"suite": ns}))
    try:
        items = core.list_config_map_for_all_namespaces(label_selector=f"suite={ns}").items
        assert sorted((o.metadata.namespace, o.metadata.name) for o in items) == [
            ("default", f"{ns}-x"), (ns, "x")]
        added = []
        for ev in watch.Watch().stream(core.list_config_map_for_all_namespaces, label_selector=f"suite={ns}",
                                       resource_version=rv, timeout_seconds=WATCH_SECONDS):
            added.append(ev["object"].metadata.namespace)
            if len(added) == 2:
                break
        assert sorted(added) == sorted(["default", ns])
    finally:
        core.delete_namespaced_config_map(f"{ns}-x", "default")


def test_field_selectors(api: client.ApiClient, ns: str) -> None:
    core: Any = client.CoreV1Api(api)
    core.create_namespaced_pod(ns, make_pod("a", {}))
    core.create_namespaced_pod(ns, make_pod("b", {}))
    core.create_namespaced_event(ns, m.CoreV1Event(
        metadata=meta("a.1"), involved_object=m.V1ObjectReference(kind="Pod", name="a", namespace=ns),
        reason="Scheduled", message="hi", type="Normal"))
    names = [p.metadata.name for p in core.list_namespaced_pod(ns, field_selector="metadata.name=b").items]
    assert names == ["b"]
    pending = core.list_namespaced_pod(ns, field_selector="status.phase=Pending,spec.nodeName=").items
    assert sorted(p.metadata.name for p in pending) == ["a", "b"]
    events = core.list_namespaced_event(ns, field_selector="involvedObject.kind=Pod,involvedObject.name=a").items
    assert [e.reason for e in events] == ["Scheduled"]
    expect_error(400, "BadRequest", core.list_namespaced_pod, ns, field_selector="spec.nosuchfield=x")


def test_namespace_deletion_empties_it(api: client.ApiClient, namespace: str) -> None:
    core: Any = client.CoreV1Api(api)
    core.create_namespace(make_namespace(namespace, {}))
    core.create_namespaced_config_map(namespace, make_configmap("c", {}))
    core.delete_namespace(namespace)
    try:
        phase = core.read_namespace(namespace).status.phase
    except ApiException as exc:
        assert exc.status == 404  # already finalized: also fine
    else:
        assert phase == "Terminating"
        with pytest.raises(ApiException) as info:
            core.create_namespaced_config_map(namespace, make_configmap("late", {}))
        body = status_body(info.value)
        if info.value.status == 404:  # finalized between the read and the create
            assert body["reason"] == "NotFound", body
        else:
            assert info.value.status == 403 and body["reason"] == "Forbidden", body
            assert "because it is being terminated" in body["message"]
    wait_gone(lambda: core.read_namespace(namespace))
    assert core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={namespace}").items == []


def test_server_side_apply_through_the_dynamic_client(dyn: dynamic.DynamicClient, ns: str) -> None:
    """The dynamic client's server_side_apply creates, merges, and gets a 409 naming the
    field when another manager owns it."""
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": ns},
            "data": {"a": "1"}}
    created = cms.server_side_apply(body=body, name="ssa", namespace=ns, field_manager="pytest")
    assert created.data.a == "1"
    assert [e.manager for e in created.metadata.managedFields] == ["pytest"]
    other = {**body, "data": {"a": "2"}}
    with pytest.raises(ApiException) as info:
        cms.server_side_apply(body=other, name="ssa", namespace=ns, field_manager="other")
    assert info.value.status == 409
    status = status_body(info.value)
    assert status["details"]["causes"] == [{"reason": "FieldManagerConflict", "field": ".data.a",
                                           "message": 'conflict with "pytest" using v1'}]
    forced = cms.server_side_apply(body=other, name="ssa", namespace=ns, field_manager="other", force_conflicts=True)
    assert forced.data.a == "2"
