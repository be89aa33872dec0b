"""The store contract every backend implements (SQLite, etcd).

Everything above the store (the API server and, through it, every component) relies on
exactly these semantics, so they are spelled out here once and checked by one contract
test suite (tests/store/test_contract.py) against every backend:

* Keys look like ``/registry/<resource>/<namespace>/<name>`` (cluster-scoped objects omit
  the namespace part). Values are opaque bytes (the API server stores JSON).
* One global revision grows by one with every successful write (create, update, delete)
  across all keys. A key's ``mod_revision`` is the revision of its last write and is what
  the API exposes as ``metadata.resourceVersion``.
* ``update`` and ``delete`` are compare-and-swap on the key's ``mod_revision`` so that
  concurrent writers never lose an update.
* ``watch(prefix, from_revision)`` yields every change with revision > ``from_revision``, in
  revision order, exactly once. When ``from_revision`` is older than what the store keeps
  (it was compacted away), it raises :class:`CompactedError` so that the caller can relist
  (the API turns this into 410 Gone).
* Backends compact history on their own so that storage stays bounded under constant churn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class StoreError(Exception):
    """Base class of every error a store raises on purpose."""


class KeyExistsError(StoreError):
    """``create`` found the key already present."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key already exists: {key}")
        self.key = key


class NotFoundError(StoreError):
    """The key does not exist (get on a missing key returns None instead)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class ConflictError(StoreError):
    """Compare-and-swap failed: the key's mod_revision is not the expected one."""

    def __init__(self, key: str, expected: int, actual: int) -> None:
        super().__init__(f"revision conflict on {key}: expected {expected}, found {actual}")
        self.key = key
        self.expected = expected
        self.actual = actual


class CompactedError(StoreError):
    """The requested revision is older than the oldest the store still keeps."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(
            f"revision {requested} is too old: history before {compacted} has been compacted"
        )
        self.requested = requested
        self.compacted = compacted


class UnavailableError(StoreError):
    """The backend cannot be reached (the API answers 503 and nothing is half-written)."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One stored object with its revisions."""

    key: str
    value: bytes
    mod_revision: int
    create_revision: int


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change. For DELETED, ``value`` is the last value before deletion."""

    type: EventType
    key: str
    value: bytes
    revision: int
    prev_value: bytes | None = None


@runtime_checkable
class Store(Protocol):
    """Async key-value store with global revisions, CAS and watch (see module docstring)."""

    async def get(self, key: str) -> KeyValue | None:
        """The current value of ``key``, or None."""
        ...

    async def list(
        self, prefix: str, *, start_key: str = "", limit: int = 0
    ) -> tuple[list[KeyValue], int]:
        """Keys under ``prefix`` sorted by key, starting at ``start_key`` (inclusive) if given,
        at most ``limit`` of them (0 = all), and the store's current revision, read as one snapshot."""
        ...

    async def count(self, prefix: str) -> int:
        """Number of keys under ``prefix``."""
        ...

    async def create(self, key: str, value: bytes) -> int:
        """Store a new key; returns its revision. Raises KeyExistsError."""
        ...

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        """Replace ``key`` if its mod_revision equals ``expected_revision`` (0 = unconditional);
        returns the new revision. Raises NotFoundError or ConflictError."""
        ...

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        """Remove ``key`` (CAS when ``expected_revision`` is not 0); returns the deleted value with
        ``mod_revision`` set to the revision of the deletion. Raises NotFoundError or ConflictError."""
        ...

    async def current_revision(self) -> int:
        """The newest revision (0 for an empty store that never saw a write)."""
        ...

    async def compacted_revision(self) -> int:
        """Watches from a revision below this raise CompactedError."""
        ...

    def watch(self, prefix: str, from_revision: int) -> AsyncIterator[WatchEvent]:
        """Changes under ``prefix`` with revision > ``from_revision``, forever (until the consumer
        stops iterating). Raises CompactedError (on first iteration) when too old."""
        ...

    async def compact(self, revision: int) -> None:
        """Drop history at and before ``revision`` (current values are kept)."""
        ...

    async def ping(self) -> None:
        """Return when the backend answers; raise UnavailableError otherwise (used by /readyz)."""
        ...

    async def close(self) -> None:
        """Release connections, files and background tasks."""
        ...
