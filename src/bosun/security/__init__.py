"""Cluster security: the CA and serving certificates, bearer tokens."""

from bosun.security.pki import Pki, ensure_pki
from bosun.security.tokens import TokenAuthenticator, create_join_token, ensure_admin_token

__all__ = ["Pki", "TokenAuthenticator", "create_join_token", "ensure_admin_token", "ensure_pki"]
