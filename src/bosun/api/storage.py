"""Kubernetes object semantics on top of the key-value store.

This is the part of the API server that every write goes through, whatever the transport
(HTTP today, an in-process transport later): server-set metadata, defaults, validation,
optimistic concurrency, status/spec separation, generation, finalizers and graceful
deletion. The HTTP layer (``rest.py``) only parses requests and formats answers.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from bosun.api import admission, errors
from bosun.api.allocators import ServiceAllocator
from bosun.api.defaults import apply_update_defaults
from bosun.api.errors import APIError, FieldError
from bosun.api.objects import (
    decode,
    decode_kv,
    encode,
    generated_name,
    json_copy,
    meta,
    new_uid,
    now_rfc3339,
)
from bosun.api.registry import Resource
from bosun.api.selectors import FieldSelector, LabelSelector
from bosun.api.storecall import call_store
from bosun.api.validation import validate, validate_update
from bosun.security.encryption import DecryptError
from bosun.store.base import (
    ConflictError,
    KeyExistsError,
    KeyValue,
    NotFoundError,
    Store,
)

if TYPE_CHECKING:
    from bosun.security.encryption import ResourceTransformer

# Guaranteed-update retries (patch, scale, binding) before giving up with 409.
MAX_RETRIES = 20
# Objects this server wrote last, kept for the next read-modify-write of the same key.
RECENT_MAX = 20000

def _kind_err(res: Resource, name: str, errs: list[FieldError]) -> APIError:
    return errors.invalid_object(res.kind, name, errs, res.group)


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


class Storage:
    """Create/get/list/update/patch/delete with Kubernetes semantics."""

    def __init__(
        self, store: Store, namespaces: NamespaceTracker,
        sealed: dict[str, ResourceTransformer] | None = None,
        services: ServiceAllocator | None = None,
    ) -> None:
        self.store = store
        self.namespaces = namespaces
        # Encryption at rest: group_plural -> transformer for the sealed resources (Secrets).
        # Every other resource costs one set lookup on its plural per store call.
        self.sealed: dict[str, ResourceTransformer] = sealed or {}
        self._sealed_plurals = frozenset(gp.split(".", 1)[0] for gp in self.sealed)
        # The admission plugins every write passes (their reads go through this storage).
        self.admission = admission.standard_chain(self, services or ServiceAllocator(store))
        # Told about every object written (key, revision, object): the watch cache uses it
        # to skip decoding its own writes.
        self.on_write: Callable[[str, int, dict[str, Any]], None] = lambda key, rev, obj: None
        # key -> (revision, object as stored, shared read-only): a pod's binding and status
        # writes follow its create within seconds, so mutate usually starts from here
        # instead of a store read and a decode. Never trusted alone: see mutate.
        self._recent: dict[str, tuple[int, dict[str, Any]]] = {}

    def _written(self, key: str, rev: int, obj: dict[str, Any]) -> None:
        recent = self._recent
        recent.pop(key, None)  # re-inserted last: the dict's order is the eviction order
        recent[key] = (rev, obj)
        if len(recent) > RECENT_MAX:
            for k in list(itertools.islice(recent, RECENT_MAX // 4)):
                del recent[k]
        self.on_write(key, rev, obj)

    # ---- encryption at rest -------------------------------------------------------------

    def _transformer(self, res: Resource) -> ResourceTransformer | None:
        if res.plural not in self._sealed_plurals:
            return None
        return self.sealed.get(res.group_plural)

    def _load(self, res: Resource, kv: KeyValue) -> dict[str, Any]:
        """decode_kv, opening sealed values."""
        t = self._transformer(res)
        return decode_kv(kv) if t is None else _open(t, kv)

    def _stale(self, res: Resource, kv: KeyValue) -> bool:
        """The stored value is not sealed the way this server would write it now."""
        t = self._transformer(res)
        return t is not None and t.is_stale(kv.value)

    def _dump(self, res: Resource, key: str, obj: dict[str, Any]) -> bytes:
        """encode, sealing the resources the encryption configuration names."""
        data = encode(obj)
        t = self._transformer(res)
        return data if t is None else t.to_store(key, data)

    # ---- reads -------------------------------------------------------------------------

    async def get(self, res: Resource, ns: str | None, name: str) -> dict[str, Any]:
        kv = await call_store(self.store.get(res.key(ns, name)))
        if kv is None:
            raise errors.not_found(res.plural, name, res.group)
        return self._load(res, kv)

    async def list(
        self,
        res: Resource,
        ns: str | None,
        *,
        labels: LabelSelector | None = None,
        fields: FieldSelector | None = None,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> tuple[list[dict[str, Any]], str, str]:
        """Matching objects sorted by key, the list's resourceVersion, and a continue token."""
        prefix = res.key_prefix(ns)
        start = prefix
        list_rv = ""
        if continue_token:
            start, list_rv = _decode_continue(continue_token, prefix)
        items: list[dict[str, Any]] = []
        batch = max(limit * 2, 500) if (labels or fields) else (limit + 1 if limit else 0)
        next_key = ""
        while True:
            kvs, rev = await call_store(self.store.list(prefix, start_key=start, limit=batch))
            if not list_rv:
                list_rv = str(rev)
            for kv in kvs:
                if limit and len(items) == limit:
                    next_key = kv.key
                    break
                obj = self._load(res, kv)
                if labels is not None and not labels.matches(obj["metadata"].get("labels") or {}):
                    continue
                if fields is not None and not fields.matches(obj):
                    continue
                items.append(obj)
            if next_key or not batch or len(kvs) < batch:
                break
            start = kvs[-1].key + "\x00"
        cont = _encode_continue(next_key, list_rv, prefix) if next_key else ""
        return items, list_rv, cont

    # ---- create ------------------------------------------------------------------------

    async def create(
        self, res: Resource, ns: str | None, obj: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        m = meta(obj)
        if res.namespaced:
            m["namespace"] = ns
        else:
            m.pop("namespace", None)
        generated = False
        if not m.get("name"):
            gen = m.get("generateName")
            if gen and isinstance(gen, str):
                m["name"] = generated_name(gen)
                generated = True
            else:
                raise _kind_err(res, "", [errors.required("metadata.name", "name or generateName is required")])
        name = m["name"]
        if m.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        if res.namespaced:
            self._check_namespace_open(res, ns or "", name)
        m["uid"] = new_uid()
        m["creationTimestamp"] = now_rfc3339()
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
            m.pop(k, None)
        if res.has_spec:
            m["generation"] = 1
        res.strategy.prepare_for_create(res, obj)
        res.strategy.default(res, obj)
        req = admission.Request(admission.CREATE, res, ns, name, obj, dry_run=dry_run)
        await self.admission.mutate(req)
        errs = validate(res, obj)
        if errs:
            raise _kind_err(res, name, errs)
        if dry_run:
            return obj
        await self.admission.validate(req)
        attempts = 8 if generated else 1
        try:
            for attempt in range(attempts):
                try:
                    key = res.key(ns, name)
                    rev = await call_store(self.store.create(key, self._dump(res, key, obj)))
                    break
                except KeyExistsError as exc:
                    if attempt + 1 == attempts:
                        await req.failed()
                        raise errors.already_exists(res.plural, name, res.group) from exc
                    # A generated name collided (27^5 suffixes): draw another, as Kubernetes does.
                    name = m["name"] = generated_name(m["generateName"])
        except APIError:
            raise  # a store that did not answer in time may have written it: keep what it holds
        except BaseException:
            await req.failed()
            raise
        await req.succeeded()
        m["resourceVersion"] = str(rev)
        self._written(res.key(ns, name), rev, obj)
        return obj

    def _check_namespace_open(self, res: Resource, ns: str, name: str) -> None:
        phase = self.namespaces.phase.get(ns)
        if phase is None:
            raise errors.not_found("namespaces", ns)
        if phase == "Terminating":
            raise errors.forbidden_request(
                f'{res.plural} "{name}" is forbidden: unable to create new content in namespace '
                f"{ns} because it is being terminated"
            )

    # ---- update ------------------------------------------------------------------------

    async def update(
        self,
        res: Resource,
        ns: str | None,
        name: str,
        new: dict[str, Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PUT: replace the object; a stale resourceVersion is a 409 Conflict."""
        m = meta(new)
        if m.get("name") not in (None, name):
            raise errors.bad_request(
                f"the name of the object ({m.get('name')}) does not match the name on the URL ({name})"
            )
        kv = await call_store(self.store.get(res.key(ns, name)))
        if kv is None:
            raise errors.not_found(res.plural, name, res.group)
        old = self._load(res, kv)
        rv = m.get("resourceVersion")
        if rv and str(rv) != old["metadata"]["resourceVersion"]:
            raise errors.conflict(res.plural, name, res.group)
        return await self._commit_update(res, ns, name, old, new, subresource, dry_run, kv.mod_revision,
                                         stale=self._stale(res, kv))

    async def mutate(
        self,
        res: Resource,
        ns: str | None,
        name: str,
        fn: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        fn_copies: bool = False,
    ) -> dict[str, Any]:
        """Read-modify-write with retries on conflict (patch, scale, binding). ``fn`` gets a
        private copy of the current object and returns the desired one; it may raise APIError.
        If ``fn`` sets a resourceVersion different from the current one, that is a conflict.
        ``fn_copies``: fn never modifies its argument (a patch builds a new object), so the
        deep copy can be skipped."""
        key = res.key(ns, name)
        for attempt in range(MAX_RETRIES):
            # The first attempt may start from the object this server wrote last. The
            # store's compare-and-swap catches a stale one; any other outcome computed from
            # it (an error, a no-op) is checked again against a store read, so answers are
            # exactly those of a store read.
            cached = self._recent.get(key) if attempt == 0 and not dry_run else None
            stale = False  # what this server wrote is sealed with its current key
            if cached is not None:
                expected, old = cached
            else:
                kv = await call_store(self.store.get(key))
                if kv is None:
                    raise errors.not_found(res.plural, name, res.group)
                expected, old = kv.mod_revision, self._load(res, kv)
                stale = self._stale(res, kv)
            # fn sees the object without its resourceVersion: one in its result was put
            # there by the client (a patch that sets it), which makes it a precondition.
            if fn_copies:
                current = dict(old, metadata={k: v for k, v in old["metadata"].items() if k != "resourceVersion"})
            else:
                current = json_copy(old)
                current["metadata"].pop("resourceVersion", None)
            try:
                new = fn(current)
            except APIError:
                if cached is not None:
                    continue
                raise
            rv = meta(new).get("resourceVersion")
            if rv and str(rv) != old["metadata"]["resourceVersion"]:
                if cached is not None:
                    continue
                raise errors.conflict(res.plural, name, res.group)
            try:
                out = await self._commit_update(res, ns, name, old, new, subresource, dry_run, expected,
                                                stale=stale)
            except APIError as exc:
                if cached is not None or (exc.code == 409 and exc.reason == "Conflict" and not rv):
                    continue
                raise
            if cached is not None and out is old:
                continue  # a no-op against what may be an old copy: ask the store
            return out
        raise errors.conflict(res.plural, name, res.group, "too many concurrent updates; try again")

    async def _commit_update(
        self,
        res: Resource,
        ns: str | None,
        name: str,
        old: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
        dry_run: bool,
        expected: int,
        *,
        stale: bool = False,
    ) -> dict[str, Any]:
        """``stale``: the stored value is sealed with a key other than the one that writes now
        (or not at all): an unchanged object is written anyway, which is how rewriting every
        Secret after a key rotation re-encrypts them, as in Kubernetes."""
        new = _merge_for_update(res, old, new, subresource)
        strategy = res.strategy
        if subresource is None:
            apply_update_defaults(res, new, old)
        if subresource in (None, "scale"):
            strategy.default(res, new)
        strategy.canonicalize(new)
        # status, binding and finalize writes carry the stored (valid) spec and metadata
        # unchanged: validating the whole object again would be the most expensive part of
        # every status report and binding, for nothing.
        errs = validate(res, new) if subresource in (None, "scale") else []
        if not errs and subresource in (None, "scale"):
            errs = validate_update(res, new, old)
        if errs:
            raise _kind_err(res, name, errs)
        om, nm = old["metadata"], new["metadata"]
        if res.has_spec and subresource in (None, "scale") and new.get("spec") != old.get("spec"):
            nm["generation"] = int(om.get("generation") or 1) + 1
        if _same(old, new) and not stale:
            return old  # a no-op update writes nothing and keeps the resourceVersion
        if dry_run:
            return new
        key = res.key(ns, name)
        if _deletion_due(res, new):
            # The last finalizer was removed from an object being deleted: it goes away now.
            try:
                deleted = await call_store(self.store.delete(key, expected))
            except ConflictError as exc:
                raise errors.conflict(res.plural, name, res.group) from exc
            except NotFoundError as exc:
                raise errors.not_found(res.plural, name, res.group) from exc
            new["metadata"]["resourceVersion"] = str(deleted.mod_revision)
            self._recent.pop(key, None)
            return new
        req = admission.Request(admission.UPDATE, res, ns, name, new, old, subresource)
        await self.admission.validate(req)
        try:
            rev = await call_store(self.store.update(key, self._dump(res, key, new), expected))
        except ConflictError as exc:
            await req.failed()
            raise errors.conflict(res.plural, name, res.group) from exc
        except NotFoundError as exc:
            await req.failed()
            raise errors.not_found(res.plural, name, res.group) from exc
        except BaseException:
            await req.failed()
            raise
        await req.succeeded()
        nm["resourceVersion"] = str(rev)
        self._written(key, rev, new)
        return new

    # ---- delete ------------------------------------------------------------------------

    async def delete(
        self,
        res: Resource,
        ns: str | None,
        name: str,
        *,
        options: dict[str, Any],
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Delete (or start deleting) an object. Returns the object and whether it is gone.

        Objects with finalizers, Foreground/Orphan propagation, and pods on a node with a
        grace period are marked with a deletionTimestamp instead: whoever owns the
        finalizer (or the node agent, for pods) finishes the job."""
        for _ in range(MAX_RETRIES):
            kv = await call_store(self.store.get(res.key(ns, name)))
            if kv is None:
                raise errors.not_found(res.plural, name, res.group)
            obj = self._load(res, kv)
            m = obj["metadata"]
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != m.get("uid"):
                raise errors.conflict(
                    res.plural, name, res.group,
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {m.get('uid')}",
                )
            if pre.get("resourceVersion") and str(pre["resourceVersion"]) != m["resourceVersion"]:
                raise errors.conflict(
                    res.plural, name, res.group,
                    f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                    f"ResourceVersion in object meta: {m['resourceVersion']}",
                )
            updated = _mark_for_deletion(res, obj, options)
            if dry_run:
                return (updated or obj), updated is None
            if updated is not None and updated == obj:
                return obj, False  # already being deleted as asked
            try:
                if updated is not None:
                    rev = await call_store(self.store.update(kv.key, self._dump(res, kv.key, updated),
                                                             kv.mod_revision))
                    updated["metadata"]["resourceVersion"] = str(rev)
                    self._recent.pop(kv.key, None)
                    return updated, False
                req = admission.Request(admission.DELETE, res, ns, name, obj)
                await self.admission.validate(req)
                deleted = await call_store(self.store.delete(kv.key, kv.mod_revision))
            except ConflictError:
                continue
            except NotFoundError as exc:
                raise errors.not_found(res.plural, name, res.group) from exc
            obj["metadata"]["resourceVersion"] = str(deleted.mod_revision)
            self._recent.pop(kv.key, None)
            self.on_write(kv.key, deleted.mod_revision, obj)
            await req.succeeded()
            return obj, True
        raise errors.conflict(res.plural, name, res.group, "too many concurrent updates; try again")


# ---- helpers ---------------------------------------------------------------------------


def _open(t: ResourceTransformer, kv: KeyValue) -> dict[str, Any]:
    """A sealed value as an object; a key that cannot open it is a 500 naming both keys
    (the fix is in the encryption configuration), never an empty object."""
    try:
        plain = t.from_store(kv.key, kv.value)
    except DecryptError as exc:
        raise errors.internal(str(exc)) from exc
    return decode(plain, kv.mod_revision)


_SERVER_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")


def _merge_for_update(
    res: Resource, old: dict[str, Any], new: dict[str, Any], subresource: str | None
) -> dict[str, Any]:
    """Apply the status/spec split and keep server-owned metadata from the stored object."""
    if subresource in ("scale", "binding", "finalize"):
        return new  # built by the subresource handler from the stored object itself
    if subresource == "status":
        # Shallow: only metadata (resourceVersion is set on it) and status (new's own)
        # differ from the stored object, whose other parts are never modified in place.
        out = dict(old)
        out["metadata"] = dict(old["metadata"])
        if "status" in new:
            out["status"] = new["status"]
        else:
            out.pop("status", None)
        return out
    nm = meta(new)
    om = old["metadata"]
    for k in _SERVER_META:
        if k in om:
            nm[k] = om[k]
        else:
            nm.pop(k, None)
    nm["name"] = om["name"]
    if res.namespaced:
        nm["namespace"] = om.get("namespace")
    nm.pop("managedFields", None)
    new["apiVersion"] = res.api_version
    new["kind"] = res.kind
    if "status" in res.subresources and subresource is None:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
    if om.get("deletionTimestamp"):
        # Finalizers may only be removed from an object being deleted, never added.
        old_f = set(om.get("finalizers") or [])
        nm["finalizers"] = [f for f in (nm.get("finalizers") or []) if f in old_f] or None
        if nm["finalizers"] is None:
            nm.pop("finalizers")
    return new


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    am = {k: v for k, v in a["metadata"].items() if k != "resourceVersion"}
    bm = {k: v for k, v in b["metadata"].items() if k != "resourceVersion"}
    if am != bm:
        return False
    return {k: v for k, v in a.items() if k != "metadata"} == {k: v for k, v in b.items() if k != "metadata"}


def _deletion_due(res: Resource, obj: dict[str, Any]) -> bool:
    """An object whose finalizers are all gone is removed, unless its kind still holds it
    (a pod in its grace period on a node: the node agent deletes it once its containers
    are stopped)."""
    m = obj["metadata"]
    if not m.get("deletionTimestamp") or m.get("finalizers"):
        return False
    return not res.strategy.holds_deletion(obj)


def _mark_for_deletion(res: Resource, obj: dict[str, Any], options: dict[str, Any]) -> dict[str, Any] | None:
    """The object to write instead of deleting it now, or None to delete now: the finalizer
    the propagation policy asks for is added, and the kind's strategy decides the rest."""
    finalizers = list(obj["metadata"].get("finalizers") or [])
    policy = options.get("propagationPolicy")
    if policy is None and options.get("orphanDependents") is True:
        policy = "Orphan"
    if policy == "Orphan" and "orphan" not in finalizers:
        finalizers.append("orphan")
    elif policy == "Foreground" and "foregroundDeletion" not in finalizers:
        finalizers.append("foregroundDeletion")
    return res.strategy.mark_for_deletion(obj, finalizers, options)


def _encode_continue(next_key: str, rv: str, prefix: str) -> str:
    tok = {"v": "meta.k8s.io/v1", "rv": int(rv), "start": next_key[len(prefix):]}
    return base64.urlsafe_b64encode(orjson.dumps(tok)).decode().rstrip("=")


def _decode_continue(token: str, prefix: str) -> tuple[str, str]:
    try:
        pad = "=" * (-len(token) % 4)
        tok = orjson.loads(base64.urlsafe_b64decode(token + pad))
        start = str(tok["start"])
        rv = str(int(tok["rv"]))
    except Exception as exc:
        raise errors.bad_request(f"continue key is not valid: {token!r}") from exc
    if ".." in start or start.startswith("/"):
        raise errors.bad_request("continue key is not valid: it points outside the listed resource")
    return prefix + start, rv
