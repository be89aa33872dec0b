"""How a node agent comes to hold its own credential (the agent's side of the exchange).

Kubernetes' kubelet bootstraps with a shared token, sends a CertificateSigningRequest for
``system:node:<name>`` and from then on uses the signed certificate. Ours is the same idea
with bearer tokens and one round trip:

1. ``bosun token create`` mints a join token (expiring, 24 h by default). It authenticates
   as ``system:bootstrap:<id>`` in ``system:bootstrappers``, and RBAC lets that group do one
   thing: ``POST /bosun/v1/node-credentials`` (ClusterRole ``system:bosun:node-bootstrapper``).
2. The agent posts ``{"nodeName": "<its name>"}`` there and gets a token for
   ``system:node:<name>`` in ``system:nodes``; the server keeps only its SHA-256. Asking again
   replaces (revokes) the node's previous token. A node may renew only its own; the admin
   may ask for any (that is how ``bosun up``'s agent, started with the admin token, still
   runs confined).
3. The agent keeps the token in ``<data dir>/pki/node.token`` (0600) and uses it for
   everything; the join token is no longer needed, so it can expire.

From then on the node authorizer confines it to its own Node, Lease and pods and to what
those pods use. As with Kubernetes' bootstrap tokens, whoever holds a join token can
obtain the credential of any node name: keep join tokens short-lived.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bosun.client.rest import ApiError, Client
from bosun.security.authz.defaults import NODE_CREDENTIAL_PATH
from bosun.security.files import write_atomic

log = logging.getLogger(__name__)


def credential_path(pki_dir: Path) -> Path:
    return Path(pki_dir) / "node.token"


def _save(path: Path, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, token.encode() + b"\n")


def use_token(client: Client, token: str) -> None:
    """Make every later request of ``client`` (and of everything sharing it) use ``token``."""
    client.set_token(token)


async def _works(client: Client, token: str, node: str) -> bool:
    """Does the server still accept ``token`` (a 404 for a node not yet registered counts)?"""
    try:
        await client.request("GET", f"/api/v1/nodes/{node}", headers={"Authorization": f"Bearer {token}"})
    except ApiError as exc:
        return exc.status not in (401, 403)
    return True


async def ensure_node_credential(client: Client, node: str, pki_dir: Path) -> str:
    """Switch ``client`` to this node's own credential, obtaining one if needed; returns it."""
    path = credential_path(pki_dir)
    saved = path.read_text().strip() if path.exists() else ""
    if saved and (saved == client.config.token or await _works(client, saved, node)):
        use_token(client, saved)
        return saved
    try:
        answer = await client.request("POST", NODE_CREDENTIAL_PATH, body={"nodeName": node})
    except ApiError as exc:
        if exc.status not in (400, 404):
            raise
        # A server without authentication (no TLS) or one older than node credentials.
        log.warning("node %s: keeps the credential it was given (%s)", node, exc)
        return client.config.token or ""
    token = str(answer["token"])
    _save(path, token)
    use_token(client, token)
    log.info("node %s: obtained its own credential (%s)", node, answer.get("user"))
    return token
