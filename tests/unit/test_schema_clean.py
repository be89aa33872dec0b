"""The schema check's quick pass (no field paths) must never call clean what the full walk
would refuse: compared on many broken variants of a realistic pod and Deployment."""

from __future__ import annotations

import copy
import random
from typing import Any

from tests.unit.helpers import json_paths, must_by_kind

from bosun.api import schema
from bosun.api.registry import Resource

PODS = must_by_kind("v1", "Pod")
DEPLOYMENTS = must_by_kind("apps/v1", "Deployment")

CONTAINER: dict[str, Any] = {
    "name": "api", "image": "nginx:1.27", "args": ["--port=80"],
    "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
    "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": 1}},
    "livenessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 10},
    "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
}
POD: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "p", "labels": {"app": "x"}, "annotations": {"a": "b"},
                 "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {"containers": [CONTAINER], "volumes": [{"name": "data", "emptyDir": {}},
                                                    {"name": "s", "secret": {"secretName": "s"}}],
             "nodeSelector": {"k": "v"}, "terminationGracePeriodSeconds": 30,
             "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 5}]},
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
}
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "x"}},
             "template": {"metadata": {"labels": {"app": "x"}}, "spec": POD["spec"]}},
}
BAD_VALUES: list[Any] = ["x", 1, 1.5, True, [], {}, ["x"], [1], {"k": 1}, 2**40, "1.5Zi", "yesterday",
                         "not base64!", {"unknownField": 1}]


def _full(res: Resource, obj: dict[str, Any]) -> tuple[list[str], list[str]]:
    t = schema.root_type(res)
    assert t is not None
    unknown: list[str] = []
    errors: list[str] = []
    schema._walk(obj, t, "", "", unknown, errors, False)
    return unknown, errors


def test_quick_pass_agrees_with_the_full_walk() -> None:
    rnd = random.Random(7)
    for res, base in ((PODS, POD), (DEPLOYMENTS, DEPLOYMENT)):
        assert schema.check(res, copy.deepcopy(base)) == ([], [])
        paths = json_paths(base)[1:]  # not the object itself
        for _ in range(1500):
            obj = copy.deepcopy(base)
            path = rnd.choice(paths)
            parent = obj
            for step in path[:-1]:
                parent = parent[step]
            if isinstance(parent, dict) and rnd.random() < 0.2:
                parent["bogus" + str(rnd.randrange(3))] = "x"  # an unknown field beside it
            else:
                parent[path[-1]] = rnd.choice(BAD_VALUES)
            assert schema.check(res, obj) == _full(res, obj), path
