"""``bosun alerts``: what is firing (``ls``), and silences with an end time (``silence``,
``silences``, ``unsilence``). The alerting controller publishes the active alerts in the
``bosun-alerts`` ConfigMap and reads silences from ``bosun-alerting-silences`` (both in
kube-system), so these verbs only read and patch ConfigMaps.
"""

from __future__ import annotations

import getpass
import json
import time
import uuid

import click

from bosun.alerting.config import CONFIG_NAMESPACE, ConfigError, parse_duration
from bosun.alerting.silences import SILENCES_NAME, Silence, SilenceError, load_silences, parse_matcher
from bosun.alerting.status import STATUS_NAME, omitted, parse, parse_rules
from bosun.cli.common import CliState, fail, pass_state, run
from bosun.cli.printers import render
from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.controllers._common import resource

CONFIGMAPS = resource("", "v1", "configmaps")


@click.group("alerts")
def alerts() -> None:
    """Firing alerts and their silences."""


async def _data(client: Client, name: str) -> dict[str, str] | None:
    try:
        cm = await client.get(CONFIGMAPS, name, CONFIG_NAMESPACE)
    except ApiError as e:
        if e.status == 404:
            return None
        raise
    return dict(cm.get("data") or {})


@alerts.command("ls")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_state
def ls(state: CliState, output: str) -> None:
    """List pending and firing alerts (silenced ones are marked)."""
    data = run(state, lambda c: _data(c, STATUS_NAME))
    rows, config = parse(data or {})
    if output == "json":
        click.echo(json.dumps({"alerts": rows, "config": config, "omitted": omitted(data or {})}, indent=2))
        return
    if config.startswith("error:"):
        click.echo(f"warning: alerting configuration {config}", err=True)
    if not rows:
        click.echo("No alerts.")
        return
    table = [["ALERT", "STATE", "SINCE", "LABELS", "SILENCED BY"]]
    for r in rows:
        labels = ",".join(f"{k}={v}" for k, v in (r.get("labels") or {}).items() if k != "alertname")
        table.append([str(r.get("alertname", "")), str(r.get("state", "")), str(r.get("since", "")), labels,
                      str(r.get("silencedBy", ""))])
    click.echo(render(table))
    if omitted(data or {}):
        click.echo(f"... and {omitted(data or {})} more")


@alerts.command("rules")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_state
def rules(state: CliState, output: str) -> None:
    """List the user alert rules (ConfigMaps labelled bosun.io/alert-rules), their health, and
    the rule files that were skipped with their errors."""
    rows = parse_rules(run(state, lambda c: _data(c, STATUS_NAME)) or {})
    if output == "json":
        click.echo(json.dumps({"rules": rows}, indent=2))
        return
    if not rows:
        click.echo("No alert rules.")
        return
    table = [["ALERT", "SOURCE", "HEALTH", "SERIES", "EXPR / ERROR"]]
    for r in rows:
        table.append([str(r.get("alert") or "-"), str(r.get("source", "")), str(r.get("health", "")),
                      str(r.get("series", "")), str(r.get("error") or r.get("expr", ""))])
    click.echo(render(table))


@alerts.command("silence")
@click.argument("matchers", nargs=-1, required=True)
@click.option("--duration", default="1h", show_default=True, help="How long the silence lasts (30m, 2h, 1d).")
@click.option("--comment", default="", help="Why (shown by `bosun alerts silences`).")
@pass_state
def silence(state: CliState, matchers: tuple[str, ...], duration: str, comment: str) -> None:
    """Silence alerts whose labels match all MATCHERS (label=value, label!=value, label=~regex)."""
    try:
        parsed = tuple(parse_matcher(m) for m in matchers)
        seconds = parse_duration(duration, "--duration")
    except (SilenceError, ConfigError) as e:
        fail(f"error: {e}")
    if seconds <= 0:
        fail("error: --duration must be positive")
    now = time.time()
    s = Silence(uuid.uuid4().hex[:8], parsed, now, now + seconds, comment, getpass.getuser())

    async def write(c: Client) -> None:
        try:
            await c.patch(CONFIGMAPS, SILENCES_NAME, {"data": {s.id: s.to_json()}}, CONFIG_NAMESPACE)
        except ApiError as e:
            if e.status != 404:
                raise
            await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "data": {s.id: s.to_json()},
                                        "metadata": {"name": SILENCES_NAME, "namespace": CONFIG_NAMESPACE}},
                           CONFIG_NAMESPACE)

    run(state, write)
    click.echo(s.id)


@alerts.command("silences")
@pass_state
def silences(state: CliState) -> None:
    """List silences that have not ended."""
    found, errors = load_silences(run(state, lambda c: _data(c, SILENCES_NAME)) or {})
    for line in errors:
        click.echo(f"warning: {line}", err=True)
    now = time.time()
    table = [["ID", "MATCHERS", "ENDS", "CREATED BY", "COMMENT"]]
    for s in found:
        if s.ends_at > now:
            ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s.ends_at))
            table.append([s.id, ",".join(map(str, s.matchers)), ends, s.created_by, s.comment])
    click.echo(render(table) if len(table) > 1 else "No silences.")


@alerts.command("unsilence")
@click.argument("silence_id")
@pass_state
def unsilence(state: CliState, silence_id: str) -> None:
    """End a silence now."""
    async def drop(c: Client) -> bool:
        data = await _data(c, SILENCES_NAME) or {}
        if silence_id not in data:
            return False
        await c.patch(CONFIGMAPS, SILENCES_NAME, {"data": {silence_id: None}}, CONFIG_NAMESPACE)
        return True

    if not run(state, drop):
        fail(f"error: no silence {silence_id!r}")
    click.echo(silence_id)
