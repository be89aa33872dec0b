"""The CustomResourceDefinition kind's strategy (apiextensions.k8s.io/v1).

Its rules are in :mod:`bosun.api.crd.definition`; serving what a CRD defines is the CRD
controller's (:mod:`bosun.api.crd.controller`). Deleting a CRD always goes through the
``customresourcecleanup`` finalizer, as in Kubernetes: the CRD finalizer
(:mod:`bosun.controllers.crdfinalizer`) deletes every object of the kind, then removes the
finalizer, and only then is the CRD gone.
"""

from __future__ import annotations

from typing import Any

from bosun.api.crd.definition import default_definition, validate_definition, validate_definition_update
from bosun.api.strategy.base import Strategy

Obj = dict[str, Any]

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


class DefinitionStrategy(Strategy):
    def __init__(self) -> None:
        super().__init__(validate_definition, update_rule=validate_definition_update,
                         defaulter=default_definition)

    def initial_status(self, obj: Obj) -> Obj | None:
        # The official clients require acceptedNames and storedVersions in a status.
        return {"acceptedNames": {"kind": "", "plural": ""}, "conditions": [], "storedVersions": []}

    def mark_for_deletion(self, obj: Obj, finalizers: list[str], options: Obj) -> Obj | None:
        if CLEANUP_FINALIZER not in finalizers:
            finalizers = [*finalizers, CLEANUP_FINALIZER]
        return super().mark_for_deletion(obj, finalizers, options)


CRD = DefinitionStrategy()
