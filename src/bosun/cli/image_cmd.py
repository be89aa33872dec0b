"""``bosun image``: the node's image store (import archives, pull, list, remove).

The store is the oci driver's (``<agent data dir>/runtime/oci/images``), so an imported
image is what pods on this node run with ``imagePullPolicy: IfNotPresent`` or ``Never``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from bosun.agent.images.archive import import_archive
from bosun.agent.images.reference import InvalidReference, parse
from bosun.agent.images.registry import PullError, is_insecure, pull
from bosun.agent.images.store import ImageStore, ImageStoreError

DEFAULT_DIRS = (Path("/var/lib/bosun/agent"), Path("/var/lib/bosun-agent"))


def store_for(data_dir: Path | None) -> ImageStore:
    """``--data-dir`` may be an agent's data dir or a ``bosun up`` one (its agent lives in
    ``agent/``); without it, the `bosun up` default if it exists, else the agent default."""
    if data_dir is None:
        data_dir = next((d for d in DEFAULT_DIRS if d.exists()), DEFAULT_DIRS[1])
    elif (data_dir / "agent").is_dir():
        data_dir = data_dir / "agent"
    return ImageStore(data_dir / "runtime" / "oci" / "images")


data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                               help="agent (or `bosun up`) data directory")


@click.group()
def image() -> None:
    """Manage the images of this node."""


@image.command("import")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", default=None, help="name for an image the archive leaves unnamed")
@data_dir_option
def import_cmd(archive: str, name: str | None, data_dir: Path | None) -> None:
    """Import a docker-archive (`docker save`) or OCI archive tar."""
    try:
        records = import_archive(store_for(data_dir), archive, name)
    except (ImageStoreError, InvalidReference, KeyError, ValueError) as e:
        raise click.ClickException(f"import {archive}: {e}") from None
    for rec in records:
        click.echo(f"imported {rec.name} ({rec.id[:19]}, {len(rec.layers)} layers)")


@image.command("pull")
@click.argument("name")
@click.option("--insecure", is_flag=True, help="plain HTTP (always used for localhost registries)")
@data_dir_option
def pull_cmd(name: str, insecure: bool, data_dir: Path | None) -> None:
    """Pull an image from a registry into this node's store."""
    try:
        ref = parse(name)
        rec = asyncio.run(pull(store_for(data_dir), ref, insecure=insecure or is_insecure(ref.registry)))
    except (InvalidReference, PullError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"pulled {rec.name} ({rec.id[:19]})")


@image.command("ls")
@data_dir_option
def ls_cmd(data_dir: Path | None) -> None:
    """List images."""
    click.echo(f"{'IMAGE':<60} {'ID':<19} LAYERS")
    for rec in store_for(data_dir).list():
        click.echo(f"{rec.name:<60} {rec.id[:19]:<19} {len(rec.layers)}")


@image.command("rm")
@click.argument("name")
@data_dir_option
def rm_cmd(name: str, data_dir: Path | None) -> None:
    """Remove an image name (and layers nothing else uses)."""
    if not store_for(data_dir).remove(name):
        raise click.ClickException(f"no image {name!r}")
    click.echo(f"removed {name}")
