"""The API request pipeline: every request, for every kind, in this order.

Follow a request down the table; each stage is one module (or one small package) with one
job, and nothing after stage 2 names a kind except the kind's own strategy and the
admission plugins that concern it.

== ======================= ========================================================== ====== ==========================
#  stage                   what happens                                               errors where (bosun.api.*)
== ======================= ========================================================== ====== ==========================
1  transport               HTTPS (aiohttp) or, for the server's own components, the          app, local,
                           in-process dispatcher; request metrics                              instrumentation
2  decode target           method + path + query, once, into group, version,          404    target
                           resource, namespace, name, subresource and verb
3  authenticate            bearer token or client certificate -> user; then API       401,   access, apf
                           Priority and Fairness: the FlowSchemas classify the        429
                           request, its priority level gives it a seat, queues it
                           or refuses it (``Retry-After``)
4  authorize               RBAC and the node authorizer on the decoded target         403    access, requestinfo
5  route                   the verb on a collection, an object, a subresource or a    405    rest, subresources,
                           watch; streams (logs, exec) are proxied to the node agent         watch, exec_proxy
6  decode body             JSON, YAML or protobuf; kind and namespace match the URL;  400    httputil, protobuf,
                           schema: wrong types refused, unknown fields refused,              fieldvalidation,
                           warned about or dropped (``fieldValidation``);                    schema
                           quantities put in canonical form (``.5`` -> ``500m``)
7  server metadata         create: name or generateName, uid, creationTimestamp,      4xx    storage, lifecycle
                           generation; the namespace exists and is not terminating.
                           update: status/spec split, server-owned metadata kept,
                           resourceVersion precondition
8  prepare                 the kind's strategy: ``prepare_for_create`` (status reset)        strategy
                           or ``prepare_for_update`` (keep what the server allocated)
9  default                 the kind's strategy: ``default`` (Kubernetes' defaults)           strategy, defaults
10 mutating admission      ordered plugins that may change or refuse the object:      403    admission
                           NodeRestriction (a node creates only its own Node and
                           Lease), ServiceAccount (default account, token
                           volume), Priority, DefaultTolerationSeconds,
                           DefaultStorageClass, LimitRanger (container defaults),
                           RuntimeClass; then the mutating admission webhooks
                           (JSONPatch), called over HTTPS
11 validate                the kind's strategy: ``validate`` and, on update,          422    strategy, validation
                           ``validate_update`` (fields that may not change)
12 validating admission    ordered plugins that may refuse the write or reserve what  403,   admission
                           it needs: LimitRange bounds; a pod's ServiceAccount still  422
                           exists; Service cluster IP and
                           NodePort allocation (what they reserve is given back if
                           the write then fails);
                           approving and signing certificate requests (the
                           ``approve``/``sign`` verbs on their signer); then
                           ValidatingAdmissionPolicies (CEL), then the validating
                           admission webhooks (a dry run passes this stage too and
                           gives back what it reserved); warnings they give reach the
                           client as ``Warning`` headers; ResourceQuota last (charges
                           the quota's status.used by compare-and-swap)
13 store                   compare-and-swap create/update/delete, encryption at rest, 409,   storage, sealing,
                           a deadline on every store call                             503,   storecall
                                                                                      504
14 watch                   the write reaches every watcher from the watch cache              watchcache, watch
== ======================= ========================================================== ====== ==========================

Opening pods/exec, attach or portforward passes stages 1-5 and both admission phases of a
CONNECT (the webhooks that ask for it) before anything is proxied. An update that changes
nothing passes both admission phases too, then writes nothing.
A delete passes stages 1-5, then the deletion policy: the propagation policy's finalizer and
the kind's strategy (``mark_for_deletion``: grace period, finalizers, a namespace turning
Terminating) decide whether the object is marked or removed now (:mod:`bosun.api.lifecycle`);
a removal passes the admission (mutating webhooks may refuse it too) (which releases a Service's addresses once it is
gone) and the store. A list or get passes stages 1-5 and reads the store (encryption opened,
``continue`` tokens from :mod:`bosun.api.continuetoken`).

To add a kind: one row in :mod:`bosun.api.registry` naming its strategy (a
:class:`bosun.api.strategy.Strategy`, given its validator and defaulter, or a subclass for
rules of its own); discovery, OpenAPI, tables, storage and routing follow from the row.
Custom resources take the same path: each server's :mod:`bosun.api.catalog` holds the
registry's rows plus, for every Established CustomResourceDefinition, one row per served
version made at run time by :mod:`bosun.api.crd.controller`, whose strategy
(:class:`bosun.api.crd.version.CustomVersion`) prunes, defaults and validates by the CRD's
schema and CEL rules, and whose ``custom`` part gives decoding, OpenAPI, tables and scale
what the built-in kinds find in generated tables.
To add an admission rule: one plugin module in :mod:`bosun.api.admission` (the ``Plugin``
protocol) and its place in ``standard_chain``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stage:
    number: int
    name: str
    modules: tuple[str, ...]  # under bosun.api


# The table above as data, so a test keeps the two and the code in step.
STAGES: tuple[Stage, ...] = (
    Stage(1, "transport", ("app", "local", "instrumentation")),
    Stage(2, "decode target", ("target",)),
    Stage(3, "authenticate", ("access", "apf")),
    Stage(4, "authorize", ("access", "requestinfo")),
    Stage(5, "route", ("rest", "subresources", "watch", "exec_proxy")),
    Stage(6, "decode body", ("httputil", "protobuf", "fieldvalidation", "schema")),
    Stage(7, "server metadata", ("storage", "lifecycle")),
    Stage(8, "prepare", ("strategy",)),
    Stage(9, "default", ("strategy", "defaults")),
    Stage(10, "mutating admission", ("admission",)),
    Stage(11, "validate", ("strategy", "validation")),
    Stage(12, "validating admission", ("admission",)),
    Stage(13, "store", ("storage", "sealing", "storecall")),
    Stage(14, "watch", ("watchcache", "watch")),
)
