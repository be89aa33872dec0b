"""What every CLI verb shares: options, the client, resource names, one-line errors.

kubectl users read errors and names in a fixed shape (``Error from server (NotFound): ...``,
``deployment.apps/web``); keeping that shape in one place keeps the verbs consistent.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from bosun.api import kinds
from bosun.api.kinds import Kind
from bosun.cli import discovery
from bosun.client.kubeconfig import load_kubeconfig
from bosun.client.rest import ApiError, Client

T = TypeVar("T")
JSON = dict[str, Any]

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"


class CliError(click.ClickException):
    """A failure reported as exactly one line on stderr (already in kubectl's words)."""

    def show(self, file: Any = None) -> None:
        click.echo(self.message, err=True)


def fail(message: str) -> NoReturn:
    raise CliError(message)


def api_error_line(e: ApiError) -> str:
    if e.status == 401:
        return "error: You must be logged in to the server (Unauthorized)"
    msg = e.message or str(e)
    if e.reason:
        return f"Error from server ({e.reason}): {msg}"
    return f"Error from server: {msg}"


def local_kubeconfig() -> str | None:
    """The kubeconfig of a cluster started on this machine (``bosun swarm init``, ``bosun up``,
    in $BOSUN_DATA_DIR or /var/lib/bosun), when neither $KUBECONFIG nor ~/.kube/config says
    otherwise: a manager's shell needs no flag."""
    if os.environ.get("KUBECONFIG") or (Path.home() / ".kube" / "config").exists():
        return None
    local = Path(os.environ.get("BOSUN_DATA_DIR") or "/var/lib/bosun") / "kubeconfig"
    return str(local) if local.exists() else None


@dataclass(slots=True)
class CliState:
    """Global options, resolved lazily so that `bosun kubeconfig` works with no kubeconfig."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    _client: Client | None = None
    # The server's kinds from discovery, fetched the first time a name is not a built-in one.
    _discovered: list[Kind] | None = None
    server: str = ""  # the URL last connected to, for error messages after the client closed

    def client(self) -> Client:
        if self._client is None:
            cfg = load_kubeconfig(self.kubeconfig or local_kubeconfig(), self.context)
            if self.namespace:
                cfg.namespace = self.namespace
            self._client = Client(cfg)
            self.server = cfg.server
        return self._client

    @property
    def default_namespace(self) -> str:
        return self.client().namespace

    @property
    def namespace_given(self) -> bool:
        return bool(self.namespace)


pass_state = click.make_pass_decorator(CliState, ensure=True)


def run(state: CliState, fn: Callable[[Client], Awaitable[T]]) -> T:
    """Run one verb's coroutine with a client that is closed on the same loop afterwards."""

    async def body() -> T:
        client = state.client()
        try:
            return await fn(client)
        finally:
            await client.close()
            state._client = None

    return asyncio.run(body())


def discovered() -> list[Kind]:
    """The server's kinds (custom ones included), asked once per command."""
    ctx = click.get_current_context(silent=True)
    state = ctx.find_object(CliState) if ctx is not None else None
    if state is None:
        return []
    if state._discovered is None:
        async def go() -> list[Kind]:
            client = state.client()
            try:
                return await discovery.fetch(client)
            finally:
                await client.close()
                state._client = None

        state._discovered = asyncio.run(go())
    return state._discovered


def resolve(name: str) -> Kind:
    res = kinds.find(name) or discovery.find(discovered(), name)
    if res is None:
        fail(f'error: the server doesn\'t have a resource type "{name}"')
    return res


def resolve_many(spec: str) -> list[Kind]:
    """``pods,svc`` or ``all`` -> resources, in the order typed, without repeats."""
    out: list[Kind] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if part.lower() == "all":
            found = [r for r in kinds.KINDS if "all" in r.categories]
        else:
            found = [resolve(part)]
        for r in found:
            if r not in out:
                out.append(r)
    if not out:
        fail("error: you must specify the type of resource to get")
    return out


def kind_group(res: Kind) -> str:
    """``pod``, ``deployment.apps``: how kubectl names a kind in its messages."""
    return f"{res.singular}.{res.group}" if res.group else res.singular


def plural_group(res: Kind) -> str:
    return f"{res.plural}.{res.group}" if res.group else res.plural


def resource_of(obj: JSON, source: str = "") -> Kind:
    api_version = str(obj.get("apiVersion") or "")
    kind = str(obj.get("kind") or "")
    res = kinds.by_kind(api_version, kind) or discovery.by_kind(discovered(), api_version, kind)
    if res is None:
        meta = obj.get("metadata") or {}
        where = f' from "{source}"' if source else ""
        fail(
            f'error: resource mapping not found for name: "{meta.get("name", "")}" namespace: '
            f'"{meta.get("namespace", "")}"{where}: no matches for kind "{kind}" in version "{api_version}"'
        )
    return res


def _setter(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def set_value(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None:
            setattr(ctx.ensure_object(CliState), attr, value)

    return set_value


def global_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Accept -n/--namespace, --kubeconfig and --context after the verb too, as kubectl does."""
    for flags, attr, help_text in (
        (("-n", "--namespace"), "namespace", "Namespace (default: the context's, else default)."),
        (("--kubeconfig",), "kubeconfig", "Kubeconfig file."),
        (("--context",), "context", "Kubeconfig context to use."),
    ):
        f = click.option(*flags, attr, default=None, expose_value=False, is_eager=True,
                         callback=_setter(attr), help=help_text)(f)
    return f
