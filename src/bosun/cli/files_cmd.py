"""``bosun secret`` and ``bosun config``: Docker's secrets and configs as Secrets and
ConfigMaps holding one file under the key ``content``, which is where a service's
``--secret``/``--config`` (and a compose file's ``external: true``) mounts them from."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from bosun.api.kinds import Kind, must_by_plural
from bosun.cli.common import CliError, CliState, fail, global_options, pass_state, run
from bosun.cli.printers import age, render
from bosun.client.rest import ApiError, Client
from bosun.compose.translate.context import dns_name
from bosun.compose.translate.files import CONTENT_KEY

JSON = dict[str, Any]


def _secret_body(data: bytes) -> JSON:
    return {"type": "Opaque", "data": {CONTENT_KEY: base64.b64encode(data).decode()}}


def _config_body(data: bytes) -> JSON:
    try:
        return {"data": {CONTENT_KEY: data.decode("utf-8")}}
    except UnicodeDecodeError:
        return {"binaryData": {CONTENT_KEY: base64.b64encode(data).decode()}}


@dataclass(frozen=True, slots=True)
class FileObjects:
    word: str  # "secret" / "config"
    resource: Kind
    body: Callable[[bytes], JSON]

    @property
    def label(self) -> str:
        return f"bosun.io/{self.word}"


def _id(obj: JSON) -> str:
    return str(obj["metadata"].get("uid") or "").replace("-", "")[:25]


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CliError(f"error: open {path}: {e.strerror or e}") from None


def make_group(kind: FileObjects) -> click.Group:
    @click.group(kind.word, help=f"Manage {kind.word}s (files mounted into services).")
    def group() -> None:
        pass

    async def find(client: Client, state: CliState, name: str) -> JSON:
        try:
            return await client.get(kind.resource, dns_name(name), state.default_namespace)
        except ApiError as e:
            if e.not_found:
                fail(f"Error response from daemon: {kind.word} {name} not found")
            raise

    @group.command("create")
    @click.option("-l", "--label", multiple=True, help="Label (K=V).")
    @click.argument("name")
    @click.argument("file")
    @global_options
    @pass_state
    def create(state: CliState, label: tuple[str, ...], name: str, file: str) -> None:
        """Create from a file, or - for standard input."""
        data = _read(file)
        labels = {kind.label: dns_name(name), **dict(item.partition("=")[::2] for item in label)}
        obj = {"apiVersion": kind.resource.group_version, "kind": kind.resource.kind,
               "metadata": {"name": dns_name(name), "labels": labels}, **kind.body(data)}

        async def go(client: Client) -> JSON:
            try:
                return await client.create(kind.resource, obj, state.default_namespace)
            except ApiError as e:
                if e.conflict or e.status == 409:
                    fail(f"Error response from daemon: {kind.word} {name} already exists")
                raise

        click.echo(_id(run(state, go)))

    @group.command("ls")
    @click.option("-q", "--quiet", is_flag=True, help="Only IDs.")
    @global_options
    @pass_state
    def ls(state: CliState, quiet: bool) -> None:
        """List them."""

        async def go(client: Client) -> list[JSON]:
            items, _ = await client.list_all(kind.resource, state.default_namespace, label_selector=kind.label)
            return sorted(items, key=lambda o: str(o["metadata"]["name"]))

        items = run(state, go)
        if quiet:
            click.echo("\n".join(_id(o) for o in items))
            return
        rows = [[_id(o), str(o["metadata"]["labels"].get(kind.label) or o["metadata"]["name"]),
                 f"{age(o['metadata'].get('creationTimestamp'))} ago"] for o in items]
        click.echo(render([["ID", "NAME", "CREATED"], *rows]))

    @group.command("inspect")
    @click.argument("names", nargs=-1, required=True)
    @global_options
    @pass_state
    def inspect(state: CliState, names: tuple[str, ...]) -> None:
        """Show their metadata (never a secret's content)."""

        async def go(client: Client) -> list[JSON]:
            return [{"ID": _id(o), "Spec": {"Name": n, "Labels": o["metadata"].get("labels") or {}},
                     "CreatedAt": o["metadata"].get("creationTimestamp")}
                    for n, o in [(n, await find(client, state, n)) for n in names]]

        click.echo(json.dumps(run(state, go), indent=4))

    @group.command("rm")
    @click.argument("names", nargs=-1, required=True)
    @global_options
    @pass_state
    def rm(state: CliState, names: tuple[str, ...]) -> None:
        """Remove them."""

        async def go(client: Client) -> None:
            for name in names:
                await find(client, state, name)
                await client.delete(kind.resource, dns_name(name), state.default_namespace)
                click.echo(name)

        run(state, go)

    return group


secret = make_group(FileObjects("secret", must_by_plural("", "v1", "secrets"), _secret_body))
config = make_group(FileObjects("config", must_by_plural("", "v1", "configmaps"), _config_body))
