"""Kubernetes object semantics on top of the key-value store, the same for every kind.

Every write goes through here, whatever the transport (HTTP or in-process): server-set
metadata, then the kind's strategy (:mod:`bosun.api.strategy`) and the admission chain
(:mod:`bosun.api.admission`) in the order :mod:`bosun.api.pipeline` lists, then
compare-and-swap on the store, status/spec separation, generation, finalizers
(:mod:`bosun.api.lifecycle`), encryption at rest (:mod:`bosun.api.sealing`) and list pages
(:mod:`bosun.api.continuetoken`). Nothing here names a kind.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bosun.api import admission, continuetoken, errors, fieldmanager, lifecycle
from bosun.api.allocators import ServiceAllocator
from bosun.api.defaults import apply_update_defaults
from bosun.api.errors import APIError, FieldError
from bosun.api.nstracker import NamespaceTracker
from bosun.api.objects import (
    generated_name,
    json_copy,
    meta,
    new_uid,
    now_rfc3339,
)
from bosun.api.patch.schema import schema_for as patch_schema_for
from bosun.api.registry import Resource
from bosun.api.sealing import Sealer
from bosun.api.selectors import FieldSelector, LabelSelector
from bosun.api.storecall import call_store
from bosun.api.validation import validate, validate_update
from bosun.store.base import (
    ConflictError,
    KeyExistsError,
    KeyValue,
    NotFoundError,
    Store,
)

if TYPE_CHECKING:
    from bosun.security.encryption import ResourceTransformer
    from bosun.security.identity import User

# Guaranteed-update retries (patch, scale, binding) before giving up with 409.
MAX_RETRIES = 20
# Objects this server wrote last, kept for the next read-modify-write of the same key.
RECENT_MAX = 20000


def _at_version(res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as read at ``res``'s version (a copy when it was written at another)."""
    return obj if obj.get("apiVersion") == res.api_version else dict(obj, apiVersion=res.api_version)


def _kind_err(res: Resource, name: str, errs: list[FieldError]) -> APIError:
    return errors.invalid_object(res.kind, name, errs, res.group)


class Storage:
    """Create/get/list/update/patch/delete with Kubernetes semantics."""

    def __init__(
        self, store: Store, namespaces: NamespaceTracker,
        sealed: dict[str, ResourceTransformer] | None = None,
        services: ServiceAllocator | None = None, toleration_seconds: int = 300,
        webhooks: admission.Webhooks | None = None,
    ) -> None:
        self.store = store
        self.namespaces = namespaces
        # Encryption at rest of the resources the configuration names (Secrets).
        self.sealer = Sealer(sealed or {})
        self._stale, self._dump = self.sealer.stale, self.sealer.dump
        # The admission plugins every write passes (their reads go through this storage).
        # The ValidatingAdmissionPolicies the chain enforces, kept from the watch cache once
        # the app starts them; who may approve and sign certificate requests, the server's
        # authorizer once the access control exists.
        self.policies = admission.Policies()
        self.signers = admission.SignerAccess()
        self.admission = admission.standard_chain(self, services or ServiceAllocator(store), toleration_seconds,
                                                  webhooks, policies=self.policies, signers=self.signers)
        # Told about every object written (key, revision, object): the watch cache uses it
        # to skip decoding its own writes.
        self.on_write: Callable[[str, int, dict[str, Any]], None] = lambda key, rev, obj: None
        # Told about every create and update about to be handed to the store (key, value,
        # object): its event may come before the write returns.
        self.on_writing: Callable[[str, bytes, dict[str, Any]], None] = lambda key, value, obj: None
        # key -> (revision, object as stored, shared read-only): a pod's binding and status
        # writes follow its create within seconds, so mutate usually starts from here
        # instead of a store read and a decode. Never trusted alone: see mutate.
        self._recent: dict[str, tuple[int, dict[str, Any]]] = {}

    def _load(self, res: Resource, kv: KeyValue) -> dict[str, Any]:
        obj = self.sealer.load(res, kv)
        if obj.get("apiVersion") != res.api_version:
            # A custom resource written at another of its versions: with ``conversion:
            # None`` an object is read at any served version by its apiVersion alone.
            obj["apiVersion"] = res.api_version
        return obj

    def _written(self, key: str, rev: int, obj: dict[str, Any]) -> None:
        recent = self._recent
        recent.pop(key, None)  # re-inserted last: the dict's order is the eviction order
        recent[key] = (rev, obj)
        if len(recent) > RECENT_MAX:
            for k in list(itertools.islice(recent, RECENT_MAX // 4)):
                del recent[k]
        self.on_write(key, rev, obj)

    # ---- reads -------------------------------------------------------------------------

    async def get(self, res: Resource, ns: str | None, name: str) -> dict[str, Any]:
        kv = await call_store(self.store.get(res.key(ns, name)))
        if kv is None:
            raise errors.not_found(res.plural, name, res.group)
        return self._load(res, kv)

    async def get_shared(self, res: Resource, ns: str | None, name: str) -> dict[str, Any]:
        """:meth:`get` for a caller that only reads and sends the object: the object this
        server wrote last for the key, when the store still holds that very revision, is
        returned as it is (shared read-only, as with the watch cache) instead of decoding
        the stored value again; any other answer is a fresh decode, as from :meth:`get`."""
        key = res.key(ns, name)
        kv = await call_store(self.store.get(key))
        if kv is None:
            raise errors.not_found(res.plural, name, res.group)
        cached = self._recent.get(key)
        if cached is not None and cached[0] == kv.mod_revision:
            return _at_version(res, cached[1])
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
        """Matching objects sorted by key, the list's resourceVersion, and a continue token,
        read from the store. API lists are served by the watch cache (:mod:`bosun.api.cachedlist`);
        this is their fallback and the server's own reads' path."""
        prefix = res.key_prefix(ns)
        start = prefix
        list_rv = ""
        if continue_token:
            start, list_rv = continuetoken.decode(continue_token, prefix)
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
        cont = continuetoken.encode(next_key, list_rv, prefix) if next_key else ""
        return items, list_rv, cont

    # ---- create ------------------------------------------------------------------------

    async def create(
        self, res: Resource, ns: str | None, obj: dict[str, Any], *, dry_run: bool = False,
        user: User | None = None, manager: str | None = None, applied: bool = False,
    ) -> dict[str, Any]:
        """Create an object; ``user`` (who asks) is told to the admission plugins; ``manager``
        becomes the owner of every field (``managedFields``), unless ``applied``: the object
        is the result of a server-side apply and carries its managedFields already."""
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
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            m.pop(k, None)
        if not applied:
            m.pop("managedFields", None)
        if res.has_spec:
            m["generation"] = 1
        res.strategy.prepare_for_create(res, obj, user)
        res.strategy.default(res, obj)
        req = admission.Request(admission.CREATE, res, ns, name, obj, dry_run=dry_run, user=user)
        await self.admission.mutate(req)
        m = meta(obj)  # a webhook's patch may have replaced it
        errs = validate(res, obj)
        if errs:
            raise _kind_err(res, name, errs)
        if manager is not None:
            fieldmanager.track_update(None, obj, patch_schema_for(res.group, res.kind), manager)
        await self.admission.validate(req)
        if dry_run:
            await req.failed()  # nothing is written: what was reserved goes back
            return obj
        attempts = 8 if generated else 1
        try:
            for attempt in range(attempts):
                try:
                    key = res.key(ns, name)
                    value = self._dump(res, key, obj)
                    self.on_writing(key, value, obj)
                    rev = await call_store(self.store.create(key, value))
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
        manager: str | None = None,
        user: User | None = None,
    ) -> dict[str, Any]:
        """PUT: replace the object; a stale resourceVersion is a 409 Conflict; ``manager``
        takes over the fields the write changes; ``user`` (who asks) is told to admission."""
        m = meta(new)
        if m.get("name") not in (None, name):
            raise errors.bad_request(
                f"the name of the object ({m.get('name')}) does not match the name on the URL ({name})"
            )
        key = res.key(ns, name)
        rv = m.get("resourceVersion")
        cached = self._recent.get(key) if rv and not dry_run else None
        if cached is not None and str(rv) == str(cached[0]) and cached[1].get("apiVersion") == res.api_version:
            return await self._update_from_recent(res, ns, name, cached, new, subresource, manager, user)
        kv = await call_store(self.store.get(key))
        if kv is None:
            raise errors.not_found(res.plural, name, res.group)
        old = self._load(res, kv)
        if rv and str(rv) != old["metadata"]["resourceVersion"]:
            raise errors.conflict(res.plural, name, res.group)
        return await self._commit_update(res, ns, name, old, new, subresource, dry_run, kv.mod_revision,
                                         stale=self._stale(res, kv), manager=manager, user=user)

    async def _update_from_recent(
        self, res: Resource, ns: str | None, name: str, cached: tuple[int, dict[str, Any]], new: dict[str, Any],
        subresource: str | None, manager: str | None, user: User | None,
    ) -> dict[str, Any]:
        """A PUT whose resourceVersion is that of the object this server wrote last: that
        object is the stored one unless someone wrote since, so the write starts from it
        instead of a store read and a decode. The compare-and-swap refuses it if someone
        did (409, which a store read would also have answered, the client's version being
        old then); any other outcome that writes nothing (an error, a no-op) is checked
        against the store's revision, so answers are exactly those of a store read."""
        expected, old = cached
        try:
            out = await self._commit_update(res, ns, name, old, new, subresource, False, expected, manager=manager,
                                            user=user)
        except APIError as exc:
            if exc.code < 500:  # a store that did not answer may have written it: say so as is
                await self._still_at(res, ns, name, expected)
            raise
        if out is old:
            await self._still_at(res, ns, name, expected)
        return out

    async def _still_at(self, res: Resource, ns: str | None, name: str, expected: int) -> None:
        """404 or 409 unless the object is still stored at revision ``expected``."""
        kv = await call_store(self.store.get(res.key(ns, name)))
        if kv is None:
            raise errors.not_found(res.plural, name, res.group)
        if kv.mod_revision != expected:
            raise errors.conflict(res.plural, name, res.group)

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
        manager: str | None = None,
        applied: bool = False,
        user: User | None = None,
    ) -> dict[str, Any]:
        """Read-modify-write with retries on conflict (patch, scale, binding). ``fn`` gets a
        private copy of the current object and returns the desired one; it may raise APIError.
        If ``fn`` sets a resourceVersion different from the current one, that is a conflict.
        ``fn_copies``: fn never modifies its argument (a patch builds a new object), so the
        deep copy can be skipped. ``manager`` takes over the fields the write changes;
        ``applied``: fn is a server-side apply, whose result carries its managedFields."""
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
            # fn sees the object with its resourceVersion (a JSON patch may ``test`` it, as
            # kopf's do, or ``replace`` it, as kubectl's does); a different one in its result
            # was put there by the client (a patch that sets it), which makes it a
            # precondition, checked on every attempt.
            current = dict(old, metadata=dict(old["metadata"])) if fn_copies else json_copy(old)
            if current.get("apiVersion") != res.api_version:
                current["apiVersion"] = res.api_version  # written last at another version (see _load)
            try:
                new = fn(current)
            except APIError:
                if cached is not None:
                    continue
                raise
            rv = meta(new).get("resourceVersion")
            if rv == "":
                meta(new).pop("resourceVersion")
            if rv and str(rv) != old["metadata"]["resourceVersion"]:
                if cached is not None:
                    continue
                raise errors.conflict(res.plural, name, res.group)
            try:
                out = await self._commit_update(res, ns, name, old, new, subresource, dry_run, expected,
                                                stale=stale, manager=manager, applied=applied, user=user)
            except APIError as exc:
                # A precondition the client set is checked against the next read: a
                # lost compare-and-swap is retried either way.
                if cached is not None or (exc.code == 409 and exc.reason == "Conflict"):
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
        manager: str | None = None,
        applied: bool = False,
        user: User | None = None,
    ) -> dict[str, Any]:
        """``stale``: the stored value is sealed with a key other than the one that writes now
        (or not at all): an unchanged object is written anyway, which is how rewriting every
        Secret after a key rotation re-encrypts them, as in Kubernetes."""
        sent_fields = meta(new).get("managedFields")
        new = lifecycle.merge_for_update(res, old, new, subresource)
        strategy = res.strategy
        if subresource is None:
            apply_update_defaults(res, new, old)
        if subresource in (None, "scale"):
            strategy.default(res, new)
        strategy.canonicalize(new)
        req = admission.Request(admission.UPDATE, res, ns, name, new, old, subresource, dry_run=dry_run, user=user)
        await self.admission.mutate(req)
        # status, binding and finalize writes carry the stored (valid) spec and metadata
        # unchanged: validating the whole object again would be the most expensive part of
        # every status report and binding, for nothing.
        if subresource in (None, "scale"):
            errs = validate(res, new) or validate_update(res, new, old)
        else:
            errs = strategy.validate_subresource(subresource, new, old)
        if errs:
            raise _kind_err(res, name, errs)
        om, nm = old["metadata"], new["metadata"]
        if applied and sent_fields:
            nm["managedFields"] = sent_fields
        elif manager is not None:
            fieldmanager.track_update(old, new, patch_schema_for(res.group, res.kind), manager, subresource or "",
                                      sent=sent_fields)
        if subresource in (None, "scale") and strategy.bumps_generation(res, new, old):
            nm["generation"] = int(om.get("generation") or 1) + 1
        if lifecycle.same(old, new) and not stale:
            # A no-op update writes nothing and keeps the resourceVersion, but is admitted
            # first, as upstream's store finds it unchanged only after admission: a webhook
            # or policy may refuse it, and sees it.
            await self.admission.validate(req)
            await req.failed()  # what a plugin reserved goes back: nothing changed
            return old
        if dry_run:
            await self.admission.validate(req)
            await req.failed()  # nothing is written: what was reserved goes back
            return new
        key = res.key(ns, name)
        if lifecycle.deletion_due(res, new):
            # The last finalizer was removed from an object being deleted: it goes away now,
            # through the same admission as a delete (a Service's addresses are released).
            gone = admission.Request(admission.DELETE, res, ns, name, new, user=user, finalizing=True)
            await self.admission.validate(gone)
            try:
                deleted = await call_store(self.store.delete(key, expected))
            except ConflictError as exc:
                raise errors.conflict(res.plural, name, res.group) from exc
            except NotFoundError as exc:
                raise errors.not_found(res.plural, name, res.group) from exc
            new["metadata"]["resourceVersion"] = str(deleted.mod_revision)
            self._recent.pop(key, None)
            await gone.succeeded()
            return new
        await self.admission.validate(req)
        try:
            value = self._dump(res, key, new)
            self.on_writing(key, value, new)
            rev = await call_store(self.store.update(key, value, expected))
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
        user: User | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Delete (or start deleting) an object. Returns the object and whether it is gone.

        Objects with finalizers, Foreground/Orphan propagation, and pods on a node with a
        grace period are marked with a deletionTimestamp instead: whoever owns the
        finalizer (or the node agent, for pods) finishes the job."""
        for _ in range(MAX_RETRIES):
            kv = await call_store(self.store.get(res.key(ns, name)))
            if kv is None:
                raise errors.not_found(res.plural, name, res.group)
            obj = self.sealer.load(res, kv)  # as stored: it is handed to the watch cache below
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
            updated = lifecycle.mark_for_deletion(res, obj, options)
            req = admission.Request(admission.DELETE, res, ns, name, obj, dry_run=dry_run, user=user)
            await self.admission.mutate(req)  # a mutating webhook may refuse it (it has nothing to change)
            if dry_run or updated is not None:
                # Nothing goes now: admission is asked all the same (a webhook may refuse the
                # deletion), and what the removal would release stays held.
                await self.admission.validate(req)
                await req.failed()
            if dry_run:
                return _at_version(res, updated or obj), updated is None
            if updated is not None and updated == obj:
                return _at_version(res, obj), False  # already being deleted as asked
            try:
                if updated is not None:
                    rev = await call_store(self.store.update(kv.key, self._dump(res, kv.key, updated),
                                                             kv.mod_revision))
                    updated["metadata"]["resourceVersion"] = str(rev)
                    self._recent.pop(kv.key, None)
                    return _at_version(res, updated), False
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
            return _at_version(res, obj), True
        raise errors.conflict(res.plural, name, res.group, "too many concurrent updates; try again")
