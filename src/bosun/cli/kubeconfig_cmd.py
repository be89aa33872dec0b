"""``bosun kubeconfig``: print the admin kubeconfig of a server running on this machine."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from bosun.cli.common import fail
from bosun.client.kubeconfig import write_kubeconfig
from bosun.security.pki import pki_dir
from bosun.security.tokens import admin_token_path

DEFAULT_DATA_DIR = "/var/lib/bosun"


@click.command("kubeconfig")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=lambda: os.environ.get("BOSUN_DATA_DIR", DEFAULT_DATA_DIR),
              show_default=DEFAULT_DATA_DIR,
              help="The server's data directory ($BOSUN_DATA_DIR).")
@click.option("--server", default=None,
              help="Write a kubeconfig for this URL from the server's CA and admin token instead.")
def kubeconfig_cmd(data_dir: Path, server: str | None) -> None:
    """Print the admin kubeconfig: `bosun kubeconfig > ~/.kube/config`."""
    if server:
        ca, token = pki_dir(data_dir) / "ca.crt", admin_token_path(data_dir)
        try:
            ca_pem, tok = ca.read_bytes(), token.read_text().strip()
        except OSError as e:
            fail(f"error: cannot read the cluster credentials in {data_dir}: {e.strerror}: {e.filename}")
        with tempfile.TemporaryDirectory(prefix="bosun-kubeconfig-") as tmp:
            path = Path(tmp) / "config"
            write_kubeconfig(str(path), server=server, ca_pem=ca_pem, token=tok)
            click.echo(path.read_text(), nl=False)
        return
    path = data_dir / "kubeconfig"
    try:
        text = path.read_text()
    except FileNotFoundError:
        fail(f"error: no kubeconfig at {path}: start the server with `bosun server --data-dir {data_dir}`")
    except OSError as e:
        fail(f"error: cannot read {path}: {e.strerror}")
    click.echo(text, nl=False)
