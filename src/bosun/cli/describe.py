"""``bosun describe``: a readable summary of objects and the events about them."""

from __future__ import annotations

from typing import Any

import click

from bosun.api.kinds import Kind, by_kind
from bosun.cli.common import CliState, api_error_line, fail, global_options, pass_state, resolve, run
from bosun.cli.describe_fmt import Out, events_block, generic
from bosun.cli.printers import age
from bosun.cli.threeway import LAST_APPLIED
from bosun.client.rest import ApiError, Client

JSON = dict[str, Any]


def _shown_annotations(meta: JSON) -> JSON:
    """Annotations minus last-applied, which repeats the manifest (kubectl hides it too)."""
    return {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}


def _meta(out: Out, obj: JSON, res: Kind) -> None:
    meta = obj.get("metadata") or {}
    out.kv("Name", meta.get("name"))
    if res.namespaced:
        out.kv("Namespace", meta.get("namespace"))
    out.kv("CreationTimestamp", meta.get("creationTimestamp"))
    out.mapping("Labels", meta.get("labels"))
    out.mapping("Annotations", _shown_annotations(meta), sep=": ")
    owners = meta.get("ownerReferences") or []
    ctrl = next((o for o in owners if o.get("controller")), None)
    if ctrl:
        out.kv("Controlled By", f"{ctrl.get('kind')}/{ctrl.get('name')}")


def _resources(out: Out, c: JSON, indent: int) -> None:
    r = c.get("resources") or {}
    for key in ("limits", "requests"):
        if r.get(key):
            out.head(key.capitalize(), indent)
            for k, v in sorted(r[key].items()):
                out.kv(k, v, indent + 1)


def _containers(
    out: Out, title: str, containers: list[JSON], statuses: list[JSON] | None, indent: int
) -> None:
    if not containers:
        return
    out.head(title, indent)
    by_name = {s.get("name"): s for s in statuses or []}
    for c in containers:
        out.head(str(c.get("name")), indent + 1)
        i = indent + 2
        st = by_name.get(c.get("name"))
        if st and st.get("containerID"):
            out.kv("Container ID", st.get("containerID"), i)
        out.kv("Image", c.get("image"), i)
        ports = [f"{p.get('containerPort')}/{p.get('protocol') or 'TCP'}" for p in c.get("ports") or []]
        out.kv("Port", ", ".join(ports) or "<none>", i)
        if c.get("command"):
            out.kv("Command", " ".join(map(str, c["command"])), i)
        if c.get("args"):
            out.kv("Args", " ".join(map(str, c["args"])), i)
        if st is not None:
            state = st.get("state") or {}
            for name, detail in state.items():
                out.kv("State", name.capitalize(), i)
                for k in ("reason", "exitCode", "startedAt", "finishedAt"):
                    if isinstance(detail, dict) and k in detail:
                        out.kv(k[:1].upper() + k[1:], detail[k], i + 1)
            out.kv("Ready", "True" if st.get("ready") else "False", i)
            out.kv("Restart Count", st.get("restartCount", 0), i)
        _resources(out, c, i)
        env = c.get("env") or []
        if env:
            out.head("Environment", i)
            for e in env:
                value = e.get("value")
                if value is None and e.get("valueFrom"):
                    value = f"<set from {next(iter(e['valueFrom']))}>"
                out.kv(str(e.get("name")), value if value is not None else "", i + 1)
        else:
            out.kv("Environment", "<none>", i)
        mounts = [f"{m.get('mountPath')} from {m.get('name')} ({'ro' if m.get('readOnly') else 'rw'})"
                  for m in c.get("volumeMounts") or []]
        out.kv("Mounts", "\n".join(mounts) if mounts else "<none>", i)


def _conditions(out: Out, conds: list[JSON]) -> None:
    if not conds:
        return
    out.head("Conditions")
    out.text("Type".ljust(28) + "Status".ljust(8) + "Reason", 1)
    out.text("----".ljust(28) + "------".ljust(8) + "------", 1)
    for c in conds:
        out.text(str(c.get("type", "")).ljust(28) + str(c.get("status", "")).ljust(8)
                 + str(c.get("reason") or ""), 1)


def describe_pod(out: Out, obj: JSON, res: Kind) -> None:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    _meta(out, obj, res)
    out.kv("Priority", spec.get("priority", 0))
    out.kv("Service Account", spec.get("serviceAccountName"))
    node = spec.get("nodeName")
    out.kv("Node", f"{node}/{status.get('hostIP')}" if node and status.get("hostIP") else node)
    out.kv("Start Time", status.get("startTime"))
    out.kv("Status", ((obj.get("metadata") or {}).get("deletionTimestamp") and "Terminating")
           or status.get("phase"))
    if status.get("reason"):
        out.kv("Reason", status.get("reason"))
    if status.get("message"):
        out.kv("Message", status.get("message"))
    out.kv("IP", status.get("podIP"))
    inits = spec.get("initContainers") or []
    _containers(out, "Init Containers", inits, status.get("initContainerStatuses"), 0)
    _containers(out, "Containers", spec.get("containers") or [], status.get("containerStatuses"), 0)
    _conditions(out, status.get("conditions") or [])
    vols = spec.get("volumes") or []
    if vols:
        out.head("Volumes")
        for v in vols:
            out.head(str(v.get("name")), 1)
            kind = next((k for k in v if k != "name"), "")
            out.kv("Type", kind, 2)
            if isinstance(v.get(kind), dict):
                for k, val in v[kind].items():
                    out.kv(k[:1].upper() + k[1:], val, 2)
    else:
        out.kv("Volumes", "<none>")
    out.mapping("Node-Selectors", spec.get("nodeSelector"))
    tol = [f"{t.get('key', '')}" + (f"={t['value']}" if t.get("value") else "")
           + (f":{t['effect']}" if t.get("effect") else "")
           + (" op=Exists" if t.get("operator") == "Exists" else "")
           for t in spec.get("tolerations") or []]
    out.kv("Tolerations", "\n".join(tol) if tol else "<none>")


def describe_deployment(out: Out, obj: JSON, res: Kind) -> None:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    _meta(out, obj, res)
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    out.kv("Selector", ",".join(f"{k}={v}" for k, v in sorted(sel.items())))
    out.kv("Replicas", f"{spec.get('replicas', 1)} desired | {status.get('updatedReplicas', 0)} updated | "
                       f"{status.get('replicas', 0)} total | {status.get('availableReplicas', 0)} "
                       f"available | {status.get('unavailableReplicas', 0)} unavailable")
    strategy = spec.get("strategy") or {}
    out.kv("StrategyType", strategy.get("type", "RollingUpdate"))
    out.kv("MinReadySeconds", spec.get("minReadySeconds", 0))
    ru = strategy.get("rollingUpdate")
    if ru:
        out.kv("RollingUpdateStrategy",
               f"{ru.get('maxUnavailable', '25%')} max unavailable, {ru.get('maxSurge', '25%')} max surge")
    template = spec.get("template") or {}
    out.head("Pod Template")
    out.mapping("Labels", (template.get("metadata") or {}).get("labels"), 1)
    tspec = template.get("spec") or {}
    _containers(out, "Containers", tspec.get("containers") or [], None, 1)
    _conditions(out, status.get("conditions") or [])


def describe_service(out: Out, obj: JSON, res: Kind) -> None:
    spec = obj.get("spec") or {}
    _meta(out, obj, res)
    out.kv("Selector", ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())))
    out.kv("Type", spec.get("type", "ClusterIP"))
    out.kv("IP Family Policy", spec.get("ipFamilyPolicy"))
    out.kv("IP", spec.get("clusterIP"))
    out.kv("IPs", ",".join(spec.get("clusterIPs") or []))
    for p in spec.get("ports") or []:
        name = p.get("name") or "<unset>"
        out.kv("Port", f"{name}  {p.get('port')}/{p.get('protocol') or 'TCP'}")
        out.kv("TargetPort", f"{p.get('targetPort', p.get('port'))}/{p.get('protocol') or 'TCP'}")
        if p.get("nodePort"):
            out.kv("NodePort", f"{name}  {p['nodePort']}/{p.get('protocol') or 'TCP'}")
    out.kv("Session Affinity", spec.get("sessionAffinity", "None"))


def describe_node(out: Out, obj: JSON, res: Kind) -> None:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    labels = (obj.get("metadata") or {}).get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    out.kv("Name", (obj.get("metadata") or {}).get("name"))
    out.kv("Roles", ",".join(roles) or "<none>")
    out.mapping("Labels", labels)
    out.mapping("Annotations", _shown_annotations(obj.get("metadata") or {}), sep=": ")
    out.kv("CreationTimestamp", (obj.get("metadata") or {}).get("creationTimestamp"))
    taints = [f"{t.get('key')}" + (f"={t['value']}" if t.get("value") else "") + f":{t.get('effect')}"
              for t in spec.get("taints") or []]
    out.kv("Taints", "\n".join(taints) if taints else "<none>")
    out.kv("Unschedulable", "true" if spec.get("unschedulable") else "false")
    _conditions(out, status.get("conditions") or [])
    addrs = status.get("addresses") or []
    if addrs:
        out.head("Addresses")
        for a in addrs:
            out.kv(str(a.get("type")), a.get("address"), 1)
    for key in ("capacity", "allocatable"):
        if status.get(key):
            out.head(key.capitalize())
            for k, v in sorted(status[key].items()):
                out.kv(k, v, 1)
    info = status.get("nodeInfo") or {}
    if info:
        out.head("System Info")
        for k, v in info.items():
            out.kv(k[:1].upper() + k[1:], v, 1)
    out.kv("PodCIDR", spec.get("podCIDR"))


def describe_generic(out: Out, obj: JSON, res: Kind) -> None:
    _meta(out, obj, res)
    for k, v in obj.items():
        if k in ("metadata", "apiVersion", "kind"):
            continue
        if isinstance(v, (dict, list)) and v:
            out.head(k[:1].upper() + k[1:])
            generic(out, v, 1)
        else:
            out.kv(k[:1].upper() + k[1:], v)


_DESCRIBERS = {"Pod": describe_pod, "Deployment": describe_deployment, "Service": describe_service,
               "Node": describe_node}


async def events_for(client: Client, obj: JSON) -> list[JSON]:
    """Events about this object; the server filters by field selector, we re-check by uid."""
    meta = obj.get("metadata") or {}
    res = by_kind("v1", "Event")
    assert res is not None
    ns = meta.get("namespace") or "default"
    selector = f"involvedObject.name={meta.get('name')}"
    if meta.get("namespace"):
        selector += f",involvedObject.namespace={ns}"
    try:
        items, _ = await client.list_all(res, ns, field_selector=selector)
    except ApiError as e:
        if e.status != 400:
            raise
        items, _ = await client.list_all(res, ns)  # no field selector support: filter here
    uid = meta.get("uid")
    return [e for e in items
            if (e.get("involvedObject") or {}).get("name") == meta.get("name")
            and (not uid or not (e.get("involvedObject") or {}).get("uid")
                 or (e.get("involvedObject") or {}).get("uid") == uid)]


def render(obj: JSON, res: Kind, events: list[JSON]) -> str:
    out = Out()
    _DESCRIBERS.get(res.kind, describe_generic)(out, obj, res)
    if res.kind != "Event" and not events:
        out.kv("Events", "<none>")
        return out.render()
    text = out.render()
    if res.kind != "Event":
        text += "\n" + events_block(events)
    return text


@click.command("describe")
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("-l", "--selector", default=None, help="Describe every object matching this label selector.")
@click.option("-A", "--all-namespaces", is_flag=True)
@global_options
@pass_state
def describe_cmd(state: CliState, kind: str, names: tuple[str, ...], selector: str | None,
                 all_namespaces: bool) -> None:
    """Show details and events: `bosun describe pod web-1`, `bosun describe deploy`."""
    if "/" in kind:
        if names:
            fail("error: there is no need to specify a resource type as a separate argument when passing "
                 "arguments in resource/name form")
        kind, _, name = kind.partition("/")
        names = (name,)
    res = resolve(kind)

    async def go(client: Client) -> bool:
        ns = None if (all_namespaces or not res.namespaced) else state.default_namespace
        ok = True
        objs: list[JSON] = []
        if names:
            for name in names:
                try:
                    objs.append(await client.get(res, name, ns))
                except ApiError as e:
                    ok = False
                    click.echo(api_error_line(e), err=True)
        else:
            objs, _ = await client.list_all(res, ns, label_selector=selector)
            if not objs:
                where = f" in {ns} namespace." if ns else ""
                click.echo(f"No resources found{where}", err=True)
        blocks = [render(o, res, await events_for(client, o)) for o in objs]
        if blocks:
            click.echo("\n\n\n".join(blocks))
        return ok

    if not run(state, go):
        raise SystemExit(1)


__all__ = ["age", "describe_cmd", "render"]
