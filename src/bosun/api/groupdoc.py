"""An API group's discovery entry, spelled once for every group the server names: the
catalog's, the metrics groups served in the server itself, and the aggregated ones.

``/apis`` (APIGroupList) lists these entries and ``/apis/<group>`` (APIGroup) serves one;
the first version given is the preferred one, as clients take it when they pick one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def group_entry(group: str, versions: Sequence[str]) -> dict[str, Any]:
    """The group's entry in APIGroupList.groups."""
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_group(group: str, versions: Sequence[str]) -> dict[str, Any]:
    """``GET /apis/<group>``."""
    return {"kind": "APIGroup", "apiVersion": "v1", **group_entry(group, versions)}
