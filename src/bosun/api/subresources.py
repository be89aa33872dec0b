"""Subresources: status, scale, binding, eviction, token, namespace finalize, log, exec, a
pod's ephemeralcontainers.

Each subresource has one entry here: :func:`handle` for its own path, and :func:`create` for
a resource whose creation is a subresource write (a Binding is a pod's binding).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bosun.api import errors, eviction, exec_proxy, tokenrequest
from bosun.api.handler import Serving
from bosun.api.httputil import dry_run, json_response, parse_object, patch_error, read_body
from bosun.api.objects import as_dict, now_rfc3339, parse_time
from bosun.api.patch import PatchError, apply_patch
from bosun.api.registry import Resource
from bosun.api.requestinfo import USER
from bosun.api.selectors import label_selector_text
from bosun.api.serversideapply import manager_of
from bosun.api.target import Target


async def handle(h: Serving, request: web.Request, t: Target) -> web.StreamResponse:
    m = request.method
    sub = t.sub
    assert t.name is not None
    if sub == "status":
        if m == "GET":
            return await h.get(request, t)
        if m == "PUT":
            return await h.update(request, t, sub="status")
        if m == "PATCH":
            return await h.patch(request, t, sub="status")
    elif sub in t.res.strategy.own_subresources:  # the kind's strategy decides what such a write may do
        if m == "GET":
            return await h.get(request, t)
        if m == "PUT":
            return await h.update(request, t, sub=sub)
        if m == "PATCH":
            return await h.patch(request, t, sub=sub)
    elif sub == "scale":
        if m == "GET":
            return json_response(scale_of(await h.storage.get(t.res, t.namespace, t.name), t.res))
        if m in ("PUT", "PATCH"):
            return await _write_scale(h, request, t)
    elif sub == "binding" and m == "POST":
        return await _bind(h, request, t)
    elif sub == "eviction" and m == "POST":
        return await _evict(h, request, t)
    elif sub == "token" and m == "POST":
        return await tokenrequest.create(h, request, t)
    elif sub == "finalize" and m == "PUT":
        return await _finalize(h, request, t)
    elif sub in ("exec", "attach"):
        return await exec_proxy.handle(h, request, t)
    elif sub == "portforward":
        return await exec_proxy.port_forward(h, request, t)
    elif sub == "log":
        return await _node_stream(h, request, t)
    raise errors.method_not_allowed(f"the server does not allow this method on the requested resource: {m}")


def _at(obj: Any, path: str) -> Any:
    """The value at a simple JSON path (``.spec.replicas``), None when absent."""
    for key in path.strip(".").split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _set_at(obj: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.strip(".").split(".")
    for key in parents:
        nxt = obj.get(key)
        if not isinstance(nxt, dict):
            nxt = obj[key] = {}
        obj = nxt
    obj[last] = value


def _scale_paths(res: Resource) -> tuple[str, str, str]:
    """Where a kind keeps its replicas and selector: a CRD names them (``subresources.scale``),
    the built-in workloads use spec.replicas and spec.selector."""
    return res.custom.scale_paths() if res.custom is not None else (".spec.replicas", ".status.replicas", "")


def scale_of(obj: dict[str, Any], res: Resource | None = None) -> dict[str, Any]:
    """The autoscaling/v1 Scale view of a workload (what `kubectl scale` and HPAs use)."""
    m = obj["metadata"]
    spec_path, status_path, selector_path = _scale_paths(res) if res is not None else (
        ".spec.replicas", ".status.replicas", "")
    selector = _at(obj, selector_path) if selector_path else _selector_string(_at(obj, ".spec.selector"))
    replicas, current = _at(obj, spec_path), _at(obj, status_path)
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in m},
        "spec": {"replicas": replicas if isinstance(replicas, int) else 0},
        "status": {"replicas": current if isinstance(current, int) else 0,
                   "selector": selector if isinstance(selector, str) else ""},
    }


async def _write_scale(h: Serving, request: web.Request, t: Target) -> web.Response:
    assert t.name is not None
    body = await read_body(request)
    is_patch = request.method == "PATCH"
    ctype = request.content_type
    new_scale: dict[str, Any] = {} if is_patch else parse_object(body, ctype)

    def fn(current: dict[str, Any]) -> dict[str, Any]:
        scale = scale_of(current, t.res)
        if is_patch:
            try:
                wanted = apply_patch(scale, body, ctype, t.res)
            except PatchError as exc:
                raise patch_error(exc) from exc
        else:
            wanted = new_scale
        replicas = (wanted.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise errors.invalid_object(
                "Scale", t.name or "", [errors.invalid("spec.replicas", replicas, "must be an integer")],
                "autoscaling",
            )
        if replicas < 0:
            raise errors.invalid_object(
                "Scale", t.name or "",
                [errors.invalid("spec.replicas", replicas, "must be greater than or equal to 0")], "autoscaling",
            )
        rv = (wanted.get("metadata") or {}).get("resourceVersion")
        _set_at(current, _scale_paths(t.res)[0], replicas)
        if rv:
            current["metadata"]["resourceVersion"] = rv
        return current

    out = await h.storage.mutate(t.res, t.namespace, t.name, fn, subresource="scale", dry_run=dry_run(request),
                                 manager=manager_of(request), user=request.get(USER))
    return json_response(scale_of(out, t.res))


async def create(h: Serving, request: web.Request, t: Target, body: dict[str, Any]) -> web.Response:
    """A subresource write made by creating another resource (its registry row's
    ``created_as``), with the body already read and checked."""
    if t.sub == "binding":
        return await _bind(h, request, t, body)
    raise errors.method_not_allowed(f"the server does not allow this method on the requested resource: "
                                    f"{request.method}")


async def _bind(h: Serving, request: web.Request, t: Target, binding: dict[str, Any] | None = None
                ) -> web.Response:
    """Assign a pod to a node (the scheduler's write). A pod is bound at most once."""
    assert t.name is not None
    if binding is None:
        binding = parse_object(await read_body(request), request.content_type)
    name, dry = t.name, dry_run(request)
    target = as_dict(binding.get("target"))
    node = target.get("name")
    if not node or not isinstance(node, str):
        raise errors.invalid_object("Binding", name, [errors.required("target.name")])
    if target.get("kind", "Node") != "Node":
        raise errors.invalid_object(
            "Binding", name, [errors.not_supported("target.kind", target.get("kind"), ["Node"])]
        )

    def fn(pod: dict[str, Any]) -> dict[str, Any]:
        # Builds a new object sharing the unchanged parts with ``pod`` (never modified):
        # the binding is the scheduler's write for every pod, a deep copy would dominate it.
        spec = as_dict(pod.get("spec"))
        if pod["metadata"].get("deletionTimestamp"):
            raise errors.conflict("pods", name, why="the pod is being deleted")
        current = spec.get("nodeName")
        if current:
            raise errors.conflict("pods", name, why=f'pod {name} is already assigned to node "{current}"')
        status = as_dict(pod.get("status"))
        conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": now_rfc3339()})
        return dict(pod, spec=dict(spec, nodeName=node), status=dict(status, conditions=conds))

    await h.storage.mutate(t.res, t.namespace, name, fn, subresource="binding", dry_run=dry, fn_copies=True,
                           user=request.get(USER))
    return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                          "code": 201}, status=201)


async def _evict(h: Serving, request: web.Request, t: Target) -> web.Response:
    """policy/v1 Eviction: a delete that honours the pod's grace period and its
    disruption budget (:mod:`bosun.api.eviction`)."""
    assert t.name is not None and t.namespace is not None
    body = await read_body(request)
    ev = parse_object(body, request.content_type) if body.strip() else {}
    options = as_dict(ev.get("deleteOptions"))
    await eviction.evict(h.storage, t.namespace, t.name, dict(options), dry_run(request))
    return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                          "code": 201}, status=201)


async def _finalize(h: Serving, request: web.Request, t: Target) -> web.Response:
    assert t.name is not None
    new = parse_object(await read_body(request), request.content_type)
    wanted = (new.get("spec") or {}).get("finalizers") or []

    def fn(ns: dict[str, Any]) -> dict[str, Any]:
        ns.setdefault("spec", {})["finalizers"] = list(wanted)
        if not wanted:
            ns["spec"].pop("finalizers")
        return ns

    out = await h.storage.mutate(t.res, None, t.name, fn, subresource="finalize", dry_run=dry_run(request),
                                 user=request.get(USER))
    return json_response(out)


async def _node_stream(h: Serving, request: web.Request, t: Target) -> web.StreamResponse:
    """Logs are served by the node agent that runs the pod; the API server proxies them, as
    kube-apiserver does to the kubelet."""
    assert t.name is not None
    pod = await h.storage.get(t.res, t.namespace, t.name)
    spec = as_dict(pod.get("spec"))
    node_name = spec.get("nodeName")
    if not node_name:
        raise errors.bad_request(f"pod {t.name} does not have a host assigned")
    names = [c.get("name") for c in spec.get("containers") or [] if isinstance(c, dict)]
    inits = [c.get("name") for c in spec.get("initContainers") or [] if isinstance(c, dict)]
    debug = [c.get("name") for c in spec.get("ephemeralContainers") or [] if isinstance(c, dict)]
    container = request.query.get("container") or ""
    if not container:
        if len(names) != 1:
            raise errors.bad_request(
                f"a container name must be specified for pod {t.name}, choose one of: [{' '.join(map(str, names))}]"
                + (f" or one of the init containers: [{' '.join(map(str, inits))}]" if inits else "")
            )
        container = str(names[0])
    elif container not in names and container not in inits and container not in debug:
        raise errors.bad_request(f"container {container} is not valid for pod {t.name}")
    since_time = request.query.get("sinceTime")
    if since_time is not None:
        if request.query.get("sinceSeconds"):
            raise errors.bad_request("at most one of `sinceTime` or `sinceSeconds` may be specified")
        try:
            parse_time(since_time)
        except ValueError:
            raise errors.bad_request(f'sinceTime: Invalid value: "{since_time}": must be an RFC 3339 time') from None
    base = await exec_proxy.agent_base_url(h, pod, t.name)
    params = {k: v for k, v in request.query.items()
              if k in ("follow", "tailLines", "sinceSeconds", "sinceTime", "timestamps", "previous", "limitBytes")}
    url = f"{base}/containerLogs/{t.namespace}/{t.name}/{container}"
    return await h.proxy_stream(request, url, params)


def _selector_string(sel: Any) -> str:
    """metav1.LabelSelector in the string form `kubectl` and HPAs read from Scale.status
    (a ReplicationController's plain map of labels too)."""
    if not isinstance(sel, dict):
        return ""
    if "matchLabels" not in sel and "matchExpressions" not in sel:
        return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))
    return label_selector_text(sel)
