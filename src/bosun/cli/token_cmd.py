"""``bosun token create``: a join token for another node, printed with the command to use it,
or with ``--user`` a bearer token for a (non-admin) user whose rights come from RBAC bindings."""

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
    """Join tokens that let new nodes register (`bosun agent --token ...`), and user tokens."""


@token.command("create")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("/var/lib/bosun"),
              show_default=True, help="The server's data directory.")
@click.option("--ttl", default="24h", show_default=True, help="How long the token works (0 = forever).")
@click.option("--server", "server_url", default="", help="Server URL to print in the join command.")
@click.option("--user", "user", default="", help="Make a token for this user instead of a join token.")
@click.option("--group", "groups", multiple=True, help="A group of the --user (repeatable).")
def create(data_dir: Path, ttl: str, server_url: str, user: str, groups: tuple[str, ...]) -> None:
    """Mint a join token and print the `bosun agent` command that uses it.

    With --user, mint a bearer token for that user instead (like kube-apiserver's
    --token-auth-file); it may do only what RBAC bindings grant the user and its groups.
    """
    from bosun.security.tokens import create_join_token, create_user_token

    if not (data_dir / "pki").is_dir():
        click.echo(f"error: {data_dir} is not a bosun server's data directory (no pki/)", err=True)
        sys.exit(1)
    if groups and not user:
        raise click.UsageError("--group needs --user")
    if user:
        if "system:masters" in groups:
            click.echo("warning: system:masters bypasses all authorization checks", err=True)
        click.echo(create_user_token(data_dir, user, list(groups)))
        click.echo(f"use it with:\n  kubectl config set-credentials {user} --token=TOKEN\n"
                   f"grant rights with e.g.:\n  kubectl create rolebinding {user}-view --clusterrole=view "
                   f"--user={user} -n NAMESPACE", err=True)
        return
    tok = create_join_token(data_dir, parse_ttl(ttl))
    click.echo(tok)
    url = server_url or "https://SERVER:6443"
    click.echo(f"join a node with:\n  bosun agent --server {url} --token {tok} "
               f"--ca-file {data_dir / 'pki' / 'ca.crt'} --name NODE", err=True)
