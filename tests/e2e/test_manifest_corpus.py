"""A corpus of realistic manifests (tests/e2e/manifests, written in the style of the public
example collections) applied with real kubectl 1.32 to a bare server: first with
``--dry-run=server``, then for real. Kubernetes 1.32 accepts every one of them, so Bosun must
too, and every field a manifest sets must come back with the value it was given, allowing
only for upstream's documented canonicalisation (quantities in canonical form, Secret
``stringData`` folded into ``data``) and for fields the server adds (defaults)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import served

KUBECTL = "/usr/bin/kubectl"
MANIFESTS = Path(__file__).with_name("manifests")
NAMESPACE = "corpus"

# Values of the corpus whose canonical form upstream documents (resource.Quantity): they must
# come back exactly so; other quantities must come back equal in value.
CANONICAL = {".5": "500m", "0.5": "500m", "1.5": "1500m", 1: "1", 2: "2", "1e3": "1k", "0.5Gi": "512Mi",
             "1536Mi": "1536Mi", "129e6": "129M", "1000m": "1", "2000Mi": "2000Mi", "0.25": "250m"}

_SUFFIXES = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
             "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
             "P": Decimal("1e15"), "E": Decimal("1e18"), "Ki": Decimal(2**10), "Mi": Decimal(2**20),
             "Gi": Decimal(2**30), "Ti": Decimal(2**40), "Pi": Decimal(2**50), "Ei": Decimal(2**60)}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)$")


def quantity_value(v: object) -> Decimal | None:
    """The value of a Kubernetes quantity written as ``v``, or None if it is not one."""
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        return None
    m = _QUANTITY.match(str(v))
    return Decimal(m[1]) * _SUFFIXES[m[2]] if m else None


# A quantity written with a mantissa of at most three digits, no sign, point, exponent or leading
# zero is canonical already (no larger suffix could carry it): it comes back exactly as written.
_ALREADY_CANONICAL = re.compile(r"^(?:0|[1-9]\d{0,2}(?:Ki|Mi|Gi|Ti|Pi|Ei|[mkMGTPE])?)$")


def same_value(expected: object, actual: object) -> bool:
    if expected == actual and type(expected) is type(actual):
        return True
    if isinstance(expected, (str, int)) and not isinstance(expected, bool) and expected in CANONICAL:
        return actual == CANONICAL[expected]
    if isinstance(expected, str) and _ALREADY_CANONICAL.match(expected):
        return False
    want, got = quantity_value(expected), quantity_value(actual)
    return isinstance(actual, str) and want is not None and want == got


def lost_fields(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Every field of ``expected`` that ``actual`` lacks or holds with another value."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path or '.'}: expected an object, got {actual!r}"]
        out: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{path}.{key}: missing (wrote {value!r})")
            else:
                out += lost_fields(value, actual[key], f"{path}.{key}")
        return out
    if isinstance(expected, list):
        # The server may append (upstream adds default tolerations) but keeps what was written.
        if not isinstance(actual, list) or len(actual) < len(expected):
            return [f"{path}: expected {expected!r}, got {actual!r}"]
        return [f for i, item in enumerate(expected) for f in lost_fields(item, actual[i], f"{path}[{i}]")]
    return [] if same_value(expected, actual) else [f"{path}: wrote {expected!r}, got {actual!r}"]


def as_stored(doc: dict[str, Any]) -> dict[str, Any]:
    """A manifest as upstream stores it: a Secret's stringData is folded into data."""
    if doc.get("kind") == "Secret" and doc.get("apiVersion") == "v1" and "stringData" in doc:
        doc = dict(doc)
        data = dict(doc.get("data") or {})
        for k, v in doc.pop("stringData").items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        doc["data"] = data
    return doc


def objects(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects a document stands for (a List stands for its items)."""
    if doc.get("kind") == "List" or (doc.get("kind", "").endswith("List") and "items" in doc):
        return [o for item in doc["items"] for o in objects(item)]
    return [doc]


def manifest_objects(path: Path) -> list[dict[str, Any]]:
    return [as_stored(o) for d in yaml.safe_load_all(path.read_text()) if d for o in objects(d)]


def _order(path: Path) -> tuple[int, str]:
    """Namespaces, CustomResourceDefinitions and the classes pods name first: other files need them."""
    kinds = {o.get("kind") for o in manifest_objects(path)}
    return (0 if kinds & {"Namespace", "CustomResourceDefinition", "PriorityClass", "RuntimeClass"} else 1, path.name)


FILES = sorted(MANIFESTS.glob("*.yaml"), key=_order)

# Manifests Kubernetes 1.32 accepts and Bosun still refuses, and why: each is a reported gap,
# expected to fail until it is closed (strict: the day it passes, it must leave this list).
NOT_SERVED: dict[str, str] = {}


def _param(path: Path) -> object:
    reason = NOT_SERVED.get(path.stem)
    marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
    return pytest.param(path, id=path.stem, marks=marks)


class Kubectl:
    def __init__(self, kubeconfig: str, cache_dir: Path) -> None:
        self.base = [KUBECTL, "--kubeconfig", kubeconfig, "-n", NAMESPACE]
        self.env = dict(os.environ, KUBECACHEDIR=str(cache_dir), HOME=str(cache_dir))

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=120, env=self.env)


Objects = dict[tuple[str, str], dict[str, Any]]
# Per file, per pass ("--dry-run=server", then ""): what kubectl returned, or why it refused.
Applied = dict[tuple[str, str], "Objects | str"]


def apply(kubectl: Kubectl, paths: list[Path], flag: str) -> Objects | str:
    """``kubectl apply [flag] -f P...`` once for all of ``paths``: the objects it printed, or
    its error output."""
    files = [a for p in paths for a in ("-f", str(p))]
    done = kubectl("apply", *([flag] if flag else []), *files, "-o", "json")
    if done.returncode != 0:
        return done.stderr
    return {(o["kind"], o["metadata"]["name"]): o for o in objects(json.loads(done.stdout))}


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Applied]:
    """The corpus applied to a bare server of the module's own (it holds cluster-scoped objects
    with fixed names): the files others need one by one, first; then everything else in one
    kubectl call per pass, falling back to one call per file when a batch is refused (so that a
    refusal is pinned on its file); the LimitRanges and ResourceQuotas last, since they act on
    what is created after them in the namespace (as upstream's admission does, the quotas
    would refuse every create until a controller counts them, and the LimitRange its bounds)."""
    data = tmp_path_factory.mktemp("corpus-server")
    for running in served(data / "server"):
        kubectl = Kubectl(running.kubeconfig, data / "kubecache")
        created = kubectl("create", "namespace", NAMESPACE)
        assert created.returncode == 0, created.stderr
        out: Applied = {}
        first = [p for p in FILES if _order(p)[0] == 0]
        for path in first:
            for flag in PASSES:
                out[path.name, flag] = apply(kubectl, [path], flag)
        crds = [f"crd/{o['metadata']['name']}" for p in first for o in manifest_objects(p)
                if o["kind"] == "CustomResourceDefinition"]
        waited = kubectl("wait", "--for=condition=Established", "--timeout=30s", *crds)
        assert waited.returncode == 0, waited.stderr
        policies = [p for p in FILES if {o.get("kind") for o in manifest_objects(p)} & {"LimitRange", "ResourceQuota"}]
        rest = [p for p in FILES if p not in first and p not in policies and p.stem not in NOT_SERVED]
        for group in (rest, policies):
            for flag in PASSES:
                batch = apply(kubectl, group, flag)
                for path in group:
                    out[path.name, flag] = batch if isinstance(batch, dict) else apply(kubectl, [path], flag)
        for path in FILES:
            if path.stem in NOT_SERVED:
                for flag in PASSES:  # the real pass only once the dry run is accepted
                    out[path.name, flag] = apply(kubectl, [path], flag)
                    if isinstance(out[path.name, flag], str):
                        out[path.name, ""] = out[path.name, flag]
                        break
        yield out


PASSES = ("--dry-run=server", "")


@pytest.mark.parametrize("path", [_param(p) for p in FILES])
def test_manifest_is_accepted_and_round_trips(applied: Applied, path: Path) -> None:
    for flag in PASSES:
        got = applied[path.name, flag]
        assert isinstance(got, dict), f"kubectl apply {flag} -f {path.name} refused:\n{got}"
        problems = []
        for want in manifest_objects(path):
            key = (want["kind"], want["metadata"]["name"])
            if key not in got:
                problems.append(f"{key}: not in kubectl's output")
                continue
            problems += [f"{key[0]}/{key[1]} {p}" for p in lost_fields(want, got[key])]
        assert not problems, f"{path.name} {flag}:\n" + "\n".join(problems)


def test_admission_fills_in_what_upstream_fills_in(applied: Applied) -> None:
    """Beyond keeping what was written: the pod naming a PriorityClass and a RuntimeClass gets
    the class's priority, overhead, node selector and toleration; a LimitRange item its
    defaults; a Secret's stringData lands in data."""
    pod = applied["pod-scheduling.yaml", ""]
    assert isinstance(pod, dict)
    spec = pod["Pod", "scheduling"]["spec"]
    assert spec["priority"] == 1000000 and spec["overhead"] == {"cpu": "250m", "memory": "120Mi"}
    assert spec["nodeSelector"] == {"disktype": "ssd", "sandbox.example.com/runtime": "gvisor"}
    assert {"key": "sandbox.example.com/runtime", "operator": "Equal", "value": "gvisor",
            "effect": "NoSchedule"} in spec["tolerations"]
    limits = applied["limitrange.yaml", ""]
    assert isinstance(limits, dict)
    assert limits["LimitRange", "cpu-resource-constraint"]["spec"]["limits"][0]["maxLimitRequestRatio"] == {"cpu": "2"}
    secret = applied["deployment-configmap-secret.yaml", ""]
    assert isinstance(secret, dict) and "stringData" not in secret["Secret", "game-secret"]


def test_corpus_is_large_and_covers_its_kinds() -> None:
    """The corpus stays a corpus: enough files, and the kinds the example collections use."""
    kinds = {o["kind"] for p in FILES for o in manifest_objects(p)}
    assert len(FILES) >= 60 and set(NOT_SERVED) <= {p.stem for p in FILES}
    assert {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Service", "Ingress", "IngressClass",
            "NetworkPolicy", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ResourceQuota", "LimitRange",
            "PriorityClass", "ClusterRole", "RoleBinding", "StorageClass", "PersistentVolume",
            "PersistentVolumeClaim", "RuntimeClass", "Lease", "EndpointSlice",
            "CustomResourceDefinition"} <= kinds
    # Objects are told apart by kind and name across the whole corpus (one batch holds them all).
    keys = [(o["kind"], o["metadata"]["name"]) for p in FILES for o in manifest_objects(p)]
    assert len(keys) == len(set(keys))
