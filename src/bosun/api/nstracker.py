"""Which namespaces exist, and which are terminating."""

from __future__ import annotations

from typing import Any


class NamespaceTracker:
    """Which namespaces exist and which are terminating, kept from the watch cache so that
    a create does not cost an extra store read."""

    def __init__(self) -> None:
        self.phase: dict[str, str] = {}

    def observe(self, obj: dict[str, Any] | None, name: str, deleted: bool) -> None:
        if deleted or obj is None:
            self.phase.pop(name, None)
            return
        m = obj.get("metadata") or {}
        terminating = bool(m.get("deletionTimestamp")) or (obj.get("status") or {}).get("phase") == "Terminating"
        self.phase[name] = "Terminating" if terminating else "Active"
