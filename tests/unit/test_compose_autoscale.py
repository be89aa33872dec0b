"""``x-bosun-autoscale`` in a compose file: an HPA for the service's Deployment, written after
it; bad bounds refused naming the field; a global service warned about."""

from __future__ import annotations

from pathlib import Path

import pytest

from bosun.compose.errors import ComposeError
from bosun.compose.load import load
from bosun.compose.translate import Translation, translate


def _small(tmp_path: Path, text: str) -> Translation:
    f = tmp_path / "compose.yml"
    f.write_text(text)
    return translate(load([f], shell={}), "st")


def test_autoscale_makes_an_hpa_written_after_the_deployment(tmp_path: Path) -> None:
    t = _small(tmp_path, """
services:
  web:
    image: nginx
    deploy:
      resources: {reservations: {cpus: "0.25"}}
    x-bosun-autoscale: {min: 2, max: 10, cpu: 50}
""")
    (svc,) = t.services
    (hpa,) = svc.after
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["metadata"]["name"] == "web"
    assert hpa["metadata"]["namespace"] == "st" and hpa["metadata"]["labels"]
    assert hpa["spec"] == {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                           "minReplicas": 2, "maxReplicas": 10,
                           "metrics": [{"type": "Resource", "resource": {
                               "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}
    kinds = [o["kind"] for o in t.all_objects()]
    assert kinds.index("HorizontalPodAutoscaler") > kinds.index("Deployment")
    assert "replicas" not in svc.workload["spec"]  # the autoscaler's to decide, deploy after deploy
    assert not list(t.warnings)


def test_a_replica_count_next_to_autoscale_is_warned_about(tmp_path: Path) -> None:
    t = _small(tmp_path, "services:\n  web:\n    image: nginx\n    deploy: {replicas: 3}\n"
                         "    x-bosun-autoscale: {max: 5}\n")
    assert "replicas" not in t.services[0].workload["spec"]
    assert any("x-bosun-autoscale decides the number of tasks" in str(w) for w in t.warnings)


@pytest.mark.parametrize(("setting", "message"), [
    ("{min: 5, max: 2}", "x-bosun-autoscale.max (2) must be at least min (5)"),
    ("{min: 1}", "x-bosun-autoscale.max is required"),
    ("{max: 3, cpu: lots}", "x-bosun-autoscale.cpu must be a whole number"),
    ("{max: 3, memory: 50}", "x-bosun-autoscale.memory is not a setting"),
])
def test_bad_settings_are_refused_by_name(tmp_path: Path, setting: str, message: str) -> None:
    with pytest.raises(ComposeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _small(tmp_path, f"services:\n  web:\n    image: nginx\n    x-bosun-autoscale: {setting}\n")


def test_global_services_cannot_autoscale(tmp_path: Path) -> None:
    t = _small(tmp_path, "services:\n  agent:\n    image: nginx\n    deploy: {mode: global}\n"
                         "    x-bosun-autoscale: {max: 3}\n")
    assert t.services[0].after == []
    assert any("only replicated services can autoscale" in str(w) for w in t.warnings)
