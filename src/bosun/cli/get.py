"""``bosun get``: tables, YAML/JSON, names, and ``-w`` to follow changes."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from bosun.api.kinds import Kind
from bosun.cli.common import (
    CliState,
    api_error_line,
    fail,
    global_options,
    kind_group,
    pass_state,
    resolve,
    resolve_many,
    run,
)
from bosun.cli.printers import TableWriter, echo_objects, to_json, to_yaml
from bosun.cli.tables import Layout, Table, fetch_table, row_meta
from bosun.client.rest import ApiError, Client

JSON = dict[str, Any]
Request = tuple[Kind, list[str]]
T = TypeVar("T")


def parse_targets(args: tuple[str, ...]) -> list[Request]:
    """``KIND[,KIND] [NAME...]`` or ``KIND/NAME...`` -> (resource, names) in typed order."""
    if not args:
        fail("error: you must specify the type of resource to get")
    if "/" in args[0]:
        out: list[Request] = []
        for a in args:
            kind, sep, name = a.partition("/")
            if not sep or not name:
                fail("error: arguments in resource/name form must have a single resource and name")
            res = resolve(kind)
            for r, names in out:
                if r == res:
                    names.append(name)
                    break
            else:
                out.append((res, [name]))
        return out
    kinds = resolve_many(args[0])
    names = list(args[1:])
    if any("/" in n for n in names):
        fail("error: there is no need to specify a resource type as a separate argument when passing "
             "arguments in resource/name form")
    return [(r, list(names)) for r in kinds]


def _ns_for(state: CliState, res: Kind, all_namespaces: bool) -> str | None:
    if not res.namespaced or all_namespaces:
        return None
    return state.default_namespace


def _with_type(res: Kind, obj: JSON) -> JSON:
    obj.setdefault("apiVersion", res.group_version)
    obj.setdefault("kind", res.kind)
    return {"apiVersion": obj.pop("apiVersion"), "kind": obj.pop("kind"), **obj}


@click.command("get")
@click.argument("args", nargs=-1)
@click.option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces.")
@click.option("-l", "--selector", default=None, help="Label selector, e.g. app=web,tier!=db.")
@click.option("--field-selector", default=None, help="Field selector, e.g. status.phase=Running.")
@click.option("-o", "--output", type=click.Choice(["wide", "yaml", "json", "name"]), default=None)
@click.option("-w", "--watch", is_flag=True, help="After listing, print changes as they happen.")
@click.option("--no-headers", is_flag=True, help="Do not print the header line.")
@click.option("--ignore-not-found", is_flag=True, help="Treat a missing named object as no output.")
@global_options
@pass_state
def get_cmd(
    state: CliState,
    args: tuple[str, ...],
    all_namespaces: bool,
    selector: str | None,
    field_selector: str | None,
    output: str | None,
    watch: bool,
    no_headers: bool,
    ignore_not_found: bool,
) -> None:
    """Show objects: `bosun get pods`, `bosun get deploy,svc -A`, `bosun get po web -o yaml`."""
    targets = parse_targets(args)
    named = any(names for _, names in targets)
    if named and all_namespaces:
        fail("error: a resource cannot be retrieved by name across all namespaces")
    if watch and len(targets) != 1:
        fail("error: you may only specify a single resource type")

    async def go(client: Client) -> bool:
        if watch:
            res, names = targets[0]
            fs = field_selector
            if names:
                if len(names) > 1:
                    fail("error: watch is only supported on individual resources and resource collections")
                fs = ",".join(x for x in (fs, f"metadata.name={names[0]}") if x)
            await watch_loop(client, state, res, all_namespaces, selector, fs, output, no_headers)
            return True
        if output in ("yaml", "json", "name"):
            return await print_objects(client, state, targets, all_namespaces, selector, field_selector,
                                       output, ignore_not_found)
        return await print_tables(client, state, targets, all_namespaces, selector, field_selector,
                                  output == "wide", no_headers, ignore_not_found)

    try:
        ok = run(state, go)
    except KeyboardInterrupt:
        return
    if not ok:
        raise SystemExit(1)


def _nothing_found(state: CliState, targets: list[Request], all_namespaces: bool) -> None:
    if all_namespaces or not any(r.namespaced for r, _ in targets):
        click.echo("No resources found", err=True)
    else:
        click.echo(f"No resources found in {state.default_namespace} namespace.", err=True)


async def _each_named(names: list[str], fetch: Callable[[str], Awaitable[T]],
                      ignore_not_found: bool) -> tuple[list[T], bool]:
    """What ``fetch`` found of ``names``, and whether all went well: as kubectl, a name that
    cannot be fetched is an error line on stderr, unless it is not found and
    ``--ignore-not-found`` was given; the other names are still shown."""
    found: list[T] = []
    ok = True
    for name in names:
        try:
            found.append(await fetch(name))
        except ApiError as e:
            if not (e.not_found and ignore_not_found):
                ok = False
                click.echo(api_error_line(e), err=True)
    return found, ok


async def print_tables(
    client: Client,
    state: CliState,
    targets: list[Request],
    all_namespaces: bool,
    selector: str | None,
    field_selector: str | None,
    wide: bool,
    no_headers: bool,
    ignore_not_found: bool,
) -> bool:
    layout = Layout(wide=wide, with_namespace=all_namespaces, prefix_kind=len(targets) > 1)
    ok, printed, any_named = True, False, False
    for res, names in targets:
        ns = _ns_for(state, res, all_namespaces)
        table: Table | None = None
        if names:
            any_named = True
            found, fetched = await _each_named(names, functools.partial(fetch_table, client, res, ns),
                                               ignore_not_found)
            ok = ok and fetched
            for one in found:
                if table is None:
                    table = one
                else:
                    table.rows.extend(one.rows)
        else:
            table = await fetch_table(client, res, ns, label_selector=selector, field_selector=field_selector)
        if table is None or not table.rows:
            continue
        rows = [layout.cells(res, table.columns, r) for r in table.rows]
        if not no_headers:
            rows.insert(0, layout.header(res, table.columns))
        if printed:
            click.echo("")
        click.echo("\n".join(TableWriter().lines(rows)))
        printed = True
    if not printed and not any_named:
        _nothing_found(state, targets, all_namespaces)
    return ok


async def print_objects(
    client: Client,
    state: CliState,
    targets: list[Request],
    all_namespaces: bool,
    selector: str | None,
    field_selector: str | None,
    output: str,
    ignore_not_found: bool,
) -> bool:
    objs: list[tuple[Kind, JSON]] = []
    ok = True
    single = len(targets) == 1 and len(targets[0][1]) == 1
    for res, names in targets:
        ns = _ns_for(state, res, all_namespaces)
        if names:
            found, fetched = await _each_named(names, functools.partial(client.get, res, namespace=ns),
                                               ignore_not_found)
            ok = ok and fetched
            objs.extend((res, _with_type(res, o)) for o in found)
        else:
            items, _ = await client.list_all(res, ns, label_selector=selector, field_selector=field_selector)
            objs.extend((res, _with_type(res, o)) for o in items)
    if output == "name":
        for res, o in objs:
            click.echo(f"{kind_group(res)}/{(o.get('metadata') or {}).get('name', '')}")
        if not objs and not any(n for _, n in targets):
            _nothing_found(state, targets, all_namespaces)
        return ok
    if single and not objs:
        return ok
    echo_objects([o for _, o in objs], output, single)
    return ok


async def watch_loop(
    client: Client,
    state: CliState,
    res: Kind,
    all_namespaces: bool,
    selector: str | None,
    field_selector: str | None,
    output: str | None,
    no_headers: bool,
) -> None:
    """List, then follow the watch from the list's resourceVersion; re-list on 410 Gone."""
    ns = _ns_for(state, res, all_namespaces)
    layout = Layout(wide=output == "wide", with_namespace=all_namespaces)
    writer = TableWriter()
    last_rows: dict[str, JSON] = {}
    header_done = no_headers

    def key(meta: JSON) -> str:
        return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"

    def emit_rows(table: Table) -> None:
        nonlocal header_done
        rows = [layout.cells(res, table.columns, r) for r in table.rows]
        if not header_done:
            rows.insert(0, layout.header(res, table.columns))
            header_done = True
        for line in writer.lines(rows):
            click.echo(line)
        for r in table.rows:
            last_rows[key(row_meta(r))] = {"row": r, "columns": table.columns}

    rv = ""
    need_list = True
    while True:
        if need_list:
            rv = await _initial(client, res, ns, selector, field_selector, output, emit_rows)
            need_list = False
        try:
            async for event in client.watch(res, ns, resource_version=rv or None, label_selector=selector,
                                            field_selector=field_selector):
                obj = event.get("object") or {}
                meta = obj.get("metadata") or {}
                rv = str(meta.get("resourceVersion") or rv)
                etype = event.get("type")
                if etype == "BOOKMARK":
                    continue
                if output in ("yaml", "json", "name"):
                    _echo_watched(res, _with_type(res, obj), output)
                elif etype == "DELETED":
                    seen = last_rows.pop(key(meta), None)
                    if seen is not None:
                        emit_rows(Table(seen["columns"], [seen["row"]]))
                else:
                    try:
                        one = await fetch_table(client, res, meta.get("namespace"), str(meta.get("name")))
                        emit_rows(one)
                    except ApiError as e:
                        if not e.not_found:
                            raise
        except ApiError as e:
            if not e.gone:
                raise
            need_list = True  # too old to resume: list again and carry on
        await asyncio.sleep(0.2)  # the server ended the stream: resume from the last revision


async def _initial(
    client: Client,
    res: Kind,
    ns: str | None,
    selector: str | None,
    field_selector: str | None,
    output: str | None,
    emit_rows: Callable[[Table], None],
) -> str:
    """Print the current state and return the revision to watch from."""
    if output in ("yaml", "json", "name"):
        items, rv = await client.list_all(res, ns, label_selector=selector, field_selector=field_selector)
        for o in items:
            _echo_watched(res, _with_type(res, o), output)
        return rv
    table = await fetch_table(client, res, ns, label_selector=selector, field_selector=field_selector)
    if table.rows:
        emit_rows(table)
    return table.resource_version


def _echo_watched(res: Kind, obj: JSON, output: str) -> None:
    if output == "name":
        click.echo(f"{kind_group(res)}/{(obj.get('metadata') or {}).get('name', '')}")
    elif output == "json":
        click.echo(to_json(obj))
    else:
        click.echo("---\n" + to_yaml(obj), nl=False)
