"""``bosun token create``: a join token for another node, printed with the command to use it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int | None:
    """"24h", "30m", "0" (never expires) -> seconds."""
    if text in ("0", "never"):
        return None
    m = _DURATION.match(text.strip())
    if not m:
        raise click.BadParameter(f"{text!r}: use a number with s, m, h or d (e.g. 24h), or 0 for no expiry")
    return int(m.group(1)) * _UNITS[m.group(2)]


@click.group("token")
def token() -> None:
    """Join tokens that let new nodes register (`bosun agent --token ...`)."""


@token.command("create")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("/var/lib/bosun"),
              show_default=True, help="The server's data directory.")
@click.option("--ttl", default="24h", show_default=True, help="How long the token works (0 = forever).")
@click.option("--server", "server_url", default="", help="Server URL to print in the join command.")
def create(data_dir: Path, ttl: str, server_url: str) -> None:
    """Mint a join token and print the `bosun agent` command that uses it."""
    from bosun.security.tokens import create_join_token

    if not (data_dir / "pki").is_dir():
        click.echo(f"error: {data_dir} is not a bosun server's data directory (no pki/)", err=True)
        sys.exit(1)
    tok = create_join_token(data_dir, parse_ttl(ttl))
    click.echo(tok)
    url = server_url or "https://SERVER:6443"
    click.echo(f"join a node with:\n  bosun agent --server {url} --token {tok} "
               f"--ca-file {data_dir / 'pki' / 'ca.crt'} --name NODE", err=True)
